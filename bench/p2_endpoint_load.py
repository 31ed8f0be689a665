"""P2: endpoint load from many processes and threads, with short-lived credentials.

One local endpoint (``AgentServer``) throttles as the ECS agent does (40 requests/s, burst 60,
per client address: every process here is 127.0.0.1, so they share one bucket) and hands out
sets that live ``lifetime`` seconds (``RotatingSource``: a new set once half the current one's
life has passed). ``processes`` processes of ``threads`` threads each call "get the credentials"
every ``pause`` seconds for ``lifetimes`` lifetimes: first with taskcreds (one provider per
process), then with botocore's container provider (its ``RefreshableCredentials`` refreshes when
less than 15 minutes are left, so with short sets on every call: botocore#2189).

Reported: HTTP requests per process per lifetime (all of them, retries included, counted by the
server), throttled (429) responses, calls that failed, and how refreshes were spread: how long
before the old set's expiry each refresh came, and how far apart the processes' first refreshes
were (they all start at once with the same set, so only jitter separates them).
Goal: ≤ 1 request per process per lifetime, 0 throttled, refreshes spread by jitter (taskcreds
moves each advisory point earlier by up to L/12, so the first refreshes of processes started
together should spread over about that much; the goal asks for at least half of it, L/24).
"""

from __future__ import annotations

import itertools
import json
import math
import select
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

from bench._common import PYTHON, REPO, child_env, result, row, temp_dir

TITLE = "endpoint load, short-lived credentials"
PEER = "botocore ContainerProvider"
_READY_TIMEOUT = 120.0


def _spawn(
    client: str,
    index: int,
    env: dict[str, str],
    work: Path,
    threads: int,
    duration: float,
    pause: float,
) -> tuple[subprocess.Popen[bytes], Path, IO[bytes]]:
    out = work / f"{client}-{index}.json"
    err = (work / f"{client}-{index}.err").open("wb")
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "bench._p2_worker",
            client,
            "--threads",
            str(threads),
            "--duration",
            str(duration),
            "--pause",
            str(pause),
            "--out",
            str(out),
        ],
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=err,
    )
    return process, out, err


def _wait_ready(processes: list[subprocess.Popen[bytes]], deadline: float) -> None:
    waiting = {p.stdout.fileno(): p for p in processes if p.stdout is not None}
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{len(waiting)} P2 workers not ready in time")
        readable, _, _ = select.select(list(waiting), [], [], left)
        for fd in readable:
            process = waiting.pop(fd)
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"P2 worker said {line!r} instead of ready")


def _one_client(
    client: str, *, processes: int, threads: int, lifetime: float, lifetimes: int, pause: float
) -> dict[str, Any]:
    from taskcreds.local import (
        AGENT_RPS_BURST,
        AGENT_RPS_LIMIT,
        AgentServer,
        Faults,
        RotatingSource,
    )

    duration = lifetime * lifetimes
    faults = Faults(throttle_rps=AGENT_RPS_LIMIT, throttle_burst=AGENT_RPS_BURST)
    with (
        temp_dir("p2") as work,
        AgentServer(RotatingSource(lifetime=lifetime), faults=faults) as server,
    ):
        env = child_env(server.environment())
        spawned = [_spawn(client, i, env, work, threads, duration, pause) for i in range(processes)]
        children = [p for p, _, _ in spawned]
        try:
            _wait_ready(children, time.monotonic() + _READY_TIMEOUT)
            server.clear_requests()
            for child in children:
                assert child.stdin is not None
                child.stdin.write(b"go\n")
                child.stdin.flush()
            for child in children:
                child.wait(timeout=duration + 90)
        finally:
            for child, _, err in spawned:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                for stream in (child.stdin, child.stdout):
                    if stream is not None:
                        stream.close()
                err.close()
        requests = server.requests
        failed = [
            (work / f"{client}-{i}.err").read_text()[-1500:]
            for i, (child, _, _) in enumerate(spawned)
            if child.returncode != 0
        ]
        if failed:
            raise RuntimeError(f"P2 {client} worker failed: {failed[0]}")
        documents = [json.loads(out.read_text()) for _, out, _ in spawned]
    return _summarise(client, documents, requests, processes, lifetimes, lifetime)


def _summarise(
    client: str,
    documents: list[dict[str, Any]],
    requests: list[Any],
    processes: int,
    lifetimes: int,
    lifetime: float,
) -> dict[str, Any]:
    statuses = Counter(str(r.status) for r in requests)
    calls: Counter[str] = Counter()
    leads: list[float] = []
    first_refreshes: list[float] = []
    fetch_times: list[float] = []
    new_sets = 0
    ok_fetches = 0
    for document in documents:
        calls.update(document["calls"])
        fetch_times.extend(fetch["t"] for fetch in document["fetches"])
        succeeded = [fetch for fetch in document["fetches"] if fetch["ok"]]
        ok_fetches += len(succeeded)
        new_sets += len({fetch["key"] for fetch in succeeded})
        for previous, fetch in itertools.pairwise(succeeded):
            leads.append(previous["expiration"] - fetch["t"])
        if len(succeeded) > 1:
            first_refreshes.append(succeeded[1]["t"])
    total_requests = len(requests)
    denominator = processes * lifetimes
    return {
        "client": client,
        "requests": total_requests,
        "requests_per_process_per_lifetime": total_requests / denominator,
        "ok_fetches_per_process_per_lifetime": ok_fetches / denominator,
        "fetches_per_new_set": ok_fetches / new_sets if new_sets else None,
        "throttled": statuses.get("429", 0),
        "statuses": dict(statuses),
        "calls": dict(calls),
        "failed_calls": sum(n for name, n in calls.items() if name != "ok"),
        "refresh_lead_s": _stats(leads),
        "first_refresh_spread_s": (
            max(first_refreshes) - min(first_refreshes) if len(first_refreshes) > 1 else None
        ),
        "max_fetches_in_100ms": _peak(fetch_times, 0.1),
    }


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "min": round(ordered[0], 3),
        "median": round(statistics.median(ordered), 3),
        "max": round(ordered[-1], 3),
        "stdev": round(statistics.pstdev(ordered), 3),
    }


def _peak(times: list[float], window: float) -> int:
    buckets = Counter(math.floor(t / window) for t in times)
    return max(buckets.values(), default=0)


def measure(
    *,
    processes: int,
    threads: int,
    lifetime: float,
    lifetimes: int,
    pause: float = 0.02,
    quick: bool = True,
) -> dict[str, Any]:
    started = time.monotonic()
    shape: dict[str, Any] = {
        "processes": processes,
        "threads": threads,
        "lifetime": lifetime,
        "lifetimes": lifetimes,
        "pause": pause,
    }
    ours = _one_client("ours", **shape)
    peer = _one_client("botocore", **shape)
    rows = [
        row(
            bench_id="P2",
            what=f"endpoint requests per process per lifetime ({processes} proc × {threads} thr)",
            unit="req",
            ours=ours["requests_per_process_per_lifetime"],
            peer=peer["requests_per_process_per_lifetime"],
            peer_name=PEER,
            goal_op="<=",
            goal=1.0,
            goal_on="ours",
            goal_text="≤ 1 per process per lifetime",
        ),
        row(
            bench_id="P2",
            what="throttled (429) responses",
            unit="429s",
            ours=float(ours["throttled"]),
            peer=float(peer["throttled"]),
            peer_name=PEER,
            goal_op="<=",
            goal=0.0,
            goal_on="ours",
            goal_text="0",
        ),
        row(
            bench_id="P2",
            what=f"spread of the {processes} processes' first refreshes (all start together)",
            unit="s",
            ours=ours["first_refresh_spread_s"] or 0.0,
            peer=peer["first_refresh_spread_s"],
            peer_name=PEER,
            goal_op=">=",
            goal=lifetime / 24,
            goal_on="ours",
            goal_text=f"spread by jitter: ≥ L/24 = {lifetime / 24:.2g} s",
        ),
    ]
    return result(
        "P2",
        TITLE,
        rows,
        quick=quick,
        started=started,
        params=shape,
        details={"ours": ours, "botocore": peer},
    )


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return measure(processes=4, threads=8, lifetime=3.0, lifetimes=3)
    return measure(processes=16, threads=32, lifetime=6.0, lifetimes=10, quick=False)
