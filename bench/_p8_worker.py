"""P8's worker: ``python -m bench._p8_worker CLIENT CALLS`` (CLIENT: ``ours``, ``aiobotocore``
or ``aiobotocore-session``), run by the aio venv's interpreter (it has aiobotocore).
Credentials come from the endpoint in ``AWS_CONTAINER_CREDENTIALS_FULL_URI``, which takes 2 s
to answer. A ticker task sleeps 1 ms again and again and records how late each wake-up is,
while CALLS coroutines ask for the
current credentials at once. Prints one JSON line: the worst and the p99 lag in ms, and how long
the CALLS took."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

TICK = 0.001
ARRIVALS_PER_TURN = 100


async def _ticker(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        due = time.perf_counter() + TICK
        await asyncio.sleep(TICK)
        woke = time.perf_counter()
        lags.append((max(woke - due, 0.0), woke))


async def _measure(
    get: Callable[[], Awaitable[Any]], calls: int, *, failures_allowed: bool = False
) -> dict[str, float]:
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lags, stop))
    await asyncio.sleep(0.05)  # the ticker's baseline
    started = time.perf_counter()
    # The calls arrive as a server's requests do: a hundred per turn of the loop (creating
    # 10,000 tasks in one turn would itself hold the loop for ~100 ms, whatever they then do),
    # and each reports its own end (a gather() of 10,000 tasks holds the loop ~10 ms to set up).
    outcomes: list[object] = []
    all_done = asyncio.Event()

    async def one() -> None:
        try:
            outcomes.append(await get())
        except Exception as exc:
            if not failures_allowed:
                raise
            outcomes.append(exc)
        finally:
            if len(outcomes) == calls:
                all_done.set()

    tasks = []
    for start in range(0, calls, ARRIVALS_PER_TURN):
        tasks.extend(
            asyncio.ensure_future(one()) for _ in range(min(ARRIVALS_PER_TURN, calls - start))
        )
        await asyncio.sleep(0)
    await all_done.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    await ticker
    ordered = sorted(lag for lag, _ in lags)
    worst_lag, worst_at = max(lags)
    return {
        "worst_lag_ms": worst_lag * 1000,
        "p99_lag_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        #: When the worst wake-up was, from the first call (the fetch ends ~2 s after it).
        "worst_at_s": worst_at - started,
        "seconds": elapsed,
        "ticks": len(ordered),
        "failed": sum(isinstance(outcome, BaseException) for outcome in outcomes),
    }


async def _ours(calls: int) -> dict[str, float]:
    from taskcreds.aio import AsyncCredentialProvider
    from taskcreds.fetch import Fetcher

    # A read timeout above the endpoint's 2 s (the default, 2 s, would meet it exactly and
    # sometimes retry), as the peer's below.
    fetcher = Fetcher(read_timeout=5.0, deadline=30.0)
    async with AsyncCredentialProvider(fetcher=fetcher) as provider:
        return await _measure(provider.get, calls)


async def _aiobotocore(calls: int) -> dict[str, float]:
    # The best an aiobotocore user can do: every coroutine awaits one shared load() of the
    # container provider (AioSession().get_credentials() called at once by each of them starts
    # a fetch per caller: bench/p8_aio_lag.py counts them).
    from aiobotocore.credentials import AioContainerProvider
    from aiobotocore.utils import AioContainerMetadataFetcher

    class Patient(AioContainerMetadataFetcher):  # type: ignore[misc]
        TIMEOUT_SECONDS = 5  # botocore's 2 s would time out on this 2 s endpoint

    shared = asyncio.ensure_future(AioContainerProvider(fetcher=Patient()).load())

    async def get() -> Any:
        credentials = await asyncio.shield(shared)
        return await credentials.get_frozen_credentials()

    return await _measure(get, calls)


async def _aiobotocore_session(calls: int) -> dict[str, float]:
    from aiobotocore.session import AioSession

    session = AioSession()

    async def get() -> Any:
        credentials = await session.get_credentials()
        return await credentials.get_frozen_credentials()

    # botocore's 2 s container timeout meets the 2 s endpoint: some fail; the count is the point.
    return await _measure(get, calls, failures_allowed=True)


def main() -> int:
    client, calls = sys.argv[1], int(sys.argv[2])
    # The client's modules are loaded first, then left out of the collector's full passes
    # (gc.freeze), which would otherwise add 10-20 ms pauses to whichever client runs.
    if client == "ours":
        import taskcreds.aio  # noqa: F401
    else:
        import aiobotocore.credentials
        import aiobotocore.session  # noqa: F401
    gc.freeze()
    run = {"ours": _ours, "aiobotocore": _aiobotocore, "aiobotocore-session": _aiobotocore_session}[
        client
    ]
    print(json.dumps(asyncio.run(run(calls))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
