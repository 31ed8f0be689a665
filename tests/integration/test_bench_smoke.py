"""Every benchmark in bench/ runs at a tiny size, so none can rot unnoticed.

Only the shape of each result is checked, never a figure against its goal: timings belong in
``make bench`` and docs/performance.md, not in the test suite. Everything talks to 127.0.0.1: a
local credentials endpoint, and the session's SeaweedFS for the upload benchmarks.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from bench import (
    BENCHMARKS,
    engines,
    p1_get,
    p2_endpoint_load,
    p3_show,
    p4_upload_file,
    p5_upload_dir,
    p6_upload_rss,
    p7_audit,
)
from bench.__main__ import render_table
from bench._auditlog import lines
from bench._common import MiB
from taskcreds.audit import parse_line
from taskcreds_demo.seaweed import SeaweedFS
from tests.conftest import running_seaweed

_RESULT_FIELDS = {"id", "title", "ours", "peer", "ratio", "goal", "met", "rows", "details"}
_ROW_FIELDS = {"id", "what", "unit", "ours", "peer", "peer_name", "ratio", "goal", "met"}


def check_result(outcome: dict[str, Any], bench_id: str, rows: int) -> None:
    assert outcome.keys() >= _RESULT_FIELDS
    assert outcome["id"] == bench_id
    assert len(outcome["rows"]) == rows
    for item in outcome["rows"]:
        assert item.keys() >= _ROW_FIELDS
        assert item["id"] == bench_id
        assert isinstance(item["met"], bool)
        assert math.isfinite(item["ours"])
        if item["peer"] is not None:
            assert math.isfinite(item["peer"])
    assert f"| {bench_id} |" in render_table({bench_id: outcome})


def test_every_benchmark_has_a_module() -> None:
    assert list(BENCHMARKS) == [f"P{n}" for n in range(1, 9)]  # P8 runs in tests/aio_peer


def test_p1_cached_get() -> None:
    outcome = p1_get.measure(calls=4000, rounds=1)
    check_result(outcome, "P1", rows=2)
    assert outcome["details"]["endpoint_requests_while_timed"] == 0


def test_p2_endpoint_load() -> None:
    outcome = p2_endpoint_load.measure(processes=2, threads=2, lifetime=2.0, lifetimes=2)
    check_result(outcome, "P2", rows=3)
    for client in ("ours", "botocore"):
        assert outcome["details"][client]["requests"] > 0


def test_p3_cold_show() -> None:
    check_result(p3_show.measure(rounds=1), "P3", rows=3)


def test_p4_upload_file(seaweed: SeaweedFS) -> None:
    check_result(p4_upload_file.measure(size=6 * MiB, rounds=1, seaweed=seaweed), "P4", rows=6)


def test_p5_upload_dir(seaweed: SeaweedFS) -> None:
    check_result(p5_upload_dir.measure(files=20, rounds=1, seaweed=seaweed), "P5", rows=4)


def test_p6_upload_rss(seaweed: SeaweedFS) -> None:
    check_result(p6_upload_rss.measure(size=6 * MiB, seaweed=seaweed), "P6", rows=1)


def test_p7_audit() -> None:
    check_result(p7_audit.measure(lines=4000, rounds=1), "P7", rows=2)


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_audit_lines_parse(seed: int) -> None:
    generated = list(lines(2000, seed=seed))
    assert all(parse_line(line) is not None for line in generated)
    assert any(" 429 " in line for line in generated)


def test_engine_comparison_runs(seaweed: SeaweedFS, capsys: pytest.CaptureFixture[str]) -> None:
    # bench/engines.py (not part of `make bench`): every engine stores every file. obstore is no
    # dependency of taskcreds (its driver runs only where someone installed it): not here.
    ours = ("taskcreds", "s5cmd", "crt", "crt-checked")
    engines.compare(files=10, big_mib=0, rounds=1, seaweed=seaweed, only=ours)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("small")]
    assert {line.split()[3] for line in lines} >= {"taskcreds", "s5cmd", "crt", "crt-checked"}
    assert all("stored 10/10" in line for line in lines)


def test_engine_comparison_pins_the_server_apart_from_the_clients(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A server of its own: pinning the session's would hold every later test to one CPU.
    cpus = os.sched_getaffinity(0)
    with running_seaweed() as server:
        try:
            if len(cpus) < 2:
                with pytest.raises(RuntimeError, match="needs 2 CPUs"):
                    engines.compare(files=5, big_mib=0, rounds=1, seaweed=server, pin=True)
                return
            engines.compare(files=5, big_mib=0, rounds=1, seaweed=server, only=("crt",), pin=True)
            assert server.pid is not None
            threads = list(Path(f"/proc/{server.pid}/task").iterdir())
            assert {frozenset(os.sched_getaffinity(int(t.name))) for t in threads} == {
                frozenset({max(cpus)})
            }
            assert os.sched_getaffinity(0) == cpus - {max(cpus)}
        finally:
            os.sched_setaffinity(0, cpus)
    out = capsys.readouterr().out
    assert "SeaweedFS pinned; clients on CPUs" in out
    assert "stored 5/5" in out
    assert "ms/object" in out
