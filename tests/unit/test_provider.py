"""CredentialProvider: refresh windows, single flight, rotation, prefetch, fork. Injected time."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

import taskcreds
from taskcreds import CredentialProvider, Credentials, CredentialsExpiredError
from taskcreds.endpoint import Endpoint
from taskcreds.errors import EndpointUnreachableError, InternalError
from taskcreds.fetch import FetchResult
from taskcreds.provider import retry_delay, serving_schedule

ENVIRON = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"}
START = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


class FakeTime:
    """One source for both the wall clock (aware UTC) and the monotonic clock."""

    def __init__(self) -> None:
        self.offset = 0.0

    def clock(self) -> datetime:
        return START + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return 1000.0 + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class FakeFetcher:
    """Answers from a script: a Credentials, an exception, or a callable producing either."""

    def __init__(self, fake_time: FakeTime, lifetime: float = 6 * 3600) -> None:
        self.time = fake_time
        self.lifetime = lifetime
        self.calls = 0
        self.threads: list[str] = []
        self.failure: Exception | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.same_set = False
        self.fail_only_in: str | None = None
        self.deadline = 5.0
        self._lock = threading.Lock()

    def make(self, n: int) -> Credentials:
        return Credentials(
            access_key_id=f"ASIA{n:016d}",
            secret_access_key=f"secret-{n}",
            token=f"token-{n}",
            expiration=self.time.clock() + timedelta(seconds=self.lifetime),
        )

    def fetch(self, endpoint: Endpoint) -> FetchResult:
        with self._lock:
            self.calls += 1
            n = 1 if self.same_set else self.calls
            self.threads.append(threading.current_thread().name)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.failure is not None and self.fail_only_in in (
            None,
            threading.current_thread().name,
        ):
            raise self.failure
        creds = self.make(n)
        if self.same_set and n == 1 and hasattr(self, "first"):
            creds = self.first
        self.first = creds
        return FetchResult(creds, None, 1, 0.0)

    def reset_after_fork(self) -> None:
        pass

    def close(self) -> None:
        pass


def make_provider(lifetime: float = 6 * 3600) -> tuple[CredentialProvider, FakeFetcher, FakeTime]:
    fake_time = FakeTime()
    fetcher = FakeFetcher(fake_time, lifetime)
    provider = CredentialProvider(
        ENVIRON,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        fetcher=fetcher,
        jitter=lambda: 0.0,
    )
    return provider, fetcher, fake_time


FAILURE = EndpointUnreachableError("agent down", url="http://127.0.0.1:9/creds", reason="refused")


# -- windows --------------------------------------------------------------------------------


def test_cached_until_advisory_point() -> None:
    provider, fetcher, fake_time = make_provider()
    first = provider.get()
    for _ in range(100):
        assert provider.get() is first
    fake_time.advance(6 * 3600 - 15 * 60 - 1)
    assert provider.get() is first
    assert fetcher.calls == 1
    fake_time.advance(2)  # inside the advisory window
    second = provider.get()
    assert second is not first
    assert fetcher.calls == 2


def test_a_schedule_places_the_refresh_points() -> None:
    # The broker's schedule: refresh once 10 minutes are left, not 15 (one policy, a parameter).
    fake_time = FakeTime()
    fetcher = FakeFetcher(fake_time)
    provider = CredentialProvider(
        ENVIRON,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        fetcher=fetcher,
        schedule=serving_schedule,
    )
    first = provider.get()
    fake_time.advance(6 * 3600 - 10 * 60 - 1)
    assert provider.get() is first
    fake_time.advance(2)
    assert provider.get() is not first
    assert fetcher.calls == 2


def test_prefetching_says_whether_a_thread_refreshes() -> None:
    assert not CredentialProvider(ENVIRON, fetcher=RealTimeFetcher(3600)).prefetching
    provider = CredentialProvider(ENVIRON, fetcher=RealTimeFetcher(3600), prefetch=True)
    assert provider.prefetching
    provider.close()
    assert not provider.prefetching


def test_advisory_failure_is_swallowed_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    provider, fetcher, fake_time = make_provider()
    first = provider.get()
    fake_time.advance(6 * 3600 - 14 * 60)
    fetcher.failure = FAILURE
    with caplog.at_level(logging.WARNING, logger="taskcreds"):
        assert provider.get() is first
    assert "using the cached set" in caplog.text
    calls = fetcher.calls
    for _ in range(50):
        assert provider.get() is first  # no new fetch per call while backing off
    assert fetcher.calls == calls
    fake_time.advance(retry_delay(14 * 60) + 0.1)
    fetcher.failure = None
    assert provider.get() is not first
    assert fetcher.calls == calls + 1


def test_mandatory_failure_returns_valid_cached_set_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, fetcher, fake_time = make_provider()
    first = provider.get()
    fake_time.advance(6 * 3600 - 5 * 60)  # mandatory window: 5 minutes left
    fetcher.failure = FAILURE
    with caplog.at_level(logging.WARNING, logger="taskcreds"):
        assert provider.get() is first
    assert "expires in 300 s" in caplog.text


def test_expired_and_refresh_fails_raises_wrapped() -> None:
    provider, fetcher, fake_time = make_provider()
    provider.get()
    fake_time.advance(6 * 3600 + 1)
    fetcher.failure = FAILURE
    with pytest.raises(CredentialsExpiredError) as info:
        provider.get()
    assert info.value.__cause__ is FAILURE
    assert "secret-" not in str(info.value)


def test_initial_failure_raises_the_fetch_error() -> None:
    provider, fetcher, _ = make_provider()
    fetcher.failure = FAILURE
    with pytest.raises(EndpointUnreachableError):
        provider.get()


def test_short_lived_sets_are_not_refreshed_on_every_call() -> None:
    # botocore#2189: a 15-minute set is inside botocore's fixed 15-minute window from the start.
    provider, fetcher, fake_time = make_provider(lifetime=15 * 60)
    provider.get()
    for _ in range(9):
        fake_time.advance(60)
        provider.get()
    assert fetcher.calls == 1  # advisory point is 5 minutes before expiry
    fake_time.advance(61)
    provider.get()
    assert fetcher.calls == 2


def test_same_set_again_keeps_its_windows() -> None:
    # An agent that has not rotated yet answers with the same set; do not ask on every call.
    provider, fetcher, fake_time = make_provider(lifetime=3600)
    fetcher.same_set = True
    provider.get()
    fake_time.advance(3600 - 14 * 60)
    provider.get()
    assert fetcher.calls == 2
    for _ in range(100):
        provider.get()
    assert fetcher.calls == 2
    fake_time.advance(retry_delay(14 * 60) + 0.1)
    provider.get()
    assert fetcher.calls == 3


def test_refresh_forces_a_fetch() -> None:
    provider, fetcher, _ = make_provider()
    first = provider.get()
    assert provider.refresh() is not first
    assert fetcher.calls == 2


def test_endpoint_returning_expired_credentials() -> None:
    provider, fetcher, _ = make_provider(lifetime=-5)
    with pytest.raises(CredentialsExpiredError, match="clock"):
        provider.get()


def test_hot_path_takes_no_lock() -> None:
    provider, _, _ = make_provider()
    first = provider.get()
    with provider._lock:  # a refresh in progress elsewhere must not stall readers
        assert provider.get() is first


def test_repr_hides_secrets() -> None:
    provider, _, _ = make_provider()
    provider.get()
    assert "secret" not in repr(provider)
    assert "token-" not in repr(provider)


# -- concurrency ------------------------------------------------------------------------------


def run_threads(
    count: int, target: Callable[[], object], release: threading.Event | None = None
) -> list[object]:
    """Run ``target`` in ``count`` threads at once; ``release`` is set 0.3 s after all started."""
    results: list[object] = [None] * count
    action = threading.Timer(0.3, release.set).start if release is not None else None
    barrier = threading.Barrier(count, action=action)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_single_flight_initial_fetch_64_threads() -> None:
    provider, fetcher, _ = make_provider()
    fetcher.gate = threading.Event()
    results = run_threads(64, provider.get, release=fetcher.gate)
    assert fetcher.calls == 1
    assert len({id(r) for r in results}) == 1
    assert isinstance(results[0], Credentials)


def test_single_flight_shares_failure_64_threads() -> None:
    provider, fetcher, _ = make_provider()
    fetcher.gate = threading.Event()
    fetcher.failure = FAILURE
    results = run_threads(64, provider.get, release=fetcher.gate)
    assert fetcher.calls == 1
    assert all(r is FAILURE for r in results)


def test_single_flight_expired_64_threads() -> None:
    provider, fetcher, fake_time = make_provider()
    provider.get()
    fake_time.advance(6 * 3600 + 1)
    fetcher.gate = threading.Event()
    results = run_threads(64, provider.get, release=fetcher.gate)
    assert fetcher.calls == 2
    assert {r.access_key_id for r in results} == {f"ASIA{2:016d}"}  # type: ignore[union-attr]


def test_advisory_window_one_refresher_others_do_not_wait() -> None:
    provider, fetcher, fake_time = make_provider()
    first = provider.get()
    fake_time.advance(6 * 3600 - 14 * 60)
    fetcher.gate = threading.Event()
    refresher = threading.Thread(target=provider.get)
    refresher.start()
    assert fetcher.entered.wait(5)
    # While that refresh hangs, 63 others get the cached set at once.
    results = run_threads(63, provider.get)
    assert all(r is first for r in results)
    fetcher.gate.set()
    refresher.join(5)
    assert fetcher.calls == 2


def test_rotation_never_mixes_sets() -> None:
    provider, _, _ = make_provider()
    provider.get()
    stop = threading.Event()
    mixed: list[Credentials] = []

    def reader() -> None:
        while not stop.is_set():
            creds = provider.get()
            n = creds.secret_access_key.removeprefix("secret-")
            if creds.token != f"token-{n}" or not creds.access_key_id.endswith(n):
                mixed.append(creds)

    readers = [threading.Thread(target=reader) for _ in range(8)]
    for thread in readers:
        thread.start()
    for _ in range(300):
        provider.refresh()
    stop.set()
    for thread in readers:
        thread.join(5)
    assert mixed == []


# -- prefetch (real time, short lifetimes) ----------------------------------------------------


class RealTimeFetcher(FakeFetcher):
    def __init__(self, lifetime: float) -> None:
        super().__init__(FakeTime(), lifetime)
        self.second = threading.Event()

    def make(self, n: int) -> Credentials:
        creds = Credentials(
            f"ASIA{n:016d}",
            f"secret-{n}",
            f"token-{n}",
            datetime.now(timezone.utc) + timedelta(seconds=self.lifetime),
        )
        if n >= 2:
            self.second.set()
        return creds


def test_prefetch_refreshes_in_background() -> None:
    fetcher = RealTimeFetcher(lifetime=1.5)  # advisory point 0.5 s before expiry
    with CredentialProvider(
        ENVIRON, fetcher=fetcher, prefetch=True, jitter=lambda: 0.0
    ) as provider:
        provider.get()
        assert fetcher.second.wait(5)
        assert fetcher.threads[1] == "taskcreds-prefetch"
        assert provider.get().access_key_id == f"ASIA{2:016d}"
    assert provider._worker is not None
    assert not provider._worker.running


def test_prefetch_failure_hands_over_to_callers() -> None:
    fetcher = RealTimeFetcher(lifetime=1.5)
    with CredentialProvider(
        ENVIRON, fetcher=fetcher, prefetch=True, jitter=lambda: 0.0
    ) as provider:
        first = provider.get()
        fetcher.failure = FAILURE
        fetcher.fail_only_in = "taskcreds-prefetch"  # the agent fails for the thread only
        deadline = time.monotonic() + 5
        current = first
        while current is first and time.monotonic() < deadline:
            current = provider.get()  # the caller's own refresh takes over once it is due
            time.sleep(0.02)
        assert current is not first
        assert "taskcreds-prefetch" in fetcher.threads  # the thread tried first, and failed
        assert "MainThread" in fetcher.threads[1:]  # ...and a caller refreshed itself


# -- fork -------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_reuses_cache_with_fresh_lock() -> None:
    provider, fetcher, fake_time = make_provider()
    first = provider.get()
    read_end, write_end = os.pipe()
    with provider._lock:  # held during fork, as by a thread that will not exist in the child
        pid = os.fork()
        if pid == 0:  # child
            try:
                same = provider.get() is first
                fake_time.advance(6 * 3600)  # expired: the child must be able to refresh
                refreshed = provider.get() is not first
                os.write(write_end, f"{same} {refreshed} {fetcher.calls}".encode())
            finally:
                os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read_end, 100).decode()
    os.close(read_end)
    assert status == 0
    assert answer == "True True 2"
    assert fetcher.calls == 1  # the parent's cache was untouched


def test_prefetch_same_set_inside_window_is_not_a_busy_loop() -> None:
    # An agent that keeps answering with a set already inside its refresh window must not be
    # asked in a tight loop by the prefetch thread.
    fetcher = RealTimeFetcher(lifetime=1.5)  # advisory point 0.5 s before expiry
    fetcher.same_set = True  # ...and every refresh returns that same set again
    with CredentialProvider(
        ENVIRON, fetcher=fetcher, prefetch=True, jitter=lambda: 0.0
    ) as provider:
        provider.get()
        time.sleep(1.4)  # into the window, almost to expiry
    assert 2 <= fetcher.calls <= 3


def test_close_hands_refreshing_back_to_callers() -> None:
    fetcher = RealTimeFetcher(lifetime=3600)
    provider = CredentialProvider(ENVIRON, fetcher=fetcher, prefetch=True, jitter=lambda: 0.0)
    provider.get()
    cached = provider._cached
    assert cached is not None
    assert provider._fast[1] == cached.mandatory_at  # the thread owns the advisory refresh
    provider.close()
    assert provider._fast[1] == cached.advisory_at  # callers own it again


# -- hardening: any exception out of a fetch is a failed fetch --------------------------------

BUG = OverflowError("date value out of range")


def test_unexpected_exception_in_advisory_window_keeps_the_cached_set() -> None:
    provider, fetcher, fake_time = make_provider()
    first = provider.get()
    fake_time.advance(6 * 3600 - 14 * 60)
    fetcher.failure = BUG
    assert provider.get() is first
    calls = fetcher.calls
    for _ in range(50):
        assert provider.get() is first  # backs off: no re-fetch on every call
    assert fetcher.calls == calls


def test_unexpected_exception_in_mandatory_window_returns_valid_set() -> None:
    provider, fetcher, fake_time = make_provider()
    first = provider.get()
    fake_time.advance(6 * 3600 - 5 * 60)
    fetcher.failure = KeyError("AccessKeyId")
    assert provider.get() is first


def test_unexpected_exception_without_a_cached_set_is_internal_error() -> None:
    provider, fetcher, _ = make_provider()
    fetcher.failure = BUG
    with pytest.raises(InternalError) as info:
        provider.get()
    assert info.value.__cause__ is BUG
    assert "OverflowError" in str(info.value)
    assert "out of range" not in str(info.value)  # an unchecked message goes nowhere


def test_unexpected_exception_after_expiry_is_credentials_expired() -> None:
    provider, fetcher, fake_time = make_provider()
    provider.get()
    fake_time.advance(6 * 3600 + 1)
    fetcher.failure = BUG
    with pytest.raises(CredentialsExpiredError) as info:
        provider.get()
    assert isinstance(info.value.__cause__, InternalError)


def test_prefetch_thread_survives_an_unexpected_exception() -> None:
    fetcher = RealTimeFetcher(lifetime=1.5)
    fetcher.failure = BUG
    fetcher.fail_only_in = "taskcreds-prefetch"
    recovered = threading.Event()
    real_fetch = fetcher.fetch

    def fetch(endpoint: Endpoint) -> FetchResult:
        try:
            return real_fetch(endpoint)
        except OverflowError:
            fetcher.failure = None  # the bug happens once; the thread must try again
            recovered.set()
            raise

    fetcher.fetch = fetch  # type: ignore[method-assign]
    with CredentialProvider(
        ENVIRON,
        fetcher=fetcher,
        prefetch=True,
        jitter=lambda: 0.0,
    ) as provider:
        provider.get()
        assert recovered.wait(5)
        assert fetcher.second.wait(10)
        assert provider._worker is not None
        assert provider._worker.running
        assert fetcher.threads.count("taskcreds-prefetch") >= 2


def test_far_future_expiration_is_cached_and_not_refetched() -> None:
    provider, fetcher, fake_time = make_provider()
    far = Credentials(
        "ASIAFARFUTURE000", "s", "t", datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    )
    fetcher.make = lambda n: far  # type: ignore[method-assign]
    assert provider.get() is far
    fake_time.advance(365 * 24 * 3600)
    assert provider.get() is far
    assert fetcher.calls == 1


# -- any source: from_source and the default provider ------------------------------------------


class CountingSource:
    """A CredentialSource that mints a set per fetch."""

    def __init__(self, fake_time: FakeTime, lifetime: float = 900) -> None:
        self.time = fake_time
        self.lifetime = lifetime
        self.fetches = 0
        self.closed = 0
        self.forked = 0

    def fetch(self) -> Credentials:
        self.fetches += 1
        return Credentials(
            f"ASIA{self.fetches:016d}",
            "s",
            "t",
            self.time.clock() + timedelta(seconds=self.lifetime),
        )

    def close(self) -> None:
        self.closed += 1

    def reset_after_fork(self) -> None:
        self.forked += 1


def test_from_source_caches_any_source_with_the_same_windows() -> None:
    from taskcreds.sources import CredentialSource

    fake_time = FakeTime()
    source = CountingSource(fake_time, lifetime=900)
    assert isinstance(source, CredentialSource)
    provider = CredentialProvider.from_source(
        source, clock=fake_time.clock, monotonic=fake_time.monotonic, jitter=lambda: 0.0
    )
    first = provider.get()
    for _ in range(100):
        assert provider.get() is first
    fake_time.advance(900 - 300 + 1)  # inside the advisory window, min(15 min, L/3) = 300 s
    assert provider.get() is not first
    assert source.fetches == 2
    assert provider.source is source
    with pytest.raises(AttributeError, match="not a credentials endpoint"):
        _ = provider.endpoint
    assert "CountingSource" in repr(provider)
    provider.close()
    assert source.closed == 1


def test_from_source_static_source() -> None:
    from taskcreds.sources import StaticSource

    creds = Credentials(
        "ASIASTATIC000000", "secret", "token", datetime.now(timezone.utc) + timedelta(hours=1)
    )
    provider = CredentialProvider.from_source(StaticSource(creds))
    assert provider.get() is creds
    assert "secret" not in repr(provider)


def test_endpoint_provider_exposes_its_endpoint() -> None:
    provider, _, _ = make_provider()
    assert provider.endpoint.url == ENVIRON["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert "127.0.0.1:9" in repr(provider)


def test_default_provider_is_one_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import taskcreds.provider as module

    monkeypatch.setattr(module, "_default_provider", None)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/v2/credentials/x")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    first = taskcreds.default_provider()
    assert taskcreds.default_provider() is first
    assert first.endpoint.url.endswith("/v2/credentials/x")


def test_peek_never_fetches_and_hides_an_expired_set() -> None:
    provider, fetcher, fake_time = make_provider()
    assert provider.peek() is None
    assert fetcher.calls == 0
    first = provider.get()
    fake_time.advance(6 * 3600 - 60)  # inside the mandatory window: get() would refresh
    assert provider.peek() is first
    assert fetcher.calls == 1
    fake_time.advance(61)
    assert provider.peek() is None
