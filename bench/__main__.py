"""``python -m bench [--quick] [--only P1,P3]``: run, save the figures, regenerate the table.

A full run merges its results into ``bench/results/latest.json`` (benchmarks not run keep their
last figures) and regenerates the table in ``docs/performance.md`` between
``<!-- bench:start -->`` and ``<!-- bench:end -->``, leaving the prose around it alone. A
``--quick`` run (small sizes, for a look in a minute or two) writes ``bench/results/quick.json``
and leaves the docs as they are. A benchmark that fails is reported and the others still run;
the exit status is then 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from bench import BENCHMARKS
from bench._common import REPO

RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs" / "performance.md"
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; docs left as they are")
    parser.add_argument("--only", metavar="IDS", help="comma-separated ids, e.g. P1,P3")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table only; write no file"
    )
    args = parser.parse_args(argv)
    chosen = _chosen(args.only)
    began = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for bench_id in chosen:
        print(f"[bench] {bench_id} ({'quick' if args.quick else 'full'}) ...", file=sys.stderr)
        try:
            module = importlib.import_module(BENCHMARKS[bench_id])
            outcome: dict[str, Any] = module.run(args.quick)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            failures[bench_id] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            continue
        results[bench_id] = outcome
        print(f"[bench] {bench_id} done in {outcome['seconds']} s", file=sys.stderr)
    elapsed = round(time.monotonic() - began, 1)
    run_info = {**_machine(), "quick": args.quick, "seconds": elapsed, "ran": list(results)}
    if failures:
        run_info["failed"] = failures
    if not args.no_write:
        document = _save(results, run_info, quick=args.quick)
        if not args.quick:
            _write_docs(document)
    print(render_table(results))
    for bench_id, error in failures.items():
        print(f"{bench_id} FAILED: {error}", file=sys.stderr)
    return 1 if failures else 0


def _chosen(only: str | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    wanted = [part.strip().upper() for part in only.split(",") if part.strip()]
    unknown = [bench_id for bench_id in wanted if bench_id not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)} (known: P1 … P8)")
    return [bench_id for bench_id in BENCHMARKS if bench_id in wanted]


def _machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("taskcreds", "boto3", "botocore", "s3transfer", "awscli", "awscrt"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def _save(
    results: Mapping[str, dict[str, Any]], run_info: dict[str, Any], *, quick: bool
) -> dict[str, Any]:
    """Merge into the results file (ids not run keep their figures) and write it atomically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / ("quick.json" if quick else "latest.json")
    previous: dict[str, Any] = {}
    if target.is_file():
        try:
            previous = json.loads(target.read_text(encoding="utf-8"))
        except ValueError:
            previous = {}
    merged = dict(previous.get("results", {}))
    merged.update(results)
    ordered = {bench_id: merged[bench_id] for bench_id in BENCHMARKS if bench_id in merged}
    document = {"last_run": run_info, "results": ordered}
    scratch = target.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    scratch.replace(target)
    print(f"[bench] wrote {target.relative_to(REPO)}", file=sys.stderr)
    return document


def _write_docs(document: Mapping[str, Any]) -> None:
    if not DOCS.is_file():
        print(f"[bench] {DOCS} is missing: table not written", file=sys.stderr)
        return
    text = DOCS.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        print(f"[bench] no {START} … {END} markers in {DOCS}", file=sys.stderr)
        return
    results: Mapping[str, dict[str, Any]] = document["results"]
    info = document["last_run"]
    versions = info.get("versions", {})
    stamps = sorted({r.get("finished_at", "?")[:10] for r in results.values()})
    footer = (
        f"\n_Measured {', '.join(stamps)} on {info.get('cpus')} CPUs, Python "
        f"{info.get('python')}, botocore {versions.get('botocore')}, boto3 "
        f"{versions.get('boto3')}, s3transfer {versions.get('s3transfer')}, aws-cli "
        f"{versions.get('awscli')}; medians of the rounds in `bench/results/latest.json`._\n"
    )
    table = "\n" + render_table(results) + footer
    DOCS.write_text(text[: start + len(START)] + table + text[end:], encoding="utf-8")
    print(f"[bench] regenerated the table in {DOCS.relative_to(REPO)}", file=sys.stderr)


def render_table(results: Mapping[str, dict[str, Any]]) -> str:
    """The Markdown table: one line per row of every result."""
    lines = [
        "| id | what | ours | peer | ratio | goal | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for outcome in results.values():
        quick = " (quick)" if outcome.get("quick") else ""
        for item in outcome["rows"]:
            peer = "—"
            if item["peer"] is not None:
                peer = f"{_figure(item['peer'], item['unit'])} ({item['peer_name']})"
            ratio = "—" if item["ratio"] is None else f"{_significant(item['ratio'])}×"
            lines.append(
                f"| {item['id']} | {item['what']}{quick} | {_figure(item['ours'], item['unit'])} "
                f"| {peer} | {ratio} | {item['goal']} | {'yes' if item['met'] else '**no**'} |"
            )
    return "\n".join(lines)


def _figure(value: float, unit: str) -> str:
    if unit == "ns/call" and value >= 1000:
        return f"{_significant(value / 1000)} µs/call"
    if unit in ("429s",):
        return f"{value:.0f}"
    return f"{_significant(value)} {unit}"


def _significant(value: float, digits: int = 3) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{value:,.{decimals}f}"


if __name__ == "__main__":
    sys.exit(main())
