"""Telemetry: ProviderStats counters, typed events, their delivery thread, and the log records.

Clocks and sources are injected; tests synchronise on telemetry.flush() and threading.Event,
never on sleeps.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import requests

from taskcreds import CredentialProvider, Credentials, CredentialsExpiredError, telemetry
from taskcreds.errors import EndpointUnreachableError, ThrottledError
from taskcreds.telemetry import (
    REFRESH_KINDS,
    CredentialEvent,
    ExpiryEvent,
    FetchEvent,
    ProviderStats,
    RefreshEvent,
    RetryEvent,
    StaleServeEvent,
    ThrottleEvent,
)

from .test_fetch import GOOD, Answers
from .test_provider import START, FakeTime

ROLE = "arn:aws:iam::123456789012:role/AppA"
CANARY_SECRET = "CANARY-SECRET-wJalrXUtnFEMI-K7MDENG"
CANARY_TOKEN = "CANARY-TOKEN-IQoJb3JpZ2luX2VjE"
CANARY_ID = "CANARY-ID-0f1e2d3c-4b5a-6978"
URL = f"http://127.0.0.1:9/v2/credentials/{CANARY_ID}"
FAILURE = EndpointUnreachableError("agent down", url="http://127.0.0.1:9/…", reason="refused")
LIFETIME = 6 * 3600


class ScriptedSource:
    """A CredentialSource minting a set per fetch; a fetch takes ``takes`` fake seconds."""

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
            CANARY_SECRET,
            CANARY_TOKEN,
            self.time.clock() + timedelta(seconds=LIFETIME),
            role_arn=ROLE,
        )

    def close(self) -> None:
        pass

    def reset_after_fork(self) -> None:
        pass


class Recorded:
    """A provider on a ScriptedSource with fake time, and every event its on_event got."""

    def __init__(self, *, takes: float = 0.0, prefetch: bool = False) -> None:
        self.time = FakeTime()
        self.source = ScriptedSource(self.time, takes=takes)
        self.received: list[CredentialEvent] = []
        self.provider = CredentialProvider.from_source(
            self.source,
            clock=self.time.clock,
            monotonic=self.time.monotonic,
            jitter=lambda: 0.0,
            prefetch=prefetch,
            on_event=self.received.append,
        )

    def events(self) -> list[CredentialEvent]:
        assert telemetry.flush(10)
        return list(self.received)

    def of(self, kind: type[CredentialEvent]) -> list[CredentialEvent]:
        return [event for event in self.events() if isinstance(event, kind)]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    made = Recorded()
    yield made
    made.provider.close()


def taskcreds_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "taskcreds"]


# -- stats -------------------------------------------------------------------------------------


def test_stats_before_the_first_fetch(recorded: Recorded) -> None:
    stats = recorded.provider.stats()
    assert stats == ProviderStats(
        source="ScriptedSource",
        fetches_ok=0,
        fetches_failed=0,
        fetches_throttled=0,
        retries=0,
        refreshes=dict.fromkeys(REFRESH_KINDS, 0),
        stale_served=0,
        expirations=0,
        expires_in=None,
        last_error=None,
        last_error_at=None,
        events_dropped=0,
    )
    assert set(stats.refreshes) == {"advisory", "mandatory", "prefetch", "forced"}
    assert recorded.events() == []


def test_stats_is_a_frozen_value_with_a_read_only_mapping(recorded: Recorded) -> None:
    recorded.provider.get()
    stats = recorded.provider.stats()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.fetches_ok = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        stats.refreshes["forced"] = 5  # type: ignore[index]
    recorded.provider.refresh()
    assert stats.refreshes["forced"] == 0  # a snapshot, not a view
    assert recorded.provider.stats().refreshes["forced"] == 1
    hash(stats)


def test_every_refresh_kind_is_counted_once_per_fetch(recorded: Recorded) -> None:
    provider, fake_time = recorded.provider, recorded.time
    first = provider.get()  # the first fetch: callers must wait, so it is mandatory
    for _ in range(100):
        assert provider.get() is first  # the fast path counts nothing
    fake_time.advance(LIFETIME - 14 * 60)  # advisory window
    provider.get()
    provider.refresh()
    fake_time.advance(14 * 60 - 5 * 60)  # the set from refresh() is far from its windows
    provider.get()
    fake_time.advance(LIFETIME)  # everything has expired
    provider.get()
    stats = provider.stats()
    assert dict(stats.refreshes) == {"advisory": 1, "mandatory": 2, "prefetch": 0, "forced": 1}
    assert stats.fetches_ok == 4 == sum(stats.refreshes.values())
    assert [e.kind for e in recorded.of(RefreshEvent)] == [  # type: ignore[attr-defined]
        "mandatory",
        "advisory",
        "forced",
        "mandatory",
    ]
    assert len(recorded.of(FetchEvent)) == 4


def test_prefetch_refreshes_are_counted_as_prefetch() -> None:
    made = Recorded(prefetch=True)
    try:
        made.provider.get()  # starts the thread; it waits (in real time) for the fake due time
        made.time.advance(LIFETIME - 14 * 60)
        made.provider._prefetch_once()  # what the thread does when it is due
        assert made.provider.stats().refreshes["prefetch"] == 1
        refresh = made.of(RefreshEvent)[-1]
        assert (refresh.kind, refresh.outcome) == ("prefetch", "ok")  # type: ignore[attr-defined]
    finally:
        made.provider.close()


def test_expires_in_follows_the_cached_set(recorded: Recorded) -> None:
    recorded.provider.get()
    assert recorded.provider.stats().expires_in == LIFETIME
    recorded.time.advance(100)
    assert recorded.provider.stats().expires_in == LIFETIME - 100
    recorded.time.advance(LIFETIME)
    assert recorded.provider.stats().expires_in == 0.0  # expired, never negative


# -- fetch events ------------------------------------------------------------------------------


def test_a_successful_fetch_event() -> None:
    made = Recorded(takes=0.25)
    credentials = made.provider.get()
    [fetch] = made.of(FetchEvent)
    assert fetch == FetchEvent(
        at=START + timedelta(seconds=0.25),
        source="ScriptedSource",
        outcome="ok",
        duration=0.25,
        attempts=1,
        status=None,  # not an HTTP source
        role_arn=ROLE,
        access_key_id="ASIA…WXYZ",
        expiration=credentials.expiration,
    )
    assert fetch.at.tzinfo is not None
    [refresh] = made.of(RefreshEvent)
    assert refresh == RefreshEvent(
        at=fetch.at, source="ScriptedSource", kind="mandatory", outcome="ok", expires_in=LIFETIME
    )


def test_a_failed_first_fetch(recorded: Recorded, caplog: pytest.LogCaptureFixture) -> None:
    recorded.source.failure = FAILURE
    with (
        caplog.at_level(logging.DEBUG, logger="taskcreds"),
        pytest.raises(EndpointUnreachableError),
    ):
        recorded.provider.get()
    stats = recorded.provider.stats()
    assert (stats.fetches_ok, stats.fetches_failed, stats.fetches_throttled) == (0, 1, 0)
    assert stats.last_error == str(FAILURE)
    assert stats.last_error_at == START
    fetch, refresh = recorded.events()
    assert fetch == FetchEvent(
        at=START,
        source="ScriptedSource",
        outcome="failed",
        duration=0.0,
        attempts=1,
        status=None,
        error_type="EndpointUnreachableError",
        code="refused",
        error=str(FAILURE),
    )
    assert refresh == RefreshEvent(
        at=START, source="ScriptedSource", kind="mandatory", outcome="failed", expires_in=None
    )
    [record] = taskcreds_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "fetching credentials failed after 0.00 s and 1 attempt (mandatory refresh); "
        f"none to use: {FAILURE}"
    )
    assert record.taskcreds_outcome == "failed"  # type: ignore[attr-defined]
    assert record.taskcreds_error_type == "EndpointUnreachableError"  # type: ignore[attr-defined]


def test_last_error_is_kept_after_a_success(recorded: Recorded) -> None:
    recorded.source.failure = FAILURE
    with pytest.raises(EndpointUnreachableError):
        recorded.provider.get()
    recorded.time.advance(60)
    recorded.source.failure = None
    recorded.provider.get()
    stats = recorded.provider.stats()
    assert (stats.fetches_ok, stats.fetches_failed) == (1, 1)
    assert stats.last_error == str(FAILURE)
    assert stats.last_error_at == START


def test_a_throttled_fetch_is_throttled_not_failed(recorded: Recorded) -> None:
    throttled = ThrottledError(
        "HTTP 429", url="http://127.0.0.1:9/…", status=429, code=None, detail=None, retryable=True
    )
    recorded.source.failure = throttled
    with pytest.raises(ThrottledError):
        recorded.provider.get()
    stats = recorded.provider.stats()
    assert (stats.fetches_failed, stats.fetches_throttled) == (0, 1)
    throttle, fetch, refresh = recorded.events()
    assert throttle == ThrottleEvent(at=START, source="ScriptedSource", attempt=1, delay=None)
    assert isinstance(fetch, FetchEvent)
    assert (fetch.outcome, fetch.status, fetch.error_type) == ("throttled", 429, "ThrottledError")
    assert isinstance(refresh, RefreshEvent)
    assert refresh.outcome == "failed"


# -- stale serves and expiry -------------------------------------------------------------------


def test_a_failed_mandatory_refresh_serves_the_cached_set(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    first = recorded.provider.get()
    recorded.time.advance(LIFETIME - 5 * 60)  # mandatory window: 300 s left
    recorded.source.failure = FAILURE
    with caplog.at_level(logging.INFO, logger="taskcreds"):
        assert recorded.provider.get() is first
        for _ in range(50):
            assert recorded.provider.get() is first  # backing off: nothing new to count
    stats = recorded.provider.stats()
    assert (stats.stale_served, stats.fetches_failed, stats.expirations) == (1, 1, 0)
    [stale] = recorded.of(StaleServeEvent)
    assert stale == StaleServeEvent(
        at=START + timedelta(seconds=LIFETIME - 300),
        source="ScriptedSource",
        expires_in=300.0,
        error_type="EndpointUnreachableError",
        error=str(FAILURE),
    )
    refresh = recorded.of(RefreshEvent)[-1]
    assert (refresh.outcome, refresh.expires_in) == ("failed", 300.0)  # type: ignore[attr-defined]
    [record] = [r for r in taskcreds_records(caplog) if r.levelno >= logging.INFO]
    assert record.levelno == logging.WARNING  # once for the fetch, not again for the serve
    assert "using the cached set, which expires in 300 s" in record.getMessage()
    assert record.taskcreds_expires_in == 300.0  # type: ignore[attr-defined]


def test_a_failed_advisory_refresh_is_not_a_stale_serve(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    first = recorded.provider.get()
    recorded.time.advance(LIFETIME - 14 * 60)
    recorded.source.failure = FAILURE
    with caplog.at_level(logging.WARNING, logger="taskcreds"):
        assert recorded.provider.get() is first
    stats = recorded.provider.stats()
    assert (stats.stale_served, stats.fetches_failed, stats.refreshes["advisory"]) == (0, 1, 1)
    [record] = taskcreds_records(caplog)
    assert record.levelno == logging.WARNING
    assert "(advisory refresh); using the cached set, which expires in 840 s" in record.getMessage()


def test_an_expired_set_that_cannot_be_refreshed(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    first = recorded.provider.get()
    recorded.time.advance(LIFETIME + 1)
    recorded.source.failure = FAILURE
    with (
        caplog.at_level(logging.WARNING, logger="taskcreds"),
        pytest.raises(CredentialsExpiredError),
    ):
        recorded.provider.get()
    stats = recorded.provider.stats()
    assert (stats.expirations, stats.stale_served, stats.expires_in) == (1, 0, 0.0)
    [expiry] = recorded.of(ExpiryEvent)
    assert expiry == ExpiryEvent(
        at=START + timedelta(seconds=LIFETIME + 1),
        source="ScriptedSource",
        expiration=first.expiration,
        error_type="EndpointUnreachableError",
        error=str(FAILURE),
    )
    [record] = taskcreds_records(caplog)
    assert record.levelno == logging.ERROR
    assert "the cached set expired at 2026-11-29T18:00:00Z" in record.getMessage()


class WatchedLock:
    """A lock that says when a second thread starts waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.contended = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        self.contended.set()
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> WatchedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def share_one_failure(recorded: Recorded) -> list[object]:
    """One caller's refresh fails while a second waits for it; what each got."""
    gate, entered = threading.Event(), threading.Event()
    lock = WatchedLock()
    recorded.provider._lock = lock  # type: ignore[assignment]

    def failing() -> Credentials:
        entered.set()
        assert gate.wait(10)
        raise FAILURE

    recorded.source.fetch = failing  # type: ignore[method-assign]
    results: list[object] = [None, None]

    def call(i: int) -> None:
        try:
            results[i] = recorded.provider.get()
        except Exception as exc:
            results[i] = exc

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert entered.wait(10)
    waiter = threading.Thread(target=call, args=(1,))
    waiter.start()
    assert lock.contended.wait(10)  # the waiter is queued on the lock behind the fetch
    gate.set()
    first.join(10)
    waiter.join(10)
    return results


def test_a_shared_failed_refresh_is_one_stale_serve(recorded: Recorded) -> None:
    cached = recorded.provider.get()
    recorded.time.advance(LIFETIME - 5 * 60)
    assert share_one_failure(recorded) == [cached, cached]
    stats = recorded.provider.stats()
    # Counted once per failed refresh: the waiter, like every call in the back-off that
    # follows, gets the cached set as a fresh one.
    assert (stats.fetches_failed, stats.stale_served) == (1, 1)


def test_each_caller_that_gets_expired_is_counted(recorded: Recorded) -> None:
    recorded.provider.get()
    recorded.time.advance(LIFETIME + 1)
    results = share_one_failure(recorded)
    assert all(isinstance(result, CredentialsExpiredError) for result in results)
    stats = recorded.provider.stats()
    assert (stats.fetches_failed, stats.expirations) == (1, 2)
    assert len(recorded.of(ExpiryEvent)) == 2


# -- retries and throttles (the endpoint's fetcher, on an in-memory transport) ----------------


def endpoint_provider(
    script: list[tuple[int, bytes, dict[str, str]] | Exception],
) -> tuple[CredentialProvider, list[CredentialEvent], list[float]]:
    fake_time = FakeTime()
    session = requests.Session()
    session.mount("http://", Answers(script))
    slept: list[float] = []
    received: list[CredentialEvent] = []
    provider = CredentialProvider(
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": URL},
        session=session,
        sleep=slept.append,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        on_event=received.append,
    )
    return provider, received, slept


UNINITIALIZED = (
    503,
    b'{"code":"CredentialsUninitialized","message":"CredentialsV2Request: not yet"}',
    {"Content-Type": "application/json"},
)
TOO_MANY = (429, b"You have reached maximum request limit.", {})


def test_retries_and_throttles_are_events_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    provider, received, slept = endpoint_provider([TOO_MANY, UNINITIALIZED, (200, GOOD, {})])
    with caplog.at_level(logging.DEBUG, logger="taskcreds"):
        provider.get()
    assert telemetry.flush(10)
    types = [type(event).__name__ for event in received]
    assert types == ["ThrottleEvent", "RetryEvent", "RetryEvent", "FetchEvent", "RefreshEvent"]
    throttle, retry1, retry2, fetch, _ = received
    assert throttle == ThrottleEvent(
        at=START, source=provider.endpoint.display_url, attempt=1, delay=slept[0]
    )
    assert isinstance(retry1, RetryEvent)
    assert isinstance(retry2, RetryEvent)
    assert (retry1.attempt, retry1.delay, retry1.status, retry1.error_type) == (
        1,
        slept[0],
        429,
        "ThrottledError",
    )
    assert (retry2.attempt, retry2.status, retry2.code) == (2, 503, "CredentialsUninitialized")
    assert isinstance(fetch, FetchEvent)
    assert (fetch.outcome, fetch.attempts, fetch.status) == ("ok", 3, 200)
    stats = provider.stats()
    assert (stats.retries, stats.fetches_ok, stats.fetches_throttled) == (2, 1, 0)
    infos = [r for r in taskcreds_records(caplog) if r.levelno == logging.INFO]
    assert len(infos) == 1  # one INFO per successful fetch; the retries are DEBUG
    assert "after 3 attempts (mandatory refresh)" in infos[0].getMessage()
    retries = [r for r in taskcreds_records(caplog) if r.levelno == logging.DEBUG]
    assert [r.taskcreds_attempt for r in retries if hasattr(r, "taskcreds_attempt")] == [1, 2]


def test_a_fetch_that_stays_throttled() -> None:
    provider, received, slept = endpoint_provider([TOO_MANY])
    with pytest.raises(ThrottledError):
        provider.get()
    assert telemetry.flush(10)
    throttles = [e for e in received if isinstance(e, ThrottleEvent)]
    assert [(t.attempt, t.delay) for t in throttles] == [
        (1, slept[0]),
        (2, slept[1]),
        (3, slept[2]),
        (4, None),
    ]
    [fetch] = [e for e in received if isinstance(e, FetchEvent)]
    assert (fetch.outcome, fetch.attempts, fetch.status) == ("throttled", 4, 429)
    stats = provider.stats()
    assert (stats.retries, stats.fetches_throttled, stats.fetches_failed) == (3, 1, 0)


def test_a_bare_fetcher_still_logs_retries_at_info(caplog: pytest.LogCaptureFixture) -> None:
    # `taskcreds show -v` fetches without a provider: its retries stay INFO.
    from taskcreds import resolve_endpoint
    from taskcreds.fetch import Fetcher

    session = requests.Session()
    session.mount("http://", Answers([UNINITIALIZED, (200, GOOD, {})]))
    fetcher = Fetcher(session=session, sleep=lambda _: None)
    with caplog.at_level(logging.INFO, logger="taskcreds"):
        fetcher.fetch(resolve_endpoint({"AWS_CONTAINER_CREDENTIALS_FULL_URI": URL}))
    [record] = taskcreds_records(caplog)
    assert record.levelno == logging.INFO
    assert record.taskcreds_event == "retry"  # type: ignore[attr-defined]
    assert record.taskcreds_code == "CredentialsUninitialized"  # type: ignore[attr-defined]


# -- logging -----------------------------------------------------------------------------------


def test_one_info_record_per_successful_fetch_with_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    made = Recorded(takes=0.125)
    with caplog.at_level(logging.DEBUG, logger="taskcreds"):
        credentials = made.provider.get()
        made.provider.get()
    [record] = taskcreds_records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"fetched credentials for {ROLE} (key ASIA…WXYZ) expiring at 2026-11-29T18:00:00Z "
        "in 0.12 s after 1 attempt (mandatory refresh)"
    )
    fields = {k: v for k, v in vars(record).items() if k.startswith("taskcreds_")}
    assert fields == {
        "taskcreds_event": "fetch",
        "taskcreds_kind": "mandatory",
        "taskcreds_source": "ScriptedSource",
        "taskcreds_outcome": "ok",
        "taskcreds_duration": 0.125,
        "taskcreds_attempts": 1,
        "taskcreds_status": None,
        "taskcreds_error_type": None,
        "taskcreds_code": None,
        "taskcreds_error": None,
        "taskcreds_role_arn": ROLE,
        "taskcreds_access_key_id": "ASIA…WXYZ",
        "taskcreds_expiration": "2026-11-29T18:00:00Z",
        "taskcreds_expires_in": LIFETIME,
    }
    assert credentials.expiration == datetime.fromisoformat("2026-11-29T18:00:00.125+00:00")


def test_no_secret_in_events_stats_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    good = GOOD.replace(b'"SecretAccessKey":"s"', f'"SecretAccessKey":"{CANARY_SECRET}"'.encode())
    good = good.replace(b'"Token":"t"', f'"Token":"{CANARY_TOKEN}"'.encode())
    echo = f'{{"code":"InternalServerError","message":"no creds for {CANARY_ID}"}}'.encode()
    provider, received, _ = endpoint_provider([(500, echo, {}), (200, good, {})])
    with caplog.at_level(logging.DEBUG, logger="taskcreds"):
        first = provider.get()  # a retry that echoes the credentials ID, then a set
        assert first.secret_access_key == CANARY_SECRET
        provider.refresh()
    assert telemetry.flush(10)
    seen = [repr(event) for event in received]
    seen.append(repr(provider.stats()))
    for record in caplog.records:
        seen.append(record.getMessage())
        seen.extend(repr(value) for value in vars(record).values())
    text = "\n".join(seen)
    assert len(received) >= 5
    for secret in (CANARY_SECRET, CANARY_TOKEN, CANARY_ID, first.access_key_id):
        assert secret not in text
    assert "ASIA…UNIT" in text  # the key is named, masked


# -- delivery: listeners, slow and raising ones, the bounded queue ------------------------------


def test_a_slow_listener_never_delays_get_or_refresh() -> None:
    entered, release = threading.Event(), threading.Event()
    got: list[CredentialEvent] = []

    def slow(event: CredentialEvent) -> None:
        entered.set()
        assert release.wait(10)
        got.append(event)

    fake_time = FakeTime()
    provider = CredentialProvider.from_source(
        ScriptedSource(fake_time),
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        jitter=lambda: 0.0,
        on_event=slow,
    )
    try:
        first = provider.get()
        assert entered.wait(10)  # the listener now holds the dispatcher thread...
        fake_time.advance(LIFETIME - 14 * 60)
        second = provider.get()  # ...and an advisory refresh still completes
        assert second is not first
        provider.refresh()
        assert not release.is_set()
        assert provider.stats().fetches_ok == 3
        assert not telemetry.flush(timeout=0)  # six events, the first still being delivered
    finally:
        release.set()
    assert telemetry.flush(10)
    assert [type(e).__name__ for e in got] == ["FetchEvent", "RefreshEvent"] * 3


def test_a_raising_listener_is_logged_once_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[CredentialEvent] = []

    def broken(event: CredentialEvent) -> None:
        calls.append(event)
        raise RuntimeError("listener bug")

    others: list[CredentialEvent] = []
    remove = telemetry.add_listener(others.append)
    fake_time = FakeTime()
    provider = CredentialProvider.from_source(
        ScriptedSource(fake_time),
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        on_event=broken,
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="taskcreds"):
            provider.get()
            provider.refresh()
            assert telemetry.flush(10)
    finally:
        remove()
    assert len(calls) == 4  # every event reached it
    assert len([e for e in others if e.source == "ScriptedSource"]) >= 4  # and the others too
    complaints = [r for r in taskcreds_records(caplog) if "listener" in r.getMessage()]
    assert [r.levelno for r in complaints] == [logging.WARNING] + [logging.DEBUG] * 3
    assert "RuntimeError" in complaints[0].getMessage()


def test_a_full_queue_drops_events_and_counts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_dispatcher", telemetry._Dispatcher(maxsize=2))
    entered, release = threading.Event(), threading.Event()
    got: list[CredentialEvent] = []

    def blocked(event: CredentialEvent) -> None:
        entered.set()
        assert release.wait(10)
        got.append(event)

    fake_time = FakeTime()
    provider = CredentialProvider.from_source(
        ScriptedSource(fake_time),
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        on_event=blocked,
    )
    try:
        provider.get()  # two events: the first is being delivered, the second waits
        assert entered.wait(10)
        for _ in range(3):
            provider.refresh()  # six more: room for one
        assert provider.stats().events_dropped == 5
    finally:
        release.set()
    assert telemetry.flush(10)
    assert len(got) == 3


def test_add_listener_sees_every_provider_until_removed() -> None:
    class SourceA(ScriptedSource):
        pass

    class SourceB(ScriptedSource):
        pass

    seen: list[CredentialEvent] = []
    remove = telemetry.add_listener(seen.append)
    fake_time = FakeTime()
    a = CredentialProvider.from_source(SourceA(fake_time), clock=fake_time.clock)
    b = CredentialProvider.from_source(SourceB(fake_time), clock=fake_time.clock)
    try:
        a.get()
        b.get()
        assert telemetry.flush(10)
        mine = [e.source for e in seen if e.source.startswith("test_add_listener")]
        assert mine.count(SourceA.__qualname__) == 2
        assert mine.count(SourceB.__qualname__) == 2
    finally:
        remove()
    a.refresh()
    assert telemetry.flush(10)
    assert len([e for e in seen if e.source == SourceA.__qualname__]) == 2
    telemetry.remove_listener(seen.append)  # removing again is harmless


def test_flush_from_a_listener_returns_at_once() -> None:
    answers: list[bool] = []
    recorded = Recorded()
    recorded.provider._recorder._on_event = lambda event: answers.append(telemetry.flush(10))
    recorded.provider.get()
    assert telemetry.flush(10)
    assert answers == [False, False]


def test_nobody_listening_starts_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = telemetry._Dispatcher()
    monkeypatch.setattr(telemetry, "_dispatcher", fresh)
    monkeypatch.setattr(telemetry, "_listeners", ())
    fake_time = FakeTime()
    provider = CredentialProvider.from_source(ScriptedSource(fake_time), clock=fake_time.clock)
    provider.get()
    assert fresh._thread is None
    assert provider.stats().events_dropped == 0
    assert telemetry.flush(0)


def test_the_fast_path_does_not_touch_telemetry(recorded: Recorded) -> None:
    first = recorded.provider.get()
    recorder = recorded.provider._recorder
    recorded.provider._recorder = None  # type: ignore[assignment]
    try:
        for _ in range(1000):
            assert recorded.provider.get() is first
    finally:
        recorded.provider._recorder = recorder


# -- fork --------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_forked_child_delivers_its_own_events() -> None:
    entered, release = threading.Event(), threading.Event()

    def blocked(event: CredentialEvent) -> None:
        entered.set()
        release.wait(10)

    recorded = Recorded()
    recorded.provider._recorder._on_event = blocked
    recorded.provider.get()  # the parent's dispatcher is now stuck in `blocked`
    assert entered.wait(10)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            child: list[CredentialEvent] = []
            recorded.provider._recorder._on_event = child.append
            parent_queue_dropped = telemetry.flush(5)  # the parent's events are not the child's
            recorded.provider.refresh()
            delivered = telemetry.flush(5)
            kinds = ",".join(type(e).__name__ for e in child)
            os.write(write_end, f"{parent_queue_dropped} {delivered} {kinds}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read_end, 200).decode()
    os.close(read_end)
    release.set()
    assert status == 0
    assert answer == "True True FetchEvent,RefreshEvent"
    assert telemetry.flush(10)
