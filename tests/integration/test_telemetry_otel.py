"""telemetry.instrument(): taskcreds' OpenTelemetry metrics, read with the real opentelemetry-sdk.

Each test has its own SDK MeterProvider with an InMemoryMetricReader. Counting happens on the
telemetry dispatcher thread: tests call telemetry.flush() before reading, never sleep. Sources
run on a fake clock, so durations and expiries are exact.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)

import taskcreds
from taskcreds import CredentialProvider, Credentials, telemetry
from taskcreds.errors import EndpointUnreachableError, ThrottledError
from taskcreds.local import AgentServer
from taskcreds.telemetry import CredentialEvent, Instrumentation
from tests.unit.test_provider import FakeTime

from .conftest import full_uri_environ

SECRET = "CANARY-SECRET-wJalrXUtnFEMI-K7MDENG"
TOKEN = "CANARY-TOKEN-IQoJb3JpZ2luX2VjE"


# Made anew for each raise: a module-level exception would keep its last traceback, and with it
# the provider that raised it, alive in the gauge of later tests.
def unreachable() -> EndpointUnreachableError:
    return EndpointUnreachableError("agent down", url="http://127.0.0.1:9/…", reason="refused")


def throttled() -> ThrottledError:
    return ThrottledError(
        "throttled", url="http://127.0.0.1:9/…", status=429, code=None, detail="Rate exceeded"
    )


class OtelTestSource:
    """A CredentialSource: a new set per fetch, living ``lifetime`` seconds of fake time; a
    fetch takes ``takes`` fake seconds and raises ``failure`` when one is set."""

    lifetime = 6 * 3600

    def __init__(self, fake_time: FakeTime, *, takes: float = 0.0) -> None:
        self.time = fake_time
        self.takes = takes
        self.failure: Exception | None = None
        self.fetches = 0

    def fetch(self) -> Credentials:
        self.time.advance(self.takes)
        if self.failure is not None:
            raise self.failure
        self.fetches += 1
        return Credentials(
            f"ASIA{self.fetches:012d}WXYZ",
            SECRET,
            TOKEN,
            self.time.clock() + timedelta(seconds=self.lifetime),
        )

    def close(self) -> None:
        pass

    def reset_after_fork(self) -> None:
        pass


class OtelShortSource(OtelTestSource):
    """Another source (so another ``source`` attribute), with 15-minute sets."""

    lifetime = 900


def fake_provider(
    source_type: type[OtelTestSource] = OtelTestSource,
    *,
    takes: float = 0.0,
    on_event: telemetry.EventListener | None = None,
) -> tuple[CredentialProvider, OtelTestSource, FakeTime]:
    fake_time = FakeTime()
    source = source_type(fake_time, takes=takes)
    provider = CredentialProvider.from_source(
        source,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        jitter=lambda: 0.0,
        on_event=on_event,
    )
    return provider, source, fake_time


class Metrics:
    """A MeterProvider with an in-memory reader, and what it has collected."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def collect(self) -> dict[str, Metric]:
        """taskcreds' metrics by name, after every queued event was counted."""
        assert telemetry.flush(10)
        data = self.reader.get_metrics_data()
        found: dict[str, Metric] = {}
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                if scope_metrics.scope.name == "taskcreds":
                    assert scope_metrics.scope.version == taskcreds.__version__
                    found.update((metric.name, metric) for metric in scope_metrics.metrics)
        return found

    def counts(self, name: str, attribute: str) -> dict[str, int]:
        metric = self.collect().get(name)
        if metric is None:
            return {}
        assert isinstance(metric.data, Sum)
        counts: dict[str, int] = {}
        for point in metric.data.data_points:
            assert isinstance(point, NumberDataPoint)
            assert point.attributes is not None
            assert set(point.attributes) == {attribute}
            counts[str(point.attributes[attribute])] = int(point.value)
        return counts

    def durations(self) -> dict[str, HistogramDataPoint]:
        metric = self.collect().get("taskcreds.fetch.duration")
        if metric is None:
            return {}
        assert isinstance(metric.data, Histogram)
        found = {}
        for point in metric.data.data_points:
            assert point.attributes is not None
            assert set(point.attributes) == {"outcome"}
            found[str(point.attributes["outcome"])] = point
        return found

    def expiries(self) -> dict[str, float]:
        """The gauge's points: seconds to expiry by source."""
        metric = self.collect().get("taskcreds.credentials.expires_in")
        if metric is None:
            return {}
        assert isinstance(metric.data, Gauge)
        found: dict[str, float] = {}
        for point in metric.data.data_points:
            assert isinstance(point, NumberDataPoint)
            assert point.attributes is not None
            assert set(point.attributes) == {"source"}
            source = str(point.attributes["source"])
            assert source not in found  # one point per source
            found[source] = float(point.value)
        return found

    def ours(self) -> dict[str, float]:
        """The gauge's points for this module's fake sources (other tests' providers, the
        default one among them, may still be alive in this process)."""
        return {
            source: left
            for source, left in self.expiries().items()
            if source in ("OtelTestSource", "OtelShortSource")
        }


@pytest.fixture
def sdk() -> Iterator[Metrics]:
    gc.collect()  # providers of earlier tests leave the gauge
    made = Metrics()
    yield made
    made.meter_provider.shutdown()


@pytest.fixture
def instrumented(sdk: Metrics) -> Iterator[Instrumentation]:
    handle = telemetry.instrument(sdk.meter_provider)
    yield handle
    handle.uninstrument()


# -- the instruments ---------------------------------------------------------------------------


def test_the_instruments_names_units_kinds_and_scope(
    sdk: Metrics, instrumented: Instrumentation
) -> None:
    provider, _, _ = fake_provider()
    provider.get()
    found = sdk.collect()
    assert {name: (metric.unit, type(metric.data)) for name, metric in found.items()} == {
        "taskcreds.fetches": ("{fetch}", Sum),
        "taskcreds.refreshes": ("{refresh}", Sum),
        "taskcreds.fetch.duration": ("s", Histogram),
        "taskcreds.credentials.expires_in": ("s", Gauge),
    }
    for name in ("taskcreds.fetches", "taskcreds.refreshes"):
        data = found[name].data
        assert isinstance(data, Sum)
        assert data.is_monotonic
    for metric in found.values():
        assert metric.description
    assert instrumented.active
    assert instrumented.meter_provider is sdk.meter_provider


def test_every_series_starts_at_zero(sdk: Metrics, instrumented: Instrumentation) -> None:
    assert sdk.counts("taskcreds.fetches", "outcome") == {"ok": 0, "failed": 0, "throttled": 0}
    assert sdk.counts("taskcreds.refreshes", "kind") == {
        "advisory": 0,
        "mandatory": 0,
        "prefetch": 0,
        "forced": 0,
    }
    assert sdk.durations() == {}  # no fetch, no observation


def test_fetches_refreshes_and_durations(sdk: Metrics, instrumented: Instrumentation) -> None:
    provider, source, fake_time = fake_provider(takes=0.2)
    provider.get()  # the first fetch: mandatory, ok
    provider.refresh()  # forced, ok
    fake_time.advance(OtelTestSource.lifetime - 14 * 60)  # into the advisory window
    provider.get()  # advisory, ok
    source.failure = unreachable()
    with pytest.raises(EndpointUnreachableError):
        provider.refresh()  # forced, failed
    source.failure = throttled()
    with pytest.raises(ThrottledError):
        provider.refresh()  # forced, throttled
    assert sdk.counts("taskcreds.fetches", "outcome") == {"ok": 3, "failed": 1, "throttled": 1}
    assert sdk.counts("taskcreds.refreshes", "kind") == {
        "advisory": 1,
        "mandatory": 1,
        "prefetch": 0,
        "forced": 3,
    }
    durations = sdk.durations()
    assert set(durations) == {"ok", "failed", "throttled"}
    for outcome, count in {"ok": 3, "failed": 1, "throttled": 1}.items():
        point = durations[outcome]
        assert point.count == count
        assert point.sum == pytest.approx(0.2 * count)
        assert point.min == pytest.approx(0.2)
        assert point.max == pytest.approx(0.2)
        # Seconds, with bounds meant for seconds: 0.2 s lies in (0.1, 0.25].
        bounds = list(point.explicit_bounds)
        assert bounds[:3] == [0.005, 0.01, 0.025]
        assert bounds[-1] == 10
        assert point.bucket_counts[bounds.index(0.25)] == count
    # The metrics agree with the provider's own counters.
    stats = provider.stats()
    assert (stats.fetches_ok, stats.fetches_failed, stats.fetches_throttled) == (3, 1, 1)
    assert dict(stats.refreshes) == sdk.counts("taskcreds.refreshes", "kind")


def test_every_provider_is_counted_made_before_or_after(sdk: Metrics) -> None:
    before, _, _ = fake_provider()
    with telemetry.instrument(sdk.meter_provider):
        after, _, _ = fake_provider(OtelShortSource)
        before.get()
        after.get()
        assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 2
        assert sdk.counts("taskcreds.refreshes", "kind")["mandatory"] == 2


def test_the_gauge_reports_each_source(sdk: Metrics, instrumented: Instrumentation) -> None:
    long_lived, _, long_time = fake_provider()
    short_lived, _, short_time = fake_provider(OtelShortSource)
    unused, _, _ = fake_provider(OtelShortSource)  # no set yet: no point of its own
    assert sdk.ours() == {}
    long_lived.get()
    short_lived.get()
    assert sdk.ours() == {"OtelTestSource": 21600.0, "OtelShortSource": 900.0}
    long_time.advance(600)
    short_time.advance(100)
    assert sdk.ours() == {"OtelTestSource": 21000.0, "OtelShortSource": 800.0}
    # A second provider on the same source shares its point: the sooner expiry.
    twin, _, twin_time = fake_provider()
    twin.get()
    assert sdk.ours()["OtelTestSource"] == 21000.0
    twin_time.advance(21600 - 250)
    assert sdk.ours()["OtelTestSource"] == 250.0
    # Expired: 0, as stats() says, until a caller refreshes it.
    short_time.advance(1000)
    assert sdk.ours()["OtelShortSource"] == 0.0
    assert unused.stats().expires_in is None
    # A provider that is gone leaves the gauge.
    del twin
    gc.collect()
    assert sdk.ours()["OtelTestSource"] == 21000.0


def test_with_the_agent(agent: AgentServer, sdk: Metrics, instrumented: Instrumentation) -> None:
    def no_sleep(seconds: float) -> None:
        """Backoff sleeps are skipped; the deadline still runs on the real monotonic clock."""

    with CredentialProvider(full_uri_environ(agent.full_uri), sleep=no_sleep) as provider:
        credentials = provider.get()
        for _ in range(100):
            provider.get()  # the cache: nothing more is counted
        assert sdk.counts("taskcreds.fetches", "outcome") == {
            "ok": 1,
            "failed": 0,
            "throttled": 0,
        }
        assert sdk.counts("taskcreds.refreshes", "kind")["mandatory"] == 1
        [point] = sdk.durations().values()
        assert point.count == 1
        assert 0 < point.sum < 5
        source = provider.endpoint.display_url
        assert agent.credentials_id not in source
        left = sdk.expiries()[source]
        assert 3500 < left <= 3600  # the agent's sets live an hour here

        agent.faults.update(fail_first=100, fail_status=429)
        with pytest.raises(ThrottledError):
            provider.refresh()
        assert sdk.counts("taskcreds.fetches", "outcome") == {
            "ok": 1,
            "failed": 0,
            "throttled": 1,
        }
        assert sdk.counts("taskcreds.refreshes", "kind")["forced"] == 1
        assert sdk.durations()["throttled"].count == 1
        assert 0 < sdk.expiries()[source] <= left  # the cached set stays in use

        exported = repr(sdk.reader.get_metrics_data())
        for secret in (credentials.secret_access_key, credentials.token, agent.credentials_id):
            assert secret not in exported


# -- the handle --------------------------------------------------------------------------------


def test_uninstrument_stops_counting_and_the_gauge(sdk: Metrics) -> None:
    provider, _, _ = fake_provider()
    handle = telemetry.instrument(sdk.meter_provider)
    provider.get()
    assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 1
    assert sdk.ours() == {"OtelTestSource": 21600.0}
    handle.uninstrument()
    assert not handle.active
    provider.refresh()
    assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 1
    assert sdk.counts("taskcreds.refreshes", "kind")["forced"] == 0
    assert sdk.expiries() == {}
    handle.uninstrument()  # again: nothing happens
    handle.close()
    assert "stopped" in repr(handle)


def test_uninstrument_counts_what_happened_before_it(sdk: Metrics) -> None:
    provider, _, _ = fake_provider()
    handle = telemetry.instrument(sdk.meter_provider)
    provider.get()
    handle.uninstrument()  # no flush() first: uninstrument() waits for the queued events
    assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 1


def test_events_still_queued_when_uninstrument_gives_up_are_not_counted(
    sdk: Metrics,
) -> None:
    entered, release = threading.Event(), threading.Event()

    def blocking(event: CredentialEvent) -> None:
        # A provider's own listener is called before the process-wide ones.
        entered.set()
        release.wait(10)

    provider, _, _ = fake_provider(on_event=blocking)
    handle = telemetry.instrument(sdk.meter_provider)
    try:
        provider.get()
        assert entered.wait(10)  # the dispatcher holds the FetchEvent, not yet counted
        handle.uninstrument(timeout=0)
    finally:
        release.set()
    assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 0


def test_the_handle_is_a_context_manager(sdk: Metrics) -> None:
    provider, _, _ = fake_provider()
    with telemetry.instrument(sdk.meter_provider) as handle:
        assert handle.active
        provider.get()
    assert not handle.active
    provider.refresh()
    assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 1


def test_instrument_twice_does_not_double_count(
    sdk: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, _, _ = fake_provider()
    first = telemetry.instrument(sdk.meter_provider)
    try:
        assert telemetry.instrument(sdk.meter_provider) is first
        monkeypatch.setattr(metrics, "get_meter_provider", lambda: sdk.meter_provider)
        assert telemetry.instrument() is first  # the global one, which is the same
        provider.get()
        assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 1
        assert sdk.counts("taskcreds.refreshes", "kind")["mandatory"] == 1
        assert sdk.durations()["ok"].count == 1
    finally:
        first.uninstrument()
    assert not first.active


def test_instrument_again_after_uninstrument(sdk: Metrics) -> None:
    """The meter hands back the instruments it made the first time (and the first gauge
    callback): the counts go on from there, once each, and the gauge reports again."""
    provider, _, _ = fake_provider()
    telemetry.instrument(sdk.meter_provider).uninstrument()
    with telemetry.instrument(sdk.meter_provider):
        provider.get()
        assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 1
        assert sdk.ours() == {"OtelTestSource": 21600.0}
    with telemetry.instrument(sdk.meter_provider):
        provider.refresh()
        assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 2
        assert sdk.counts("taskcreds.refreshes", "kind") == {
            "advisory": 0,
            "mandatory": 1,
            "prefetch": 0,
            "forced": 1,
        }
        assert sdk.ours() == {"OtelTestSource": 21600.0}


def test_instrument_on_another_meter_provider_moves_the_metrics(sdk: Metrics) -> None:
    other = Metrics()
    provider, _, _ = fake_provider()
    first = telemetry.instrument(sdk.meter_provider)
    provider.get()
    second = telemetry.instrument(other.meter_provider)
    try:
        assert second is not first
        assert (first.active, second.active) == (False, True)
        provider.refresh()
        assert sdk.counts("taskcreds.fetches", "outcome")["ok"] == 1
        assert other.counts("taskcreds.fetches", "outcome")["ok"] == 1
        assert sdk.expiries() == {}
        assert other.ours() == {"OtelTestSource": 21600.0}
        first.uninstrument()  # a stale handle stops nothing
        assert second.active
    finally:
        second.uninstrument()
        other.meter_provider.shutdown()


# Setting the global meter provider is allowed once per process: this runs in its own.
GLOBAL_PROVIDER_SET_LATER = """
import json
from datetime import datetime, timedelta, timezone

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from taskcreds import CredentialProvider, Credentials, telemetry
from taskcreds.sources import StaticSource

early = telemetry.instrument()  # no SDK yet: the API's proxy, which forwards once one is set
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
same = telemetry.instrument() is early
expiry = datetime.now(timezone.utc) + timedelta(hours=1)
provider = CredentialProvider.from_source(StaticSource(Credentials("ASIA0000WXYZ", "s", "t", expiry)))
provider.get()
early.uninstrument()
again = telemetry.instrument()  # the SDK's provider itself now
provider.refresh()
telemetry.flush(10)
points = {}
for resource_metrics in reader.get_metrics_data().resource_metrics:
    for scope_metrics in resource_metrics.scope_metrics:
        for metric in scope_metrics.metrics:
            for point in metric.data.data_points:
                key = metric.name + str(sorted(point.attributes.items()))
                points[key] = getattr(point, "value", None)
print(json.dumps({"same": same, "active": [early.active, again.active], "points": points}))
"""


def test_the_global_meter_provider_set_later() -> None:
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_SET_LATER],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["same"] is True
    assert report["active"] == [False, True]
    points = report["points"]
    assert points["taskcreds.fetches[('outcome', 'ok')]"] == 2
    assert points["taskcreds.refreshes[('kind', 'mandatory')]"] == 1
    assert points["taskcreds.refreshes[('kind', 'forced')]"] == 1
    assert 3500 < points["taskcreds.credentials.expires_in[('source', 'StaticSource')]"] <= 3600
