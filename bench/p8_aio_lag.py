"""P8: event-loop lag while 10,000 coroutines ask for credentials during a 2 s fetch.

A ticker task measures how late each 1 ms sleep wakes while 10,000 coroutines (arriving a
hundred per turn of the loop, as a server's requests do) call
``AsyncCredentialProvider.get()`` against an endpoint that takes 2 s to answer; aiobotocore's
container provider is measured the same way in the same run, at its best (every coroutine
awaits one shared ``AioContainerProvider().load()``). How many endpoint requests
``AioSession().get_credentials()`` makes when ``SESSION_CALLS`` coroutines call it at once is
counted beside it (each caller starts a fetch of its own). Both run in the aio venv
(``make test-aio`` makes it), since aiobotocore pins a botocore the main venv's aws CLI cannot
share. The figure is the worst lag; the endpoint requests each one made are in the details.
Goal: ours ≤ 5 ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

from bench._common import REPO, interleaved, median, result, row

TITLE = "event-loop lag during a 2 s credentials fetch"
PEER = "aiobotocore AioContainerProvider, one shared load()"
GOAL_MS = 5.0
#: Coroutines calling AioSession().get_credentials() at once (each starts a 2 s fetch).
SESSION_CALLS = 100
AIO_PYTHON = REPO / ".venv-aio" / "bin" / "python"


def _isolated_environment(full_uri: str) -> dict[str, str]:
    # Only the container variable: no keys, no profile, no instance metadata for either client.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": full_uri,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def measure(*, calls: int, rounds: int, quick: bool = True) -> dict[str, Any]:
    from taskcreds.local import AgentServer, Faults, RotatingSource

    if not AIO_PYTHON.exists():
        raise RuntimeError(f"P8 runs in the aio venv: {AIO_PYTHON} is missing (make test-aio)")
    started = time.monotonic()
    figures: dict[str, list[dict[str, float]]] = {"ours": [], "aiobotocore": []}
    requests: dict[str, list[int]] = {"ours": [], "aiobotocore": []}
    with AgentServer(RotatingSource(lifetime=3600), faults=Faults(latency=2.0)) as server:
        env = _isolated_environment(server.full_uri)

        def one(client: str) -> float:
            before = server.request_count
            answer = subprocess.run(
                [str(AIO_PYTHON), "-m", "bench._p8_worker", client, str(calls)],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            measured = json.loads(answer.stdout.strip().splitlines()[-1])
            figures[client].append(measured)
            requests[client].append(server.request_count - before)
            return float(measured["worst_lag_ms"])

        worst = interleaved(rounds, {name: lambda name=name: one(name) for name in figures})
        before = server.request_count
        subprocess.run(
            [str(AIO_PYTHON), "-m", "bench._p8_worker", "aiobotocore-session", str(SESSION_CALLS)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        session_requests = server.request_count - before
    rows = [
        row(
            bench_id="P8",
            what=f"worst loop lag, {calls:,} get() during a 2 s fetch",
            unit="ms",
            ours=median(worst["ours"]),
            peer=median(worst["aiobotocore"]),
            peer_name=PEER,
            goal_op="<=",
            goal=GOAL_MS,
            goal_on="ours",
            ours_runs=worst["ours"],
            peer_runs=worst["aiobotocore"],
        )
    ]
    return result(
        "P8",
        TITLE,
        rows,
        quick=quick,
        started=started,
        params={"calls": calls, "rounds": rounds, "endpoint_latency_s": 2.0},
        details={
            "endpoint_requests": requests,
            "runs": figures,
            f"aiobotocore_session_requests_for_{SESSION_CALLS}_concurrent_calls": session_requests,
        },
    )


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return measure(calls=10_000, rounds=1)
    return measure(calls=10_000, rounds=3, quick=False)
