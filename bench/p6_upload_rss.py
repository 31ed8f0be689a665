"""P6: peak RSS of a process uploading one very big file with taskcreds' Uploader.

The upload runs in a fresh child (``python -m bench._clients ours-file``) under
``/usr/bin/time``, whose peak RSS is the figure (start-up, imports and the transfer's buffers
all included). boto3's ``upload_file`` of the same file is measured alongside for reference; the
goal is an absolute one: ≤ 150 MiB, whatever the file's size.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from bench._common import GiB, MiB, interleaved, make_big_file, median, result, row, temp_dir
from bench._s3 import Sample, s3_bench, summary

if TYPE_CHECKING:
    from taskcreds_demo.seaweed import SeaweedFS

TITLE = "peak RSS uploading a very big file"
PEER = "boto3 upload_file (reference, no goal)"
GOAL_MIB = 150.0


def measure(
    *, size: int, rounds: int = 1, seaweed: SeaweedFS | None = None, quick: bool = True
) -> dict[str, Any]:
    started = time.monotonic()
    samples: dict[str, list[Sample]] = {"ours": [], "boto3": []}
    timeout = 120 + size / MiB
    with temp_dir("p6") as work, s3_bench(seaweed) as bench:
        path = str(make_big_file(work / "huge.bin", size))

        def one(client: str) -> float:
            key = f"bench/p6/{client}-{len(samples[client])}.bin"
            command = "ours-file" if client == "ours" else "boto3-file"
            env = bench.ours_env() if client == "ours" else bench.peer_env()
            sample = bench.measure(bench.client_cmd(command, path, key), env, timeout=timeout)
            if bench.object_sizes(key).get(key) != size:
                raise RuntimeError(f"P6 {client}: the object is missing or has the wrong size")
            bench.delete_prefix(key)
            samples[client].append(sample)
            return sample.measured.maxrss_mib

        figures = interleaved(rounds, {name: functools.partial(one, name) for name in samples})
    rows = [
        row(
            bench_id="P6",
            what=f"peak RSS uploading a {size / GiB:g} GiB file",
            unit="MiB",
            ours=median(figures["ours"]),
            peer=median(figures["boto3"]),
            peer_name=PEER,
            goal_op="<=",
            goal=GOAL_MIB,
            goal_on="ours",
            ours_runs=figures["ours"],
            peer_runs=figures["boto3"],
        )
    ]
    return result(
        "P6",
        TITLE,
        rows,
        quick=quick,
        started=started,
        params={"size_mib": size // MiB, "rounds": rounds},
        details={name: summary(v) for name, v in samples.items()},
    )


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return measure(size=128 * MiB)
    return measure(size=2 * GiB, quick=False)
