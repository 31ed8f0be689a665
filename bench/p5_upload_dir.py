"""P5: a directory of many small files: ``Uploader.upload_dir`` vs ``aws s3 cp --recursive``, a
boto3 ``put_object`` loop and s5cmd.

The directory holds ``files`` files of 8 KiB (random bytes) in 10 subfolders. Each upload is a
fresh child process, the three interleaved round by round, each round under its own prefix
(deleted afterwards, and the object count checked first). Ours runs with
``skip_unchanged=False``, so it uploads every file as the others do (it still computes the
SHA-256 it stores in each object's metadata). Throughput is files per second of the child's
wall time. Goal: ≥ 1.2× the aws CLI, ≥ 4× the loop, and ≥ 1.0× s5cmd (Go) at no more client
CPU than s5cmd.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import KiB, aws_cli, interleaved, median, result, row, s5cmd, temp_dir
from bench._s3 import S3Bench, Sample, s3_bench, summary

if TYPE_CHECKING:
    from taskcreds_demo.seaweed import SeaweedFS

TITLE = "a directory of small files to S3 (SeaweedFS)"
PEERS = {
    "cli": ("aws s3 cp --recursive", 1.2),
    "loop": ("boto3 put_object loop", 4.0),
    "s5cmd": ("s5cmd cp (Go)", 1.0),
}
FILE_SIZE = 8 * KiB
_FOLDERS = 10


def make_tree(root: Path, files: int) -> Path:
    for index in range(files):
        folder = root / f"d{index % _FOLDERS}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:05d}.bin").write_bytes(os.urandom(FILE_SIZE))
    return root


def _upload(bench: S3Bench, client: str, tree: Path, prefix: str, files: int) -> Sample:
    timeout = 120 + files * 0.2
    if client == "ours":
        cmd, env = bench.client_cmd("ours-dir", str(tree), prefix), bench.ours_env()
    elif client == "loop":
        cmd, env = bench.client_cmd("boto3-loop", str(tree), prefix), bench.peer_env()
    elif client == "s5cmd":
        target = f"s3://{bench.bucket}/{prefix}/"
        cmd = [s5cmd(), "--endpoint-url", bench.endpoint, "cp", f"{tree}/", target]
        env = bench.peer_env()
    else:
        cmd = [
            aws_cli(), "s3", "cp", "--recursive", str(tree), f"s3://{bench.bucket}/{prefix}/",
            "--endpoint-url", bench.endpoint, "--only-show-errors", "--no-progress",
        ]  # fmt: skip
        env = bench.peer_env()
    sample = bench.measure(cmd, env, timeout=timeout)
    stored = bench.object_sizes(prefix + "/")
    if len(stored) != files or set(stored.values()) != {FILE_SIZE}:
        raise RuntimeError(f"P5 {client}: {len(stored)} of {files} objects stored under {prefix}")
    bench.delete_prefix(prefix + "/")
    return sample


def measure(
    *, files: int, rounds: int, seaweed: SeaweedFS | None = None, quick: bool = True
) -> dict[str, Any]:
    started = time.monotonic()
    samples: dict[str, list[Sample]] = {"ours": [], "cli": [], "loop": [], "s5cmd": []}
    with temp_dir("p5") as work, s3_bench(seaweed) as bench:
        tree = make_tree(work / "tree", files)

        def one(client: str) -> float:
            prefix = f"bench/p5/{client}-{len(samples[client])}"
            sample = _upload(bench, client, tree, prefix, files)
            samples[client].append(sample)
            return sample.measured.wall

        interleaved(rounds, {name: functools.partial(one, name) for name in samples})
    rate = {n: [files / s.measured.wall for s in v] for n, v in samples.items()}
    rows = [
        row(
            bench_id="P5",
            what=f"{files} × 8 KiB files vs {peer_name}",
            unit="files/s",
            ours=median(rate["ours"]),
            peer=median(rate[peer]),
            peer_name=peer_name,
            goal_op=">=",
            goal=goal,
            ours_runs=rate["ours"],
            peer_runs=rate[peer],
        )
        for peer, (peer_name, goal) in PEERS.items()
    ]
    cpu = {n: [s.measured.cpu for s in v] for n, v in samples.items()}
    rows.append(
        row(
            bench_id="P5",
            what=f"client CPU-seconds for {files} files vs s5cmd",
            unit="CPU-s",
            ours=median(cpu["ours"]),
            peer=median(cpu["s5cmd"]),
            peer_name=PEERS["s5cmd"][0],
            goal_op="<=",
            goal=1.0,
            ours_runs=cpu["ours"],
            peer_runs=cpu["s5cmd"],
        )
    )
    return result(
        "P5",
        TITLE,
        rows,
        quick=quick,
        started=started,
        params={"files": files, "file_kib": FILE_SIZE // KiB, "rounds": rounds},
        details={name: summary(v) for name, v in samples.items()},
    )


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return measure(files=300, rounds=2)
    return measure(files=5000, rounds=3, quick=False)
