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

The windows scale with the set's lifetime L (see :mod:`taskcreds._schedule`), so 15-minute STS
sessions are not refreshed on every call (botocore#2189) and 6-hour ECS sets refresh 15 minutes
early, as botocore does. The background refresh is :mod:`taskcreds._prefetch`'s; the counters,
events and log records of every fetch are :mod:`taskcreds._recorder`'s (see
:mod:`taskcreds.telemetry`), written on the slow path only.
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
from datetime import datetime, timezone
from types import TracebackType

import requests

from taskcreds._prefetch import PrefetchWorker
from taskcreds._recorder import Recorder
from taskcreds._schedule import (
    ADVISORY_WINDOW,
    MANDATORY_WINDOW,
    Cached,
    RefreshSchedule,
    Schedule,
    refresh_schedule,
    retry_delay,
    schedule_for,
    serving_schedule,
)
from taskcreds._time import Clock, Monotonic, Sleep, utc_now
from taskcreds.credentials import Credentials
from taskcreds.endpoint import Endpoint, Resolver, system_resolver
from taskcreds.errors import CredentialsExpiredError, InternalError, TaskCredsError
from taskcreds.fetch import DEFAULT_DEADLINE, observing_retries
from taskcreds.sources import CredentialSource, EndpointFetcher, EndpointSource
from taskcreds.telemetry import EventListener, ProviderStats, RefreshKind

__all__ = [
    "ADVISORY_WINDOW",
    "MANDATORY_WINDOW",
    "CredentialProvider",
    "RefreshSchedule",
    "default_provider",
    "get_credentials",
    "refresh_schedule",
    "retry_delay",
    "serving_schedule",
]

logger = logging.getLogger("taskcreds")

#: How long close() waits for the prefetch thread, for a source that names no deadline.
_DEFAULT_JOIN_SECONDS = 2 * DEFAULT_DEADLINE

_PLACEHOLDER = Credentials("-", "-", "-", datetime(1970, 1, 1, tzinfo=timezone.utc))
_providers: weakref.WeakSet[CredentialProvider] = weakref.WeakSet()
# Iterating a WeakSet while another thread adds to it raises RuntimeError: adds and copies hold it.
_providers_lock = threading.Lock()


def _live_providers() -> list[CredentialProvider]:
    """Every provider in this process not yet garbage-collected (for telemetry's expiry gauge)."""
    with _providers_lock:
        return list(_providers)


class CredentialProvider:
    """Caches credentials from a source and refreshes them before they expire.

    ``CredentialProvider(environ)`` caches the container endpoint the environment names
    (an :class:`~taskcreds.sources.EndpointSource`); :meth:`from_source` caches any
    :class:`~taskcreds.sources.CredentialSource`. Thread-safe and fork-safe. ``environ``
    defaults to ``os.environ`` (read now, not at import); ``timeout`` bounds one whole fetch,
    retries included. ``prefetch=True`` refreshes in a daemon thread before callers must.
    ``schedule`` places the refresh points in a set's lifetime (default
    :func:`~taskcreds.provider.refresh_schedule`, botocore's windows scaled to short sets; the
    broker uses :func:`~taskcreds.provider.serving_schedule`). ``clock`` (aware UTC),
    ``monotonic``, ``sleep``, ``session``, ``resolver``, ``fetcher`` and ``jitter`` are
    injectable for tests. ``on_event`` is called with each of this provider's
    :mod:`~taskcreds.telemetry` events, from a daemon thread (never from ``get()``);
    :meth:`stats` returns its counters.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        allowed_hosts: Iterable[str] = (),
        timeout: float = DEFAULT_DEADLINE,
        prefetch: bool = False,
        clock: Clock = utc_now,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = time.sleep,
        session: requests.Session | None = None,
        resolver: Resolver = system_resolver,
        fetcher: EndpointFetcher | None = None,
        jitter: Callable[[], float] = random.random,
        schedule: Schedule = refresh_schedule,
        on_event: EventListener | None = None,
    ) -> None:
        source = EndpointSource(
            environ,
            allowed_hosts=allowed_hosts,
            timeout=timeout,
            session=session,
            resolver=resolver,
            sleep=sleep,
            monotonic=monotonic,
            fetcher=fetcher,
        )
        self._setup(
            source,
            prefetch=prefetch,
            clock=clock,
            monotonic=monotonic,
            jitter=jitter,
            schedule=schedule,
            on_event=on_event,
        )

    @classmethod
    def from_source(
        cls,
        source: CredentialSource,
        *,
        prefetch: bool = False,
        clock: Clock = utc_now,
        monotonic: Monotonic = time.monotonic,
        jitter: Callable[[], float] = random.random,
        schedule: Schedule = refresh_schedule,
        on_event: EventListener | None = None,
    ) -> CredentialProvider:
        """A provider that caches ``source`` with the same windows, single flight, stale-on-error,
        jitter, prefetch and telemetry as the container endpoint gets."""
        provider = cls.__new__(cls)
        provider._setup(
            source,
            prefetch=prefetch,
            clock=clock,
            monotonic=monotonic,
            jitter=jitter,
            schedule=schedule,
            on_event=on_event,
        )
        return provider

    def _setup(
        self,
        source: CredentialSource,
        *,
        prefetch: bool,
        clock: Clock,
        monotonic: Monotonic,
        jitter: Callable[[], float],
        schedule: Schedule,
        on_event: EventListener | None,
    ) -> None:
        self._source = source
        self._schedule = schedule
        self._clock = clock
        self._monotonic = monotonic
        self._jitter = jitter
        # The hot path reads only this pair: the set to hand out, and until when without asking.
        self._fast: tuple[Credentials, float] = (_PLACEHOLDER, -math.inf)
        self._cached: Cached | None = None
        self._attempts = 0
        self._last_error: TaskCredsError | None = None
        self._lock = threading.Lock()
        endpoint: Endpoint | None = getattr(source, "endpoint", None)
        self._recorder = Recorder(
            # A class name, not a repr: any source's repr could show anything.
            endpoint.display_url if endpoint is not None else type(source).__qualname__,
            clock=clock,
            monotonic=monotonic,
            on_event=on_event,
            http=endpoint is not None,
        )
        self._worker = (
            PrefetchWorker(due=self._prefetch_due, refresh=self._prefetch_once, monotonic=monotonic)
            if prefetch
            else None
        )
        with _providers_lock:
            _providers.add(self)

    @property
    def source(self) -> CredentialSource:
        """What this provider caches."""
        return self._source

    @property
    def prefetching(self) -> bool:
        """Whether a prefetch thread refreshes this provider (made with ``prefetch=True`` and
        not closed)."""
        worker = self._worker
        return worker is not None and not worker.stopped

    @property
    def endpoint(self) -> Endpoint:
        """Where credentials come from: URL and token source (never the token).

        Raises :class:`AttributeError` for a provider made with :meth:`from_source` whose source
        is not an endpoint.
        """
        endpoint: Endpoint | None = getattr(self._source, "endpoint", None)
        if endpoint is None:
            raise AttributeError(f"{self._source!r} is not a credentials endpoint")
        return endpoint

    def __repr__(self) -> str:
        cached = self._cached
        expiry = cached.credentials.expiration.isoformat() if cached else None
        endpoint: Endpoint | None = getattr(self._source, "endpoint", None)
        where = f"url={endpoint.display_url!r}" if endpoint else f"source={self._source!r}"
        return f"CredentialProvider({where}, expiration={expiry!r})"

    def stats(self) -> ProviderStats:
        """This provider's counters (see :class:`~taskcreds.telemetry.ProviderStats`).

        Takes no lock: the counters are plain attributes written under the lock on the slow
        path, read here as they are, so two values may be a moment apart during a refresh.
        """
        cached = self._cached
        left = None if cached is None else max(cached.expires_at - self._monotonic(), 0.0)
        return self._recorder.stats(left)

    def get(self) -> Credentials:
        """The current credentials, from the cache unless a refresh is due."""
        credentials, fresh_until = self._fast
        if self._monotonic() < fresh_until:
            return credentials
        return self._get_slow()

    def _without_waiting(self) -> tuple[Credentials | None, bool]:
        """For :mod:`taskcreds.aio`, which must never block its event loop: the set ``get()``
        would return at once (fresh, or in the advisory window) or None when it would wait
        for a fetch, and whether a refresh is due (the caller starts it elsewhere)."""
        credentials, fresh_until = self._fast
        now = self._monotonic()
        if now < fresh_until:
            return credentials, False
        cached = self._cached
        if cached is not None and now < cached.mandatory_at:
            return self._fast[0], True
        return None, True

    def peek(self) -> Credentials | None:
        """The cached set while it is unexpired, else None; never fetches, never waits.

        For servers that must answer from cache (the broker) while the prefetch thread or
        another caller refreshes.
        """
        cached = self._cached
        if cached is None or self._monotonic() >= cached.expires_at:
            return None
        return cached.credentials

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
            return self._fetch_and_install("forced")

    def close(self) -> None:
        """Stop the prefetch thread, if any; the cached set stays usable and callers refresh it."""
        worker = self._worker
        if worker is not None:
            with self._lock:  # not between an install's two writes
                worker.stop()
                cached = self._cached
                if cached is not None:  # callers take refreshing back from the thread
                    self._fast = (cached.credentials, min(self._fast[1], cached.refresh_at))
            deadline = getattr(self._source, "deadline", None)
            worker.join(timeout=2 * deadline if deadline else _DEFAULT_JOIN_SECONDS)
        self._source.close()  # pooled connections; a later refresh opens new ones

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
            self._fetch_and_install("advisory")
        except TaskCredsError:
            pass  # logged (WARNING: the cached set stays in use); the next try backs off
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
                return self._fetch_and_install("mandatory")
            except TaskCredsError as exc:
                return self._fall_back(exc)

    def _fall_back(self, error: TaskCredsError) -> Credentials:
        """After a failed refresh: the cached set while valid, else CredentialsExpiredError."""
        cached = self._cached
        if cached is None:
            raise error
        left = cached.expires_at - self._monotonic()
        if left <= 0:
            self._recorder.expired(cached.credentials.expiration, error)
            raise CredentialsExpiredError(
                f"the cached credentials expired at {cached.credentials.expiration.isoformat()} "
                f"and refreshing them failed: {error}",
                hint="see the cause below; `python -m taskcreds doctor` checks each step",
            ) from error
        self._recorder.served_stale(left, error)  # the failure itself was logged once
        return cached.credentials

    def _fetch_and_install(self, kind: RefreshKind) -> Credentials:
        """Fetch and install a set, counted as a ``kind`` refresh. Call with the lock held.

        ``_attempts`` counts *finished* attempts: a caller that starts waiting while one is in
        flight sees the count change when it ends, and shares its outcome instead of asking again.
        """
        recorder = self._recorder
        recorder.started()
        try:
            try:
                with observing_retries(recorder.retried):  # the endpoint's, if it is one
                    credentials = self._source.fetch()
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
            recorder.failed(kind, exc, self._cached)
            raise
        else:
            self._last_error = None
            assert self._cached is not None
            recorder.succeeded(kind, credentials, self._cached)
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
        cached = schedule_for(
            credentials, left, now, self._cached, jitter=self._jitter, schedule=self._schedule
        )
        self._cached = cached
        fresh_until = cached.refresh_at
        if self._prefetch_active():
            # The thread refreshes at refresh_at; callers need not until the mandatory point.
            fresh_until = max(cached.refresh_at, cached.mandatory_at)
        self._fast = (credentials, fresh_until)
        if self._worker is not None:
            self._worker.ensure_running()

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
        worker = self._worker
        return worker is not None and worker.healthy and not worker.stopped

    def _prefetch_due(self) -> float | None:
        cached = self._cached
        return cached.refresh_at if cached is not None else None

    def _prefetch_once(self) -> None:
        worker = self._worker
        assert worker is not None
        with self._lock:
            cached = self._cached
            if cached is not None and self._monotonic() < cached.refresh_at:
                return  # a caller refreshed meanwhile
            worker.healthy = True  # so the new set's fast path leaves refreshing to the thread
            self._fetch_and_install("prefetch")

    def _after_fork_in_child(self) -> None:
        # Locks may have been held by threads that do not exist in the child, and pooled
        # connections share sockets with the parent; the cached set is still good.
        self._lock = threading.Lock()
        if self._worker is not None:
            self._worker.reset_after_fork()
        self._source.reset_after_fork()
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
    global _default_lock, _providers_lock  # noqa: PLW0603 - module-level locks: new in the child
    _default_lock = threading.Lock()
    _providers_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)

_default_provider: CredentialProvider | None = None
_default_lock = threading.Lock()


def get_credentials() -> Credentials:
    """The current credentials from the process-wide provider (:func:`default_provider`)."""
    provider = _default_provider
    if provider is None:
        provider = default_provider()
    return provider.get()


def default_provider() -> CredentialProvider:
    """The process-wide provider that :func:`get_credentials`, :func:`taskcreds.session` and
    :class:`taskcreds.Uploader` use unless given one; made on first use from ``os.environ``."""
    global _default_provider  # noqa: PLW0603 - one provider per process is the point
    with _default_lock:
        if _default_provider is None:
            _default_provider = CredentialProvider()
        return _default_provider
