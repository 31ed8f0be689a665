"""The credentials cache: refresh before expiry, one fetch at a time, optional prefetch thread.

Freshness has three states, like google-auth's ``TokenState``:

- **fresh**: before the advisory point. ``get()`` returns the cached set; the hot path is one
  tuple read and one monotonic-clock comparison, with no lock and no datetime arithmetic.
- **advisory window**: exactly one caller refreshes (a non-blocking try-lock, as botocore's
  ``RefreshableCredentials`` does); everyone else keeps using the cached set. A failure is logged
  and swallowed, and the next try waits a little (:func:`retry_delay`).
- **mandatory window / expired**: callers wait for the one in-flight refresh. If it fails and the
  cached set is still valid, it is returned with a warning; only expired credentials raise
  :class:`~taskcreds.errors.CredentialsExpiredError`.

The windows scale with the set's lifetime L (see :func:`refresh_schedule`), so 15-minute STS
sessions are not refreshed on every call (botocore#2189) and 6-hour ECS sets refresh 15 minutes
early, as botocore does.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType

import requests
import tenacity

from taskcreds.credentials import Credentials
from taskcreds.endpoint import Endpoint, Resolver, resolve_endpoint, system_resolver
from taskcreds.errors import CredentialsExpiredError, InternalError, TaskCredsError
from taskcreds.fetch import DEFAULT_DEADLINE, Fetcher, Monotonic, Sleep

__all__ = [
    "ADVISORY_WINDOW",
    "MANDATORY_WINDOW",
    "CredentialProvider",
    "RefreshSchedule",
    "get_credentials",
    "refresh_schedule",
    "retry_delay",
]

logger = logging.getLogger("taskcreds")

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
#: Backoff bounds of the prefetch thread after failures.
_PREFETCH_BACKOFF_BASE = 1.0
_PREFETCH_BACKOFF_CAP = 60.0

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


def retry_delay(seconds_to_expiry: float) -> float:
    """Pause before trying again while a cached set is still usable: 1/20 of what is left,
    within 1 s and 60 s, so a failing agent is not hammered and expiry is not missed."""
    return min(_RETRY_MAX_SECONDS, max(_RETRY_MIN_SECONDS, seconds_to_expiry / 20))


@dataclass(frozen=True, slots=True)
class _Cached:
    """One installed set and its refresh points, on the monotonic clock."""

    credentials: Credentials
    lifetime: float
    expires_at: float
    advisory_at: float
    mandatory_at: float
    #: When the next refresh is due: the advisory point, or for a set that arrived already
    #: inside its window, a short pause from now (never per call).
    refresh_at: float


class _Closed(Exception):
    """The provider was closed while its prefetch thread slept."""


_PLACEHOLDER = Credentials("-", "-", "-", datetime(1970, 1, 1, tzinfo=timezone.utc))
_providers: weakref.WeakSet[CredentialProvider] = weakref.WeakSet()


class CredentialProvider:
    """Caches the task role's credentials and refreshes them before they expire.

    Thread-safe and fork-safe. ``environ`` defaults to ``os.environ`` (read now, not at import);
    ``timeout`` bounds one whole fetch, retries included. ``clock`` (aware UTC), ``monotonic``,
    ``sleep``, ``session`` and ``resolver`` are injectable for tests.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        allowed_hosts: Iterable[str] = (),
        timeout: float = DEFAULT_DEADLINE,
        prefetch: bool = False,
        clock: Clock = _utcnow,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = time.sleep,
        session: requests.Session | None = None,
        resolver: Resolver = system_resolver,
        fetcher: Fetcher | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._endpoint = resolve_endpoint(environ, allowed_hosts=allowed_hosts, resolver=resolver)
        self._fetcher = fetcher or Fetcher(
            session=session, deadline=timeout, sleep=sleep, monotonic=monotonic
        )
        self._clock = clock
        self._monotonic = monotonic
        self._jitter = jitter
        self._prefetch = prefetch
        # The hot path reads only this pair: the set to hand out, and until when without asking.
        self._fast: tuple[Credentials, float] = (_PLACEHOLDER, -math.inf)
        self._cached: _Cached | None = None
        self._attempts = 0
        self._last_error: TaskCredsError | None = None
        self._prefetch_healthy = prefetch
        self._closed = threading.Event()
        self._new_thread_state()
        _providers.add(self)

    def _new_thread_state(self) -> None:
        was_closed = self._closed.is_set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        if was_closed:  # a provider closed in the parent stays closed in a forked child
            self._closed.set()
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> Endpoint:
        """Where credentials come from: URL and token source (never the token)."""
        return self._endpoint

    def __repr__(self) -> str:
        cached = self._cached
        expiry = cached.credentials.expiration.isoformat() if cached else None
        return f"CredentialProvider(url={self._endpoint.display_url!r}, expiration={expiry!r})"

    def get(self) -> Credentials:
        """The current credentials, from the cache unless a refresh is due."""
        credentials, fresh_until = self._fast
        if self._monotonic() < fresh_until:
            return credentials
        return self._get_slow()

    def refresh(self) -> Credentials:
        """Fetch a new set now (for example after S3 said ``ExpiredToken``).

        Callers that arrive while another refresh is in flight share its result.
        """
        seen = self._attempts
        with self._lock:
            if self._attempts != seen:
                if self._last_error is not None:
                    raise self._last_error
                return self._fast[0]
            return self._fetch_and_install()

    def close(self) -> None:
        """Stop the prefetch thread, if any; the cached set stays usable and callers refresh it."""
        self._closed.set()
        with self._lock:  # not between an install's two writes
            self._prefetch_healthy = False
            cached = self._cached
            if cached is not None:  # callers take refreshing back from the thread
                self._fast = (cached.credentials, min(self._fast[1], cached.refresh_at))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._fetcher.deadline * 2)
        self._fetcher.close()  # pooled connections; a later refresh opens new ones

    def __enter__(self) -> CredentialProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the slow path -------------------------------------------------------------------------

    def _get_slow(self) -> Credentials:
        now = self._monotonic()
        credentials, fresh_until = self._fast
        if now < fresh_until:  # another thread installed a set meanwhile
            return credentials
        cached = self._cached
        if cached is not None and now < cached.mandatory_at:
            self._refresh_advisory()
            return self._fast[0]
        return self._refresh_blocking()

    def _refresh_advisory(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # someone is refreshing; keep using the cached set
        try:
            if self._monotonic() < self._fast[1]:
                return
            self._fetch_and_install()
        except TaskCredsError as exc:
            logger.warning("refreshing credentials early failed; using the cached set: %s", exc)
        finally:
            self._lock.release()

    def _refresh_blocking(self) -> Credentials:
        seen = self._attempts
        with self._lock:
            credentials, fresh_until = self._fast
            if self._monotonic() < fresh_until:
                return credentials
            if self._attempts != seen and self._last_error is not None:
                # The refresh we waited for failed; share its outcome rather than ask again.
                return self._fall_back(self._last_error)
            try:
                return self._fetch_and_install()
            except TaskCredsError as exc:
                return self._fall_back(exc)

    def _fall_back(self, error: TaskCredsError) -> Credentials:
        """After a failed refresh: the cached set while valid, else CredentialsExpiredError."""
        cached = self._cached
        if cached is None:
            raise error
        left = cached.expires_at - self._monotonic()
        if left <= 0:
            raise CredentialsExpiredError(
                f"the cached credentials expired at {cached.credentials.expiration.isoformat()} "
                f"and refreshing them failed: {error}",
                hint="see the cause below; `python -m taskcreds doctor` checks each step",
            ) from error
        logger.warning(
            "refreshing credentials failed; the cached set expires in %.0f s: %s", left, error
        )
        return cached.credentials

    def _fetch_and_install(self) -> Credentials:
        """Fetch and install a set. Call with the lock held.

        ``_attempts`` counts *finished* attempts: a caller that starts waiting while one is in
        flight sees the count change when it ends, and shares its outcome instead of asking again.
        """
        try:
            try:
                credentials = self._fetcher.fetch(self._endpoint).credentials
                self._install(credentials)
            except TaskCredsError:
                raise
            except Exception as exc:
                # A bug anywhere in a fetch is a failed fetch, never an outage: the cached set
                # stays in use, the next try backs off and the prefetch thread lives on.
                raise _internal_error(exc) from exc
        except TaskCredsError as exc:
            self._last_error = exc
            self._back_off()
            raise
        else:
            self._last_error = None
        finally:
            self._attempts += 1
        return credentials

    def _install(self, credentials: Credentials) -> None:
        now = self._monotonic()
        left = (credentials.expiration - self._clock()).total_seconds()
        if left <= 0:
            raise CredentialsExpiredError(
                f"the endpoint returned credentials that expired at "
                f"{credentials.expiration.isoformat()}",
                hint="check this machine's clock (the expiry is absolute UTC time)",
            )
        previous = self._cached
        same_set = previous is not None and (
            previous.credentials.access_key_id == credentials.access_key_id
        )
        # The same set again keeps its first-seen lifetime, so its windows do not shrink each time.
        lifetime = previous.lifetime if same_set and previous is not None else left
        schedule = refresh_schedule(lifetime, self._jitter)
        expires_at = now + left
        advisory_at = expires_at - schedule.advisory
        refresh_at = advisory_at
        if refresh_at <= now:
            refresh_at = min(now + retry_delay(left), expires_at)
        cached = _Cached(
            credentials=credentials,
            lifetime=lifetime,
            expires_at=expires_at,
            advisory_at=advisory_at,
            mandatory_at=expires_at - schedule.mandatory,
            refresh_at=refresh_at,
        )
        self._cached = cached
        fresh_until = refresh_at
        if self._prefetch_active():
            # The thread refreshes at refresh_at; callers need not until the mandatory point.
            fresh_until = max(refresh_at, cached.mandatory_at)
        self._fast = (credentials, fresh_until)
        self._ensure_prefetch_thread()

    def _back_off(self) -> None:
        """After a failure: keep handing out a still-valid set for a while without blocking."""
        cached = self._cached
        if cached is None:
            return
        now = self._monotonic()
        left = cached.expires_at - now
        if left > 0:
            self._fast = (cached.credentials, now + min(retry_delay(left), left))

    # -- prefetch ------------------------------------------------------------------------------

    def _prefetch_active(self) -> bool:
        return self._prefetch and self._prefetch_healthy and not self._closed.is_set()

    def _ensure_prefetch_thread(self) -> None:
        if not self._prefetch or self._closed.is_set():
            return
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._prefetch_healthy = True
            self._thread = threading.Thread(
                target=self._prefetch_loop, name="taskcreds-prefetch", daemon=True
            )
            self._thread.start()

    def _prefetch_loop(self) -> None:
        retrying = tenacity.Retrying(
            # Every failure is retried: only close() (``_Closed``) ends the thread.
            retry=tenacity.retry_if_not_exception_type(_Closed),
            wait=tenacity.wait_random_exponential(
                multiplier=_PREFETCH_BACKOFF_BASE, max=_PREFETCH_BACKOFF_CAP
            ),
            sleep=self._sleep_unless_closed,
            before_sleep=self._prefetch_failed,
        )
        try:
            while True:
                cached = self._cached
                wait = cached.refresh_at - self._monotonic() if cached is not None else 0.0
                self._sleep_unless_closed(max(wait, 0.0))
                retrying(self._prefetch_once)
        except _Closed:
            return

    def _prefetch_once(self) -> None:
        with self._lock:
            cached = self._cached
            if cached is not None and self._monotonic() < cached.refresh_at:
                return  # a caller refreshed meanwhile
            self._prefetch_healthy = True  # so the new set's fast path leaves refreshing to us
            self._fetch_and_install()

    def _prefetch_failed(self, state: tenacity.RetryCallState) -> None:
        # Hand refreshing back to callers (the synchronous path) until the thread succeeds again;
        # the failed fetch already set when callers may next try (see _back_off).
        self._prefetch_healthy = False
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.warning(
            "prefetching credentials failed; retrying in %.1f s: %s", state.upcoming_sleep, exc
        )

    def _sleep_unless_closed(self, seconds: float) -> None:
        if self._closed.wait(seconds):
            raise _Closed

    def _after_fork_in_child(self) -> None:
        # Locks may have been held by threads that do not exist in the child, and pooled
        # connections share sockets with the parent; the cached set is still good.
        self._new_thread_state()
        self._fetcher.reset_after_fork()
        self._prefetch_healthy = False
        cached = self._cached
        if cached is not None:  # no thread here yet: callers refresh until one starts
            self._fast = (cached.credentials, min(self._fast[1], cached.refresh_at))


def _internal_error(exc: Exception) -> InternalError:
    # Only the type and where it was raised: the message of an unexpected exception was never
    # checked for secrets, so it goes nowhere.
    logger.debug(
        "unexpected %s while fetching credentials, raised at:\n%s",
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)),
    )
    return InternalError(
        f"fetching credentials failed unexpectedly ({type(exc).__name__})",
        hint="this is a bug; run with -vv (or DEBUG logging) for the traceback and report it",
    )


def _reset_after_fork() -> None:
    for provider in list(_providers):
        provider._after_fork_in_child()
    global _default_lock  # noqa: PLW0603 - the module-level lock must be new in the child
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)

_default_provider: CredentialProvider | None = None
_default_lock = threading.Lock()


def get_credentials() -> Credentials:
    """The current credentials from one process-wide provider, created on first use."""
    provider = _default_provider
    if provider is None:
        provider = _get_default_provider()
    return provider.get()


def _get_default_provider() -> CredentialProvider:
    global _default_provider  # noqa: PLW0603 - one provider per process is the point
    with _default_lock:
        if _default_provider is None:
            _default_provider = CredentialProvider()
        return _default_provider
