"""The refresh policy as arithmetic: when a set is due, given its lifetime. No clocks, no I/O.

The one policy of the whole code base: every source a :class:`~taskcreds.CredentialProvider`
caches (the container endpoint, serve-local's STS calls, a static set) gets these windows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from taskcreds.credentials import Credentials

__all__ = [
    "ADVISORY_WINDOW",
    "MANDATORY_WINDOW",
    "Cached",
    "RefreshSchedule",
    "Schedule",
    "refresh_schedule",
    "retry_delay",
    "schedule_for",
    "serving_schedule",
]

#: botocore's advisory window: ECS vends sets that live for hours, and 15 minutes of slack rides
#: out an agent restart. Scaled down to L/3 for short-lived sets.
ADVISORY_WINDOW = timedelta(minutes=15)
#: botocore's mandatory window; scaled down to L/6 for short-lived sets.
MANDATORY_WINDOW = timedelta(minutes=10)
#: Jitter moves the advisory point earlier by up to this much (or L/12), so that many processes
#: started together (a service's tasks, a pre-fork server's workers) do not refresh in lockstep.
_ADVISORY_JITTER = timedelta(minutes=5)
#: Bounds of the pause between refresh tries while a cached set is still usable.
_RETRY_MIN_SECONDS = 1.0
_RETRY_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class RefreshSchedule:
    """How many seconds before expiry each refresh point lies (jitter included)."""

    advisory: float
    mandatory: float


def refresh_schedule(
    lifetime: float, uniform: Callable[[], float] = random.random
) -> RefreshSchedule:
    """The refresh points for a set that lives ``lifetime`` seconds.

    advisory = min(15 min, L/3), mandatory = min(10 min, L/6); jitter (``uniform()`` in [0, 1))
    only ever moves a point earlier, and never moves the mandatory point before the advisory one.
    """
    lifetime = max(lifetime, 0.0)
    advisory = min(ADVISORY_WINDOW.total_seconds(), lifetime / 3)
    mandatory = min(MANDATORY_WINDOW.total_seconds(), lifetime / 6)
    advisory_jitter = uniform() * min(_ADVISORY_JITTER.total_seconds(), lifetime / 12)
    mandatory_jitter = uniform() * (advisory - mandatory) / 2
    return RefreshSchedule(advisory + advisory_jitter, mandatory + mandatory_jitter)


#: A refresh policy: the lifetime of a set and a source of jitter in [0, 1) to its windows.
Schedule = Callable[[float, Callable[[], float]], RefreshSchedule]

_SERVING_LEAD_MIN = 1.0
_SERVING_LEAD_MAX = MANDATORY_WINDOW.total_seconds()


def serving_schedule(
    lifetime: float, uniform: Callable[[], float] = random.random
) -> RefreshSchedule:
    """The refresh points of a cache that serves many clients from one upstream (the broker).

    Its clients ask it as often as they like at no cost upstream, so it need not refresh early
    for their sake: one refresh, when L/6 is left (within 1 s and 10 minutes, never more than
    half of L), is about 1.2 upstream fetches per lifetime, and the lead is its slack to retry an
    upstream failure. The mandatory point lies halfway from there to expiry. No jitter: there is
    one such cache in a task, not a fleet of processes started together.
    """
    lifetime = max(lifetime, 0.0)
    lead = min(_SERVING_LEAD_MAX, max(_SERVING_LEAD_MIN, lifetime / 6), lifetime / 2)
    return RefreshSchedule(advisory=lead, mandatory=lead / 2)


def retry_delay(seconds_to_expiry: float) -> float:
    """Pause before trying again while a cached set is still usable: 1/20 of what is left,
    within 1 s and 60 s, so a failing agent is not hammered and expiry is not missed."""
    return min(_RETRY_MAX_SECONDS, max(_RETRY_MIN_SECONDS, seconds_to_expiry / 20))


@dataclass(frozen=True, slots=True)
class Cached:
    """One installed set and its refresh points, on the monotonic clock."""

    credentials: Credentials
    lifetime: float
    expires_at: float
    advisory_at: float
    mandatory_at: float
    #: When the next refresh is due: the advisory point, or for a set that arrived already
    #: inside its window, a short pause from now (never per call).
    refresh_at: float


def schedule_for(
    credentials: Credentials,
    left: float,
    now: float,
    previous: Cached | None,
    *,
    jitter: Callable[[], float] = random.random,
    schedule: Schedule = refresh_schedule,
) -> Cached:
    """The refresh points of a set with ``left`` seconds to live, installed at monotonic ``now``.

    The same set again (same access key) keeps its first-seen lifetime, so its windows do not
    shrink each time an agent hands it out again.
    """
    same_set = previous is not None and (
        previous.credentials.access_key_id == credentials.access_key_id
    )
    lifetime = previous.lifetime if same_set and previous is not None else left
    points = schedule(lifetime, jitter)
    expires_at = now + left
    advisory_at = expires_at - points.advisory
    refresh_at = advisory_at
    if refresh_at <= now:
        refresh_at = min(now + retry_delay(left), expires_at)
    return Cached(
        credentials=credentials,
        lifetime=lifetime,
        expires_at=expires_at,
        advisory_at=advisory_at,
        mandatory_at=expires_at - points.mandatory,
        refresh_at=refresh_at,
    )
