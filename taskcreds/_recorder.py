"""A provider's counters, events and log records, kept out of the cache's own logic.

:class:`~taskcreds.CredentialProvider` calls a :class:`Recorder` on its slow path only (never
from ``get()``'s fast path) and always with its lock held, so every counter has one writer at a
time; ``stats()`` reads them without the lock. Events go to :mod:`taskcreds.telemetry`'s
dispatcher thread, never to a listener directly. Log records are written here, one per fetch:

- INFO when a set was installed: role, masked key, expiry, duration, attempts;
- WARNING when it failed and the cached set stays in use;
- ERROR when it failed and there is no usable set (none yet, or it has expired).

Every record carries the fields as ``extra`` (``record.taskcreds_outcome``...), so a JSON
formatter emits them as keys; they are the :class:`~taskcreds.telemetry.FetchEvent`'s fields,
plus ``taskcreds_event``, ``taskcreds_kind`` and ``taskcreds_expires_in``.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from taskcreds import telemetry
from taskcreds.credentials import Credentials, format_timestamp, mask_key_id
from taskcreds.errors import EndpointHTTPError, EndpointUnreachableError, TaskCredsError
from taskcreds.telemetry import (
    REFRESH_KINDS,
    CredentialEvent,
    EventListener,
    ExpiryEvent,
    FetchEvent,
    FetchOutcome,
    ProviderStats,
    RefreshEvent,
    RefreshKind,
    RetryEvent,
    StaleServeEvent,
    ThrottleEvent,
)

if TYPE_CHECKING:
    from taskcreds._schedule import Cached
    from taskcreds._time import Clock, Monotonic
    from taskcreds.errors import EndpointError

__all__ = ["Recorder", "error_fields"]

logger = logging.getLogger("taskcreds")


def error_fields(error: TaskCredsError) -> tuple[str, int | None, str | None, str]:
    """``(class name, HTTP status, code, text)`` of an error, all safe to show.

    The code is the endpoint's or AWS's error code, or for an unreachable endpoint the reason.
    """
    status = error.status if isinstance(error, EndpointHTTPError) else None
    code = getattr(error, "code", None)
    if isinstance(error, EndpointUnreachableError):
        code = error.reason
    return type(error).__name__, status, code if isinstance(code, str) else None, str(error)


class Recorder:
    """The counters and event stream of one provider."""

    def __init__(
        self,
        source: str,
        *,
        clock: Clock,
        monotonic: Monotonic,
        on_event: EventListener | None,
        http: bool,
    ) -> None:
        self.source = source
        self._clock = clock
        self._monotonic = monotonic
        self._on_event = on_event
        self._http = http  # an endpoint source: a success was an HTTP 200
        self.fetches_ok = 0
        self.fetches_failed = 0
        self.fetches_throttled = 0
        self.retries = 0
        self.refreshes: dict[RefreshKind, int] = dict.fromkeys(REFRESH_KINDS, 0)
        self.stale_served = 0
        self.expirations = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.events_dropped = 0
        # The fetch in flight (one at a time: the provider's lock is held).
        self._started = 0.0
        self._fetch_retries = 0

    def stats(self, expires_in: float | None) -> ProviderStats:
        return ProviderStats(
            source=self.source,
            fetches_ok=self.fetches_ok,
            fetches_failed=self.fetches_failed,
            fetches_throttled=self.fetches_throttled,
            retries=self.retries,
            refreshes=MappingProxyType(dict(self.refreshes)),
            stale_served=self.stale_served,
            expirations=self.expirations,
            expires_in=expires_in,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            events_dropped=self.events_dropped,
        )

    # -- a fetch -------------------------------------------------------------------------------

    def started(self) -> None:
        self._started = self._monotonic()
        self._fetch_retries = 0

    def retried(self, attempt: int, error: EndpointError, delay: float) -> None:
        """A :data:`~taskcreds.fetch.RetryObserver`: an attempt of the fetch in flight failed."""
        self.retries += 1
        self._fetch_retries += 1
        error_type, status, code, text = error_fields(error)
        at = self._clock()
        if status == 429:
            self._emit(ThrottleEvent(at=at, source=self.source, attempt=attempt, delay=delay))
        self._emit(
            RetryEvent(
                at=at,
                source=self.source,
                attempt=attempt,
                delay=delay,
                status=status,
                error_type=error_type,
                code=code,
                error=text,
            )
        )

    def succeeded(self, kind: RefreshKind, credentials: Credentials, cached: Cached) -> None:
        self.fetches_ok += 1
        self.refreshes[kind] += 1
        event = FetchEvent(
            at=self._clock(),
            source=self.source,
            outcome="ok",
            duration=self._monotonic() - self._started,
            attempts=self._fetch_retries + 1,
            status=200 if self._http else None,
            role_arn=credentials.role_arn,
            access_key_id=mask_key_id(credentials.access_key_id),
            expiration=credentials.expiration,
        )
        expires_in = cached.expires_at - self._monotonic()
        logger.info(
            "fetched credentials%s (key %s) expiring at %s in %.2f s after %s (%s refresh)",
            f" for {credentials.role_arn}" if credentials.role_arn else "",
            event.access_key_id,
            format_timestamp(credentials.expiration),
            event.duration,
            _attempts(event.attempts),
            kind,
            extra=_extra(event, kind, expires_in),
        )
        self._emit(event)
        self._emit(
            RefreshEvent(
                at=event.at, source=self.source, kind=kind, outcome="ok", expires_in=expires_in
            )
        )

    def failed(self, kind: RefreshKind, error: TaskCredsError, cached: Cached | None) -> None:
        """The fetch failed; ``cached`` is the set still installed (the log says what happens)."""
        error_type, status, code, text = error_fields(error)
        outcome: FetchOutcome = "throttled" if status == 429 else "failed"
        if outcome == "throttled":
            self.fetches_throttled += 1
        else:
            self.fetches_failed += 1
        self.refreshes[kind] += 1
        at = self._clock()
        self.last_error, self.last_error_at = text, at
        event = FetchEvent(
            at=at,
            source=self.source,
            outcome=outcome,
            duration=self._monotonic() - self._started,
            attempts=self._fetch_retries + 1,
            status=status,
            error_type=error_type,
            code=code,
            error=text,
        )
        expires_in = cached.expires_at - self._monotonic() if cached is not None else None
        how = f"after {event.duration:.2f} s and {_attempts(event.attempts)} ({kind} refresh)"
        extra = _extra(event, kind, expires_in)
        if cached is None:
            logger.error("fetching credentials failed %s; none to use: %s", how, text, extra=extra)
        elif expires_in is not None and expires_in <= 0:
            logger.error(
                "refreshing credentials failed %s; the cached set expired at %s: %s",
                how,
                format_timestamp(cached.credentials.expiration),
                text,
                extra=extra,
            )
        else:
            logger.warning(
                "refreshing credentials failed %s; using the cached set, which expires in "
                "%.0f s: %s",
                how,
                expires_in,
                text,
                extra=extra,
            )
        if outcome == "throttled":
            self._emit(ThrottleEvent(at=at, source=self.source, attempt=event.attempts, delay=None))
        self._emit(event)
        self._emit(
            RefreshEvent(
                at=at, source=self.source, kind=kind, outcome="failed", expires_in=expires_in
            )
        )

    # -- after a failed refresh ----------------------------------------------------------------

    def served_stale(self, expires_in: float, error: TaskCredsError) -> None:
        self.stale_served += 1
        self._emit(
            StaleServeEvent(
                at=self._clock(),
                source=self.source,
                expires_in=expires_in,
                error_type=type(error).__name__,
                error=str(error),
            )
        )

    def expired(self, expiration: datetime, error: TaskCredsError) -> None:
        self.expirations += 1
        self._emit(
            ExpiryEvent(
                at=self._clock(),
                source=self.source,
                expiration=expiration,
                error_type=type(error).__name__,
                error=str(error),
            )
        )

    def _emit(self, event: CredentialEvent) -> None:
        if not telemetry._publish(event, self._on_event):
            self.events_dropped += 1


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _extra(event: FetchEvent, kind: RefreshKind, expires_in: float | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"taskcreds_event": "fetch", "taskcreds_kind": kind}
    for item in fields(event):
        if item.name == "at":  # the record's own time
            continue
        value = getattr(event, item.name)
        extra[f"taskcreds_{item.name}"] = (
            format_timestamp(value) if isinstance(value, datetime) else value
        )
    extra["taskcreds_expires_in"] = expires_in
    return extra
