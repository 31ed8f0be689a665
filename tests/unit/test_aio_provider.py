"""taskcreds.aio.AsyncCredentialProvider: the sync provider's policy, never blocking the loop.

Sources are scripted and block on threading.Event where a test needs a fetch in flight; the
loop's progress is counted by a ticker task, never timed."""

from __future__ import annotations

import asyncio
import sys
import threading
from datetime import timedelta

import pytest

from taskcreds import Credentials, CredentialsExpiredError, telemetry
from taskcreds.aio import AsyncCredentialProvider
from taskcreds.errors import EndpointUnreachableError

from .test_provider import FakeTime


class GatedSource:
    """Answers with a new set each fetch; while ``gate`` is clear a fetch waits on it."""

    def __init__(self, fake_time: FakeTime, *, lifetime: float = 3600.0) -> None:
        self.time = fake_time
        self.lifetime = lifetime
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls = 0
        self.fail_with: Exception | None = None
        self.threads: list[str] = []

    def fetch(self) -> Credentials:
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.gate.wait(30)
        if self.fail_with is not None:
            raise self.fail_with
        return Credentials(
            access_key_id=f"ASIAAIO{self.calls:013d}",
            secret_access_key="s" * 40,
            token="t",
            expiration=self.time.clock() + timedelta(seconds=self.lifetime),
        )

    def close(self) -> None:
        pass

    def reset_after_fork(self) -> None:
        pass


def make(
    lifetime: float = 3600.0, refreshed: threading.Event | None = None
) -> tuple[AsyncCredentialProvider, GatedSource, FakeTime]:
    fake_time = FakeTime()
    source = GatedSource(fake_time, lifetime=lifetime)

    def on_event(event: telemetry.CredentialEvent) -> None:
        if refreshed is not None and isinstance(event, telemetry.RefreshEvent):
            refreshed.set()  # delivered after the set was installed

    provider = AsyncCredentialProvider.from_source(
        source,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        jitter=lambda: 0.5,
        on_event=on_event,
    )
    return provider, source, fake_time


async def ticking(ticks: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.001)
        ticks[0] += 1


def test_ten_thousand_gets_during_a_fetch_make_one_request_and_the_loop_runs_on() -> None:
    provider, source, _ = make()
    source.gate.clear()

    async def scenario() -> list[Credentials]:
        ticks, stop = [0], asyncio.Event()
        ticker = asyncio.create_task(ticking(ticks, stop))
        waiters = [asyncio.create_task(provider.get()) for _ in range(10_000)]
        await asyncio.to_thread(source.entered.wait, 30)
        seen = ticks[0]
        while ticks[0] < seen + 50:  # the loop keeps running while the fetch is blocked
            await asyncio.sleep(0)
        assert not any(waiter.done() for waiter in waiters)
        source.gate.set()
        results = await asyncio.gather(*waiters)
        stop.set()
        await ticker
        return results

    results = asyncio.run(scenario())
    assert source.calls == 1
    assert {credentials.access_key_id for credentials in results} == {results[0].access_key_id}
    assert source.threads == ["taskcreds-aio_0"]  # its own worker, not the loop's executor


def test_a_fresh_set_is_returned_without_a_thread() -> None:
    provider, source, _ = make()

    async def scenario() -> tuple[Credentials, Credentials]:
        first = await provider.get()
        source.gate.clear()  # a fetch now would block: there must be none
        return first, await provider.get()

    first, second = asyncio.run(scenario())
    assert first is second
    assert source.calls == 1


def test_the_advisory_window_answers_at_once_and_refreshes_in_the_background() -> None:
    refreshed = threading.Event()
    provider, source, fake_time = make(lifetime=3600.0, refreshed=refreshed)

    async def scenario() -> tuple[Credentials, Credentials, Credentials]:
        first = await provider.get()
        assert await asyncio.to_thread(telemetry.flush, 30)
        refreshed.clear()
        fake_time.advance(3600 - 14 * 60)  # inside botocore's 15-minute advisory window
        source.gate.clear()
        source.entered.clear()
        cached = await provider.get()  # not waiting for the blocked fetch
        await asyncio.to_thread(source.entered.wait, 30)
        source.gate.set()
        assert await asyncio.to_thread(refreshed.wait, 30)
        return first, cached, await provider.get()

    first, cached, fresh = asyncio.run(scenario())
    assert cached is first
    assert fresh is not first
    assert source.calls == 2


def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    provider, source, _ = make()
    source.gate.clear()

    async def scenario() -> Credentials:
        impatient = asyncio.create_task(provider.get())
        patient = asyncio.create_task(provider.get())
        await asyncio.to_thread(source.entered.wait, 30)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        source.gate.set()
        return await patient

    credentials = asyncio.run(scenario())
    assert credentials.access_key_id.startswith("ASIAAIO")
    assert source.calls == 1


def test_errors_are_the_providers_typed_errors_and_stale_sets_are_served() -> None:
    provider, source, fake_time = make(lifetime=3600.0)

    async def scenario() -> None:
        source.fail_with = EndpointUnreachableError(
            "no agent", url="http://127.0.0.1:1/", reason="refused"
        )
        with pytest.raises(EndpointUnreachableError):
            await provider.get()
        source.fail_with = None
        good = await provider.get()
        fake_time.advance(3600 - 60)  # mandatory window: callers wait for the fetch
        source.fail_with = EndpointUnreachableError(
            "no agent", url="http://127.0.0.1:1/", reason="refused"
        )
        assert await provider.get() is good  # stale but valid: served
        fake_time.advance(120)
        with pytest.raises(CredentialsExpiredError):
            await provider.get()

    asyncio.run(scenario())
    stats = provider.stats()
    assert stats.fetches_failed >= 2
    assert stats.stale_served >= 1


def test_refresh_fetches_and_aclose_leaves_it_usable() -> None:
    provider, source, _ = make()

    async def scenario() -> tuple[Credentials, Credentials, Credentials]:
        async with provider:
            first = await provider.get()
            second = await provider.refresh()
        third = await provider.refresh()  # after aclose(): a worker is started again
        await provider.aclose()
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert len({first.access_key_id, second.access_key_id, third.access_key_id}) == 3
    assert source.calls == 3


def test_importing_taskcreds_aio_imports_no_boto() -> None:
    import subprocess

    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, taskcreds.aio; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('boto3', 'botocore', 'aiobotocore', 's3transfer')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == "[]"
