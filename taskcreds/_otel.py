"""taskcreds' OpenTelemetry metrics: what :func:`taskcreds.telemetry.instrument` sets up.

Imported by ``instrument()`` only, as it needs ``opentelemetry-api`` (the ``otel`` extra). The
names follow OpenTelemetry's semantic-convention rules: dot-namespaced under ``taskcreds``, no
unit in a name, UCUM units (``s``), ``{fetch}``-style annotations for counts, counters in the
plural because they count discrete things.

Two feeds, neither on a caller's path:

- the counters and the histogram: one process-wide listener
  (:func:`~taskcreds.telemetry.add_listener`), called on the telemetry dispatcher thread; per
  event it does an ``isinstance`` and one or two ``add``/``record`` calls with prebuilt
  attribute dicts;
- the gauge: a callback the meter provider's reader calls at each collection, reading the
  live providers' ``stats()`` (no lock of theirs).

One instrumentation at a time per process (:data:`_active`). OpenTelemetry cannot remove an
instrument or its callback, and a meter returns the instrument it made before when asked again
for the same one, callbacks and all; so instruments are left in place when stopped, the
listener checks that it is still the active one, and a gauge callback reports only while an
instrumentation on its own meter provider is active (whichever instrumentation made it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import get_args

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from taskcreds._version import __version__
from taskcreds.provider import _live_providers
from taskcreds.telemetry import (
    _STOP_TIMEOUT,
    REFRESH_KINDS,
    CredentialEvent,
    FetchEvent,
    FetchOutcome,
    Instrumentation,
    RefreshEvent,
    add_listener,
    flush,
    remove_listener,
)

__all__ = [
    "DURATION_BUCKETS",
    "EXPIRES_IN",
    "FETCHES",
    "FETCH_DURATION",
    "METER_NAME",
    "REFRESHES",
    "SOURCE_ATTRIBUTE",
    "instrument",
]

#: The instrumentation scope: the Meter's name (its version is taskcreds').
METER_NAME = "taskcreds"
FETCHES = "taskcreds.fetches"
REFRESHES = "taskcreds.refreshes"
FETCH_DURATION = "taskcreds.fetch.duration"
EXPIRES_IN = "taskcreds.credentials.expires_in"
#: The gauge's attribute: the provider's display source (an endpoint's URL with the
#: credentials ID hidden, or a source's class name), as events and stats name it.
SOURCE_ATTRIBUTE = "source"

#: Bucket bounds of the fetch-duration histogram, in seconds: OpenTelemetry's advice for
#: request durations in seconds (``http.client.request.duration``). The SDK's default bounds
#: (0, 5, 10, 25 ... 10000) are meant for milliseconds: every fetch (a local agent answers in
#: milliseconds, the 5 s deadline caps a whole fetch) would land in the one bucket (0, 5].
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

_OUTCOMES: tuple[FetchOutcome, ...] = get_args(FetchOutcome)


class _Recording:
    """One instrumentation: its handle, its instruments and the listener that feeds them."""

    def __init__(self, meter_provider: MeterProvider, *, on_global: bool) -> None:
        self.meter_provider = meter_provider
        #: Made on the global meter provider (the one ``get_meter_provider()`` returned then).
        self.on_global = on_global
        self.handle = Instrumentation(meter_provider, _stop)
        self.stopped = False
        meter = meter_provider.get_meter(METER_NAME, __version__)
        self._fetches = meter.create_counter(
            FETCHES,
            unit="{fetch}",
            description="Credential fetches from the source, by outcome (retries included in one)",
        )
        self._refreshes = meter.create_counter(
            REFRESHES,
            unit="{refresh}",
            description="Credential refreshes, by why the provider fetched",
        )
        self._duration = meter.create_histogram(
            FETCH_DURATION,
            unit="s",
            description="How long credential fetches took, retries and backoff included",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        meter.create_observable_gauge(
            EXPIRES_IN,
            callbacks=[_ExpiryGauge(meter_provider, on_global=on_global)],
            unit="s",
            description="Seconds until the cached credentials of each source expire",
        )
        self._by_outcome = {outcome: {"outcome": outcome} for outcome in _OUTCOMES}
        self._by_kind = {kind: {"kind": kind} for kind in REFRESH_KINDS}
        # Every series from the start, so that a rate or an alert on `failed` has one to read.
        for by_outcome in self._by_outcome.values():
            self._fetches.add(0, by_outcome)
        for by_kind in self._by_kind.values():
            self._refreshes.add(0, by_kind)

    def on_event(self, event: CredentialEvent) -> None:
        """The listener, on the dispatcher thread: cheap, and nothing once stopped (events
        queued before the listener was removed still arrive)."""
        if self.stopped:
            return
        if isinstance(event, FetchEvent):
            attributes = self._by_outcome[event.outcome]
            self._fetches.add(1, attributes)
            self._duration.record(event.duration, attributes)
        elif isinstance(event, RefreshEvent):
            self._refreshes.add(1, self._by_kind[event.kind])

    def reaches(self, meter_provider: MeterProvider, *, on_global: bool) -> bool:
        """Whether metrics recorded on ``meter_provider`` end where this one's do.

        The global provider is set once: before that, ``get_meter_provider()`` returns a proxy
        that forwards to the one set later, so two instrumentations on the global one (proxy
        or not) record to the same place.
        """
        return meter_provider is self.meter_provider or (on_global and self.on_global)


_lock = threading.Lock()
#: The active instrumentation, or None. Read without the lock by the gauge callbacks.
_active: _Recording | None = None


class _ExpiryGauge:
    """The gauge's callback: one point per source with a set, while an instrumentation on the
    meter provider it was registered with is active (it may outlive the one that made it: the
    meter hands the same gauge, with this callback, to a later instrumentation)."""

    def __init__(self, meter_provider: MeterProvider, *, on_global: bool) -> None:
        self._meter_provider = meter_provider
        self._on_global = on_global

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        active = _active
        if active is None or not active.reaches(self._meter_provider, on_global=self._on_global):
            return []
        lowest: dict[str, float] = {}
        for provider in _live_providers():
            stats = provider.stats()
            if stats.expires_in is None:
                continue
            # Providers on the same source (two caches of one endpoint) share a point: the
            # sooner expiry is the one to alert on.
            seen = lowest.get(stats.source)
            if seen is None or stats.expires_in < seen:
                lowest[stats.source] = stats.expires_in
        return [Observation(left, {SOURCE_ATTRIBUTE: source}) for source, left in lowest.items()]


def instrument(meter_provider: MeterProvider | None) -> Instrumentation:
    """:func:`taskcreds.telemetry.instrument`, once opentelemetry-api is known to import."""
    global _active  # noqa: PLW0603 - one instrumentation per process is the point
    current_global = metrics.get_meter_provider()
    resolved = current_global if meter_provider is None else meter_provider
    on_global = resolved is current_global
    with _lock:
        active = _active
        if active is not None:
            if active.reaches(resolved, on_global=on_global):
                return active.handle
            flush(_STOP_TIMEOUT)  # what happened so far is counted where it was meant to be
            _stop_locked(active)
        recording = _Recording(resolved, on_global=on_global)
        add_listener(recording.on_event)
        _active = recording
        return recording.handle


def _stop(handle: Instrumentation, timeout: float | None) -> None:
    active = _active
    if active is None or active.handle is not handle:
        return  # stopped already, or moved to another meter provider
    flush(timeout)
    with _lock:
        active = _active
        if active is not None and active.handle is handle:
            _stop_locked(active)


def _stop_locked(recording: _Recording) -> None:
    global _active  # noqa: PLW0603
    recording.stopped = True
    recording.handle._active = False
    remove_listener(recording.on_event)
    _active = None


def _reset_after_fork() -> None:
    global _lock  # noqa: PLW0603 - a thread of the parent may have held it: new in the child
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
