"""How fast does ``taskcreds.audit`` read an audit log? Goal: at least 300,000 lines/s, one core.

Writes an N-line log in the agent's format (a realistic mix: 40 tasks, several SDKs, both event
types, about 1% errors and 0.5% 429s with ``-`` for the task and missing trailing fields), then
times the whole pipeline: open, read, parse, filter, count, report, best of ``--repeat`` runs, by
the wall clock and by CPU time (CPU time is the one-core figure when other work shares the
machine). Also times ``parse_line`` alone.

    .venv/bin/python bench/audit_bench.py --lines 2000000
    .venv/bin/python bench/audit_bench.py --lines 2000000 --gzip --keep /tmp/audit.log.gz

Not part of ``make``: run it by hand.
"""

from __future__ import annotations

import argparse
import gzip
import random
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from taskcreds.audit import AuditSummary, parse_line

ACCOUNT = "123456789012"
AGENTS = (
    "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.0 os/linux#5.10.228-219.884.amzn2.x86_64 "
    "md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.43.11",
    "aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64",
    "aws-sdk-java/2.25.60 Linux/5.10.228 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11",
    "aws-sdk-js/3.600.0 ua/2.1 os/linux#5.10.228 lang/js md/nodejs#20.15.0 api/sts#3.600.0",
    "aws-cli/2.17.0 md/awscrt#0.20.11 ua/2.0 os/linux#5.10.228 md/arch#x86_64 lang/python#3.11.9",
    "taskcreds/0.1.0 python/3.11.7",
)


def lines(count: int, seed: int = 6) -> Iterator[str]:
    rng = random.Random(seed)
    tasks = [
        (f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/{rng.getrandbits(128):032x}", f"172.17.0.{n}")
        for n in range(2, 42)
    ]
    instance = (
        f"arn:aws:ecs:us-east-1:{ACCOUNT}:container-instance/prod/{rng.getrandbits(128):032x}"
    )
    start = datetime(2026, 11, 29, 0, 0, 0, tzinfo=timezone.utc)
    for n in range(count):
        stamp = (start + timedelta(seconds=n * 86400 // max(count, 1))).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        task, ip = tasks[rng.randrange(len(tasks))]
        port = rng.randrange(32768, 61000)
        agent = AGENTS[rng.randrange(len(AGENTS))]
        roll = rng.random()
        if roll < 0.005:
            yield f'{stamp} 429 {ip}:{port} "/v2/credentials" "{agent}" -\n'
        elif roll < 0.015:
            yield f'{stamp} 400 {ip}:{port} "/v2/credentials" "{agent}" - - 2\n'
        else:
            event = "GetCredentialsExecutionRole" if roll > 0.98 else "GetCredentials"
            yield (
                f'{stamp} 200 {ip}:{port} "/v2/credentials" "{agent}" {task} {event} 2 prod '
                f"{instance}\n"
            )


def write_log(path: Path, count: int, *, compress: bool) -> None:
    opener = gzip.open if compress else open
    with opener(path, "wt", encoding="utf-8") as out:  # type: ignore[operator]
        out.writelines(lines(count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000, help="lines to generate")
    parser.add_argument("--gzip", action="store_true", help="write and read a .gz log")
    parser.add_argument("--keep", type=Path, help="write the log here and keep it")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--memory", action="store_true", help="also trace peak memory (slower)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / ("audit.log.gz" if args.gzip else "audit.log")
        if not path.exists():
            began = time.perf_counter()
            write_log(path, args.lines, compress=args.gzip)
            print(f"wrote {args.lines:,} lines to {path} in {time.perf_counter() - began:.1f} s")

        best_wall = best_cpu = float("inf")
        for _ in range(args.repeat):
            summary = AuditSummary()
            wall, cpu = time.perf_counter(), time.process_time()
            summary.add_file(path)
            report = summary.report()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
            print(
                f"summary: {report.lines:,} lines in {wall:.2f} s wall, {cpu:.2f} s CPU = "
                f"{report.lines / wall:,.0f} lines/s wall, {report.lines / cpu:,.0f} lines/s CPU "
                f"({report.parsed:,} parsed, {report.unparsed:,} unparsed, "
                f"{len(report.tasks)} tasks)"
            )
        if args.repeat > 1:
            print(
                f"best of {args.repeat}: {report.lines / best_wall:,.0f} lines/s wall, "
                f"{report.lines / best_cpu:,.0f} lines/s CPU"
            )

        sample = list(lines(200_000))
        began = time.perf_counter()
        for line in sample:
            parse_line(line)
        elapsed = time.perf_counter() - began
        print(f"parse_line alone: {len(sample) / elapsed:,.0f} lines/s")

        if args.memory:
            tracemalloc.start()
            summary = AuditSummary()
            summary.add_file(path)
            summary.report()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"peak traced memory while summarising: {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
