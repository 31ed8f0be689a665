"""P3: a cold ``python -m taskcreds show`` against boto3 resolving the same container credentials.

Each round starts three fresh interpreters (in rotating order) with only
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` set, pointing at a local endpoint on 127.0.0.1: ours runs
``python -m taskcreds show`` and ``python -m taskcreds health`` (the container health check, run
every 30 s); the peer runs ``python -c`` with
``boto3.Session().get_credentials().get_frozen_credentials()`` and prints the key's first
characters. Wall time from spawn to exit and the child's peak RSS (``os.wait4``, the figures
``/usr/bin/time -v`` prints). A warm-up run of each is discarded (bytecode compiled, files cached).
Goal: ≤ 0.75× the wall time and ≤ 0.8× the peak RSS; ``health`` the same wall-time goal.
"""

from __future__ import annotations

import time
from typing import Any

from bench._common import (
    PYTHON,
    Measured,
    child_env,
    interleaved,
    median,
    result,
    row,
    run_measured,
)

TITLE = "cold `taskcreds show`"
PEER = "boto3 in python -c"
PEER_CODE = (
    "import boto3; c = boto3.Session().get_credentials().get_frozen_credentials(); "
    "print(c.access_key[:4])"
)
OURS_CMD = [PYTHON, "-m", "taskcreds", "show"]
HEALTH_CMD = [PYTHON, "-m", "taskcreds", "health"]
PEER_CMD = [PYTHON, "-c", PEER_CODE]


def measure(*, rounds: int, quick: bool = True) -> dict[str, Any]:
    from taskcreds.local import AgentServer, RotatingSource

    started = time.monotonic()
    runs: dict[str, list[Measured]] = {"ours": [], "health": [], "peer": []}
    with AgentServer(RotatingSource(lifetime=3600)) as server:
        env = child_env(server.environment())
        commands = {"ours": OURS_CMD, "health": HEALTH_CMD, "peer": PEER_CMD}
        for name, command in commands.items():  # warm-up, discarded
            run_measured(command, env, timeout=60).check(f"P3 {name}")

        def one(name: str) -> float:
            measured = run_measured(commands[name], env, timeout=60).check(f"P3 {name}")
            runs[name].append(measured)
            return measured.wall

        interleaved(rounds, {name: lambda name=name: one(name) for name in commands})
    walls = {name: [m.wall for m in measured] for name, measured in runs.items()}
    rss = {name: [m.maxrss_mib for m in measured] for name, measured in runs.items()}
    rows = [
        row(
            bench_id="P3",
            what="cold `python -m taskcreds show`, wall time",
            unit="s",
            ours=median(walls["ours"]),
            peer=median(walls["peer"]),
            peer_name=PEER,
            goal_op="<=",
            goal=0.75,
            ours_runs=walls["ours"],
            peer_runs=walls["peer"],
        ),
        row(
            bench_id="P3",
            what="cold `python -m taskcreds show`, peak RSS",
            unit="MiB",
            ours=median(rss["ours"]),
            peer=median(rss["peer"]),
            peer_name=PEER,
            goal_op="<=",
            goal=0.8,
            ours_runs=rss["ours"],
            peer_runs=rss["peer"],
        ),
        row(
            bench_id="P3",
            what="cold `python -m taskcreds health`, wall time",
            unit="s",
            ours=median(walls["health"]),
            peer=median(walls["peer"]),
            peer_name=PEER,
            goal_op="<=",
            goal=0.75,
            ours_runs=walls["health"],
            peer_runs=walls["peer"],
        ),
    ]
    return result(
        "P3",
        TITLE,
        rows,
        quick=quick,
        started=started,
        params={"rounds": rounds},
        details={"peer_command": PEER_CODE},
    )


def run(quick: bool) -> dict[str, Any]:
    return measure(rounds=5 if quick else 15, quick=quick)
