"""P1: a cached ``CredentialProvider.get()`` against botocore's ``get_frozen_credentials()``.

Both hold a set valid for an hour, so neither refreshes: this is the price of asking for the
current credentials, paid on every signed request. One thread: ``timeit`` of the bound method.
Sixteen threads: each calls it ``calls`` times after a barrier; the figure is the wall time of the
whole burst divided by every call made (the cost per call of the total throughput).
Goal: ours ≤ 0.02× botocore's, in both cases.
"""

from __future__ import annotations

import threading
import time
import timeit
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from bench._common import interleaved, median, result, row

TITLE = "cached get() per call"
PEER = "botocore get_frozen_credentials()"
THREADS = 16


def _botocore_credentials() -> Callable[[], object]:
    from botocore.credentials import RefreshableCredentials

    expiry = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    metadata = {"access_key": "ASIAX", "secret_key": "secret", "token": "t", "expiry_time": expiry}
    credentials = RefreshableCredentials.create_from_metadata(
        metadata, refresh_using=lambda: metadata, method="bench"
    )
    return credentials.get_frozen_credentials


def _per_call_one_thread(get: Callable[[], object], calls: int) -> float:
    return timeit.Timer("get()", globals={"get": get}).timeit(calls) / calls


def _per_call_threads(get: Callable[[], object], calls: int, threads: int) -> float:
    barrier = threading.Barrier(threads + 1)
    done = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait(timeout=60)
        for _ in range(calls):
            get()
        done.wait(timeout=600)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=60)
    started = time.perf_counter()
    done.wait(timeout=600)
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join(timeout=60)
    return elapsed / (calls * threads)


def measure(
    *, calls: int, rounds: int, threads: int = THREADS, quick: bool = True
) -> dict[str, Any]:
    """The P1 result with ``calls`` calls per timing (per thread with 16) and ``rounds`` rounds.

    botocore is ~100× slower per call, so it gets a tenth of the calls (still over a second's
    worth in a full run).
    """
    from taskcreds import CredentialProvider
    from taskcreds.local import AgentServer, RotatingSource

    started = time.monotonic()
    peer_get = _botocore_credentials()
    peer_calls = max(calls // 10, 1)
    with (
        AgentServer(RotatingSource(lifetime=3600)) as server,
        CredentialProvider(server.environment()) as provider,
    ):
        ours_get = provider.get
        ours_get()  # the one fetch; every timed call is served from the cache
        requests_before = server.request_count
        one = interleaved(
            rounds,
            {
                "ours": lambda: _per_call_one_thread(ours_get, calls),
                "peer": lambda: _per_call_one_thread(peer_get, peer_calls),
            },
        )
        per_thread = max(calls // threads, 1)
        many = interleaved(
            rounds,
            {
                "ours": lambda: _per_call_threads(ours_get, per_thread, threads),
                "peer": lambda: _per_call_threads(peer_get, max(per_thread // 10, 1), threads),
            },
        )
        fetches_while_timed = server.request_count - requests_before
    ns = 1e9
    rows = [
        row(
            bench_id="P1",
            what="cached get(), 1 thread",
            unit="ns/call",
            ours=median(one["ours"]) * ns,
            peer=median(one["peer"]) * ns,
            peer_name=PEER,
            goal_op="<=",
            goal=0.02,
            ours_runs=[v * ns for v in one["ours"]],
            peer_runs=[v * ns for v in one["peer"]],
        ),
        row(
            bench_id="P1",
            what=f"cached get(), {threads} threads (per call of the total)",
            unit="ns/call",
            ours=median(many["ours"]) * ns,
            peer=median(many["peer"]) * ns,
            peer_name=PEER,
            goal_op="<=",
            goal=0.02,
            ours_runs=[v * ns for v in many["ours"]],
            peer_runs=[v * ns for v in many["peer"]],
        ),
    ]
    return result(
        "P1",
        TITLE,
        rows,
        quick=quick,
        started=started,
        params={"calls": calls, "peer_calls": peer_calls, "rounds": rounds, "threads": threads},
        details={"endpoint_requests_while_timed": fetches_while_timed},
    )


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return measure(calls=200_000, rounds=3)
    return measure(calls=2_000_000, rounds=5, quick=False)
