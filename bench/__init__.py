"""Benchmarks of taskcreds against the peer a user would otherwise pick, run side by side.

``python -m bench [--quick] [--only P1,P3]`` (or ``make bench``). Each benchmark is a module
(``p1_get`` … ``p8_aio_lag``) with ``run(quick: bool) -> dict``; the result holds our figure, the
peer's, their ratio, the goal and whether it is met (see :mod:`bench._common`). A full run writes
``bench/results/latest.json`` and regenerates the table in ``docs/performance.md``.

Everything talks to 127.0.0.1 only: a local credentials endpoint (``taskcreds.local``) and a local
SeaweedFS. Figures are medians of several rounds, ours and the peer's interleaved; the ratios are
what matter, since the machine may be busy with other work.
"""

from __future__ import annotations

BENCHMARKS: dict[str, str] = {
    "P1": "bench.p1_get",
    "P2": "bench.p2_broker",
    "P3": "bench.p3_show",
    "P4": "bench.p4_upload_file",
    "P5": "bench.p5_upload_dir",
    "P6": "bench.p6_upload_rss",
    "P7": "bench.p7_audit",
    "P8": "bench.p8_aio_lag",
}

__all__ = ["BENCHMARKS"]
