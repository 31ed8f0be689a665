"""P7: ``python -m taskcreds audit FILE --json`` over a big generated audit log.

Two logs are generated (``bench._auditlog``, seeded): ``lines`` lines and a quarter of that. Each
round runs the command once on each, in a fresh process under ``/usr/bin/time``. Throughput is
the big log's lines over the whole command's wall time (start-up and JSON output included); the
line count the report gives is checked. "Flat memory" compares the peak RSS on the big log with
that on the quarter-size one. Goal: ≥ 300,000 lines/s, and peak RSS at 4× the lines ≤ 1.1×.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench._auditlog import generate
from bench._common import (
    PYTHON,
    Measured,
    child_env,
    interleaved,
    median,
    result,
    row,
    run_measured,
    temp_dir,
)

TITLE = "`taskcreds audit` over a big log"
GOAL_LINES_PER_S = 300_000.0
GOAL_RSS_GROWTH = 1.1


def _audit(path: Path, lines: int) -> Measured:
    command = [PYTHON, "-m", "taskcreds", "audit", str(path), "--json"]
    measured = run_measured(command, child_env(), timeout=60 + lines / 20_000)
    measured.check("taskcreds audit")
    counted = json.loads(measured.stdout)["totals"]["lines"]
    if counted != lines:
        raise RuntimeError(f"taskcreds audit counted {counted} lines of {lines}")
    return measured


def measure(*, lines: int, rounds: int, quick: bool = True) -> dict[str, Any]:
    started = time.monotonic()
    small_lines = lines // 4
    runs: dict[str, list[Measured]] = {"big": [], "small": []}
    with temp_dir("p7") as work:
        big = generate(work / "audit.log", lines)
        small = generate(work / "audit-quarter.log", small_lines)
        generated = time.monotonic() - started

        def one(name: str, path: Path, count: int) -> float:
            measured = _audit(path, count)
            runs[name].append(measured)
            return measured.wall

        interleaved(
            rounds,
            {
                "big": lambda: one("big", big, lines),
                "small": lambda: one("small", small, small_lines),
            },
        )
        size_mib = big.stat().st_size / 2**20
    rate = [lines / m.wall for m in runs["big"]]
    rss_big = [m.maxrss_mib for m in runs["big"]]
    rss_small = [m.maxrss_mib for m in runs["small"]]
    rows = [
        row(
            bench_id="P7",
            what=f"`taskcreds audit --json`, {lines:,} lines",
            unit="lines/s",
            ours=median(rate),
            peer=None,
            peer_name=None,
            goal_op=">=",
            goal=GOAL_LINES_PER_S,
            goal_on="ours",
            goal_text="≥ 300,000 lines/s",
            ours_runs=rate,
        ),
        row(
            bench_id="P7",
            what=f"peak RSS at {lines:,} lines vs at {small_lines:,} (flat memory)",
            unit="MiB",
            ours=median(rss_big),
            peer=median(rss_small),
            peer_name=f"the same command on {small_lines:,} lines",
            goal_op="<=",
            goal=GOAL_RSS_GROWTH,
            ours_runs=rss_big,
            peer_runs=rss_small,
        ),
    ]
    return result(
        "P7",
        TITLE,
        rows,
        quick=quick,
        started=started,
        params={"lines": lines, "rounds": rounds},
        details={
            "log_mib": round(size_mib, 1),
            "generate_s": round(generated, 1),
            "cpu_s": [round(m.cpu, 2) for m in runs["big"]],
            "wall_small_s": [round(m.wall, 3) for m in runs["small"]],
        },
    )


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return measure(lines=100_000, rounds=3)
    return measure(lines=2_000_000, rounds=3, quick=False)
