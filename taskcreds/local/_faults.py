"""Misbehaviour the local endpoint can be told to show: slowness, errors, throttling, bad bodies.

A :class:`Faults` object may be changed while the server runs (tests change it between
requests). The server reads a consistent :meth:`Faults.snapshot` at the start of each request;
:meth:`Faults.update` changes several fields at once under the same lock.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AGENT_RPS_BURST", "AGENT_RPS_LIMIT", "Faults", "RateLimiter"]

#: The ECS agent's per-client steady rate (``ECS_TASK_METADATA_RPS_LIMIT``) ...
AGENT_RPS_LIMIT = 40.0
#: ... and its burst: ``Faults(throttle_rps=AGENT_RPS_LIMIT)`` throttles exactly like the agent.
AGENT_RPS_BURST = 60


@dataclass
class Faults:
    """What the server does wrong, checked in this order for each request.

    - ``throttle_rps`` (with ``throttle_burst``): a token bucket per client IP, as the agent
      keeps; a request over it gets 429. ``None`` turns throttling off.
    - ``latency``: seconds to wait before answering anything.
    - ``hang``: read the request and never answer, until the server stops.
    - ``drop_connection``: close the connection without answering.
    - ``fail_first``: the next N credentials requests get ``fail_status`` (503, 500, 400 as the
      agent words them; 429 as its throttle; anything else as plain text). It counts down.
    - ``body_override``: send these bytes as the 200 body instead of the credentials.
    - ``huge_body_bytes``: send a 200 with a body this long, streamed in chunks.
    - ``trickle``: send the 200 body one byte every ``trickle`` seconds.

    The last four apply only to requests that would otherwise get credentials. As with the
    agent, the whole answer must be written within 5 s of the request (its write timeout): a
    longer latency ends in a closed connection, a longer trickle in a cut-short body.
    """

    latency: float = 0.0
    fail_first: int = 0
    fail_status: int = 503
    throttle_rps: float | None = None
    throttle_burst: int = AGENT_RPS_BURST
    hang: bool = False
    drop_connection: bool = False
    body_override: bytes | None = None
    huge_body_bytes: int | None = None
    trickle: float | None = None
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._validate()

    def update(self, **changes: Any) -> None:
        """Change several faults at once, so no request sees half of the change."""
        known = {f.name for f in dataclasses.fields(self) if f.init}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown faults: {', '.join(unknown)}")
        with self._lock:
            dataclasses.replace(self, **changes)  # validates the result before anything changes
            for name, value in changes.items():
                setattr(self, name, value)

    def reset(self) -> None:
        """Back to a well-behaved server (the throttle buckets' contents are kept)."""
        defaults = Faults()
        self.update(**{f.name: getattr(defaults, f.name) for f in _init_fields()})

    def snapshot(self) -> Faults:
        """A consistent copy to read one request's faults from."""
        with self._lock:
            return dataclasses.replace(self)

    def take_failure(self) -> int | None:
        """The status to fail this request with, counting ``fail_first`` down; None to succeed."""
        with self._lock:
            if self.fail_first <= 0:
                return None
            self.fail_first -= 1
            return self.fail_status

    def _validate(self) -> None:
        if self.latency < 0 or self.fail_first < 0:
            raise ValueError("latency and fail_first must not be negative")
        if not 100 <= self.fail_status <= 599:
            raise ValueError("fail_status must be an HTTP status code")
        if self.throttle_rps is not None and (self.throttle_rps < 0 or self.throttle_burst < 1):
            raise ValueError("throttle_rps must not be negative and throttle_burst at least 1")
        if self.huge_body_bytes is not None and self.huge_body_bytes < 0:
            raise ValueError("huge_body_bytes must not be negative")
        if self.trickle is not None and self.trickle < 0:
            raise ValueError("trickle must not be negative")


def _init_fields() -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(Faults) if f.init)


class RateLimiter:
    """A token bucket per client address, refilled continuously like Go's ``rate.Limiter``.

    A new client starts with a full bucket (``burst`` requests); each request takes a token and
    tokens come back at ``rate`` per second. Rate and burst are passed on every call so they can
    change while the server runs.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # client -> (tokens left, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str, rate: float, burst: int) -> bool:
        now = self._monotonic()
        with self._lock:
            tokens, counted_at = self._buckets.get(client, (float(burst), now))
            tokens = min(float(burst), tokens + (now - counted_at) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[client] = (tokens, now)
            return allowed
