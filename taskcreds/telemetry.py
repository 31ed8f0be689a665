"""What a :class:`~taskcreds.CredentialProvider` did: counters, typed events and their delivery.

Two ways to watch a provider, neither of which can slow its ``get()`` down:

- **pull**: ``provider.stats()`` returns a :class:`ProviderStats`, a frozen snapshot of the
  provider's counters (fetches by outcome, retries, refreshes by kind, stale serves, expiries,
  seconds to expiry, the last error). Counters are written on the slow path only, under the
  provider's lock; ``stats()`` reads them without taking it.
- **push**: every fetch, refresh, retry, throttle, stale serve and expiry is a frozen
  :class:`CredentialEvent`. A provider's own listener (``CredentialProvider(...,
  on_event=callback)``) and the process-wide ones (:func:`add_listener`, which see every
  provider's events, the default provider's included) are called from one daemon thread per
  process, fed through a bounded queue: a slow listener delays only later events, a full queue
  drops events (counted in :attr:`ProviderStats.events_dropped`), and a listener that raises is
  logged and otherwise ignored. :func:`flush` waits until every queued event was delivered.

Nothing here holds a secret: events and stats carry the role ARN, the access key ID masked
(``ASIA…WXYZ``), expiry times and error messages that taskcreds builds from safe values only,
never a secret key, session token, authorization token or credentials ID.

:func:`instrument` puts the same on OpenTelemetry instruments (the ``otel`` extra): counters and
a fetch-duration histogram fed by a process-wide listener, and a gauge of every provider's
seconds to expiry.

This module imports nothing beyond the standard library: OpenTelemetry (the private
``taskcreds._otel``) is imported only when :func:`instrument` is called. See
``docs/observability.md``.
"""

from __future__ import annotations

import collections
import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

__all__ = [
    "REFRESH_KINDS",
    "CredentialEvent",
    "EventListener",
    "ExpiryEvent",
    "FetchEvent",
    "FetchOutcome",
    "Instrumentation",
    "ProviderStats",
    "RefreshEvent",
    "RefreshKind",
    "RetryEvent",
    "StaleServeEvent",
    "ThrottleEvent",
    "add_listener",
    "flush",
    "instrument",
    "remove_listener",
]

logger = logging.getLogger("taskcreds")

RefreshKind = Literal["advisory", "mandatory", "prefetch", "forced"]
"""Why a provider fetched: ``advisory`` (a caller in the advisory window; others kept using the
cached set), ``mandatory`` (callers had to wait: the first fetch, the mandatory window, or an
expired set), ``prefetch`` (the background thread) or ``forced`` (``provider.refresh()``)."""

#: Every :data:`RefreshKind`, in the order of the windows.
REFRESH_KINDS: tuple[RefreshKind, ...] = ("advisory", "mandatory", "prefetch", "forced")

FetchOutcome = Literal["ok", "failed", "throttled"]
"""How a fetch ended: a set was installed, it failed, or it failed on HTTP 429 (throttled is not
also counted as failed)."""

EventListener = Callable[["CredentialEvent"], object]
"""Called with each event, in the dispatcher thread; its return value is ignored."""


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialEvent:
    """Base class of every event. Events are frozen and hold no secret."""

    #: When it happened (for a fetch: when it ended), on the provider's clock, aware UTC.
    at: datetime
    #: Which provider: its endpoint's display URL (credentials ID hidden), or for another
    #: source its class name (``StaticSource``).
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchEvent(CredentialEvent):
    """One fetch from the source ended, retries included (a :class:`RefreshEvent` follows)."""

    #: ``"ok"``, ``"failed"`` or ``"throttled"`` (failed on HTTP 429).
    outcome: FetchOutcome
    #: Seconds the fetch took, retries and backoff included, on the provider's monotonic clock.
    duration: float
    #: Attempts made: 1 plus the retries (:class:`RetryEvent`); 1 for a source that never retries.
    attempts: int
    #: HTTP status of the last attempt: 200 on success from an endpoint; None when the last
    #: attempt got no HTTP answer or the source is not an HTTP endpoint.
    status: int | None = None
    #: On failure: the error's class name (``ThrottledError``, ``EndpointUnreachableError``...).
    error_type: str | None = None
    #: On failure: the endpoint's or AWS's error code (``InvalidIdInRequest``, ``AccessDenied``),
    #: or for an unreachable endpoint the reason (``refused``, ``timeout``, ``reset``, ``dns``,
    #: ``other``); None when there is none.
    code: str | None = None
    #: On failure: the error as taskcreds words it (message and hint), secret-free.
    error: str | None = None
    #: On success: the role the set belongs to, when the endpoint named it.
    role_arn: str | None = None
    #: On success: the access key ID, masked (``ASIA…WXYZ``).
    access_key_id: str | None = None
    #: On success: when the new set expires (aware UTC).
    expiration: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshEvent(CredentialEvent):
    """A refresh ended: why the provider fetched, and whether a new set is installed.

    Every fetch is one refresh, so the counts of the two agree (``sum(refreshes.values())`` is
    the number of fetches).
    """

    #: Why the provider fetched (:data:`RefreshKind`).
    kind: RefreshKind
    #: ``"ok"`` or ``"failed"`` (throttled included).
    outcome: Literal["ok", "failed"]
    #: Seconds until the set in use now expires (the new one, or after a failure the cached
    #: one; negative once it has expired); None when there is none.
    expires_in: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryEvent(CredentialEvent):
    """An attempt of a fetch from the endpoint failed and another follows after ``delay``.

    Only the container endpoint's fetcher retries; other sources never emit one.
    """

    #: The attempt that failed, from 1.
    attempt: int
    #: Seconds of backoff before the next attempt.
    delay: float
    #: HTTP status of the failed attempt, or None when it got no HTTP answer.
    status: int | None
    #: The error's class name.
    error_type: str
    #: The endpoint's error code, or the network reason (as :attr:`FetchEvent.code`).
    code: str | None
    #: The error as taskcreds words it, secret-free.
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleEvent(CredentialEvent):
    """The endpoint answered HTTP 429 (the agent's per-client rate limit) to one attempt."""

    #: The attempt that was throttled, from 1.
    attempt: int
    #: Seconds until the next attempt, or None when the fetch gave up on this answer.
    delay: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StaleServeEvent(CredentialEvent):
    """A refresh that callers waited for failed, and the cached set (still valid) was returned."""

    #: Seconds until the set that was returned expires.
    expires_in: float
    #: The class name of the failure that forced it.
    error_type: str
    #: That failure as taskcreds words it, secret-free.
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpiryEvent(CredentialEvent):
    """The cached set had expired and could not be refreshed: the caller got
    :class:`~taskcreds.CredentialsExpiredError`."""

    #: When the cached set expired (aware UTC).
    expiration: datetime
    #: The class name of the refresh failure.
    error_type: str
    #: That failure as taskcreds words it, secret-free.
    error: str


# -- stats -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderStats:
    """A snapshot of one provider's counters, from ``CredentialProvider.stats()``.

    Counts start at 0 when the provider is made (a forked child starts from its parent's). The
    snapshot is read without a lock while a refresh may be under way, so two values may be a
    moment apart (a fetch counted, its refresh not yet); each value on its own is exact.
    """

    #: The provider, as events name it (:attr:`CredentialEvent.source`).
    source: str
    #: Fetches that installed a set.
    fetches_ok: int
    #: Fetches that failed, except those that failed on HTTP 429.
    fetches_failed: int
    #: Fetches that failed on HTTP 429.
    fetches_throttled: int
    #: Attempts retried within fetches (one per :class:`RetryEvent`).
    retries: int
    #: Refreshes by :data:`RefreshKind`, every kind present; read-only.
    refreshes: Mapping[RefreshKind, int] = field(hash=False)
    #: Refreshes that callers waited for (the mandatory window) which failed, so that the
    #: still-valid cached set was returned: once per failed refresh (the calls during the pause
    #: after it get the cached set uncounted, from the fast path).
    stale_served: int
    #: Times a caller got ``CredentialsExpiredError``: the set had expired, the refresh failed.
    expirations: int
    #: Seconds until the cached set expires (0.0 once it has); None before the first set.
    expires_in: float | None
    #: The last failed fetch's error as taskcreds words it (kept after later successes).
    last_error: str | None
    #: When that fetch failed (aware UTC, the provider's clock).
    last_error_at: datetime | None
    #: Events of this provider dropped because the delivery queue was full.
    events_dropped: int


# -- listeners and delivery --------------------------------------------------------------------

#: Events waiting for the dispatcher thread. Providers emit a few events per fetch (hours
#: apart), so the queue fills only behind a listener that blocks; it then drops rather than grow.
_QUEUE_SIZE = 1024

_listeners: tuple[EventListener, ...] = ()
_listeners_lock = threading.Lock()


def add_listener(listener: EventListener) -> Callable[[], None]:
    """Call ``listener`` with the events of every provider in this process (the default
    provider's included, and providers made later). Returns a function that removes it."""
    global _listeners  # noqa: PLW0603 - copy on write: readers take no lock
    with _listeners_lock:
        _listeners = (*_listeners, listener)
    return lambda: remove_listener(listener)


def remove_listener(listener: EventListener) -> None:
    """Stop calling ``listener`` (added with :func:`add_listener`); unknown ones are ignored."""
    global _listeners  # noqa: PLW0603
    with _listeners_lock:
        kept = list(_listeners)
        if listener in kept:
            kept.remove(listener)
        _listeners = tuple(kept)


def flush(timeout: float | None = None) -> bool:
    """Wait until every event queued so far has been delivered; False if ``timeout`` seconds
    passed first. Called from a listener (the dispatcher thread), it returns False at once."""
    return _dispatcher.flush(timeout)


# -- OpenTelemetry -----------------------------------------------------------------------------


def instrument(meter_provider: MeterProvider | None = None) -> Instrumentation:
    """Record every provider's fetches, refreshes and expiry on OpenTelemetry instruments.

    Needs ``opentelemetry-api`` (``pip install 'taskcreds[otel]'``); without it, raises
    :class:`~taskcreds.errors.DependencyMissingError`. On a Meter named ``taskcreds`` (with
    taskcreds' version) from ``meter_provider``, default the global one
    (``opentelemetry.metrics.get_meter_provider()``, which forwards to an SDK set later):

    - ``taskcreds.fetches``: counter, unit ``{fetch}``, attribute ``outcome``;
    - ``taskcreds.refreshes``: counter, unit ``{refresh}``, attribute ``kind``;
    - ``taskcreds.fetch.duration``: histogram, unit ``s``, attribute ``outcome``;
    - ``taskcreds.credentials.expires_in``: observable gauge, unit ``s``, attribute ``source``,
      one point per source of the live providers that hold a set.

    The counters and the histogram are fed by one process-wide listener (:func:`add_listener`),
    so they see every provider, made before or after this call, from now on. At most one
    instrumentation is active per process, so nothing is counted twice: called again while one
    is active, with the same meter provider (or again with the global one), this returns the
    active handle and adds nothing; with another meter provider, it uninstruments the active
    one first (as :meth:`Instrumentation.uninstrument` does) and records on the new one from
    then on.
    """
    try:
        importlib.import_module("opentelemetry.metrics")
    except ImportError as exc:
        from taskcreds.errors import DependencyMissingError

        raise DependencyMissingError(
            f"taskcreds.telemetry.instrument() needs the opentelemetry-api package ({exc})",
            extra="otel",
        ) from exc
    from taskcreds._otel import instrument as instrument_otel

    return instrument_otel(meter_provider)


#: How long stopping an instrumentation waits for queued events to be counted: delivery takes
#: microseconds, so only a listener that blocks makes it wait, and then not forever.
_STOP_TIMEOUT = 5.0


class Instrumentation:
    """What :func:`instrument` returns: taskcreds' metrics on one OpenTelemetry meter provider.

    They are recorded until :meth:`uninstrument` (or ``close()``, or the end of a ``with``
    block), or until a later :func:`instrument` call moves them to another meter provider.
    """

    def __init__(
        self,
        meter_provider: MeterProvider,
        stop: Callable[[Instrumentation, float | None], None],
    ) -> None:
        self._meter_provider = meter_provider
        self._stop = stop
        self._active = True  # set False by taskcreds._otel when it stops this one

    @property
    def meter_provider(self) -> MeterProvider:
        """Where the metrics go: the meter provider given to :func:`instrument`, or the global
        one it found."""
        return self._meter_provider

    @property
    def active(self) -> bool:
        """True until :meth:`uninstrument`, or until :func:`instrument` moved the metrics to
        another meter provider."""
        return self._active

    def uninstrument(self, timeout: float | None = _STOP_TIMEOUT) -> None:
        """Stop recording; does nothing if already stopped.

        First waits up to ``timeout`` seconds (:func:`flush`) so that what happened before this
        call is counted; an event still queued after that is not. Then the listener goes and
        the gauge reports no more points (the instruments themselves stay in the meter
        provider: OpenTelemetry has no way to remove one).
        """
        self._stop(self, timeout)

    def close(self, timeout: float | None = _STOP_TIMEOUT) -> None:
        """The same as :meth:`uninstrument`."""
        self._stop(self, timeout)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop(self, _STOP_TIMEOUT)

    def __repr__(self) -> str:
        state = "active" if self._active else "stopped"
        return f"<taskcreds.telemetry.Instrumentation {state} on {self._meter_provider!r}>"


def _publish(event: CredentialEvent, own: EventListener | None) -> bool:
    """Queue ``event`` for ``own`` (its emitter's listener) and the process-wide listeners.

    For taskcreds' own emitters (the providers' recorder). Never waits for or calls a listener
    (it takes the queue's own lock for a moment); False when the queue was full and the event
    was dropped (True when nobody listens: then nothing is queued and no thread is started).
    """
    listeners = _listeners if own is None else (own, *_listeners)
    if not listeners:
        return True
    return _dispatcher.submit(event, listeners)


class _Dispatcher:
    """One daemon thread that delivers queued events, started on the first one."""

    def __init__(self, maxsize: int = _QUEUE_SIZE) -> None:
        self._maxsize = maxsize
        self._new_state()

    def _new_state(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._queue: collections.deque[tuple[CredentialEvent, tuple[EventListener, ...]]] = (
            collections.deque()
        )
        self._undelivered = 0  # queued or being delivered
        self._thread: threading.Thread | None = None
        self._warned: set[object] = set()  # listeners that raised, warned once each

    def submit(self, event: CredentialEvent, listeners: tuple[EventListener, ...]) -> bool:
        with self._condition:
            if len(self._queue) >= self._maxsize:
                return False
            self._queue.append((event, listeners))
            self._undelivered += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="taskcreds-events", daemon=True
                )
                self._thread.start()
            self._condition.notify_all()
        return True

    def flush(self, timeout: float | None) -> bool:
        if threading.current_thread() is self._thread:
            return False  # a listener waiting for its own delivery would wait forever
        with self._condition:
            return self._condition.wait_for(lambda: self._undelivered == 0, timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue:
                    self._condition.wait()
                event, listeners = self._queue.popleft()
            for listener in listeners:
                self._deliver(listener, event)
            with self._condition:
                self._undelivered -= 1
                self._condition.notify_all()

    def _deliver(self, listener: EventListener, event: CredentialEvent) -> None:
        try:
            listener(event)
        except Exception as exc:
            key = _key(listener)
            first = key not in self._warned
            self._warned.add(key)
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "a taskcreds event listener %r raised %s on %s; the event is skipped for it%s",
                listener,
                type(exc).__name__,
                type(event).__name__,
                " (further errors of this listener are logged at DEBUG)" if first else "",
                exc_info=True,
            )

    def after_fork_in_child(self) -> None:
        # The thread does not exist in the child and the lock may be held; the queued events
        # are the parent's to deliver, not the child's.
        self._new_state()


def _key(listener: EventListener) -> object:
    try:
        hash(listener)
    except TypeError:
        return id(listener)
    return listener


_dispatcher = _Dispatcher()


def _reset_after_fork() -> None:
    global _listeners_lock  # noqa: PLW0603 - the module-level lock must be new in the child
    _listeners_lock = threading.Lock()
    _dispatcher.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
