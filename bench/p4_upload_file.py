"""P4: one big file to a local SeaweedFS: taskcreds' Uploader, boto3 ``upload_file``, ``aws s3 cp``.

Every upload is a fresh child process (``bench._s3``), the three interleaved round by round; the
object is deleted after each. Throughput is the file's size over the child's whole wall time
(start-up included: the aws CLI cannot be timed from inside) and CPU-seconds per GiB are the
child's own user+system time. All three use their defaults: 8 MiB parts, 10 at a time; checksums
are CRC32C for ours and botocore's default (CRC32) for the peers.
Goal: throughput ≥ 1.0× and CPU-seconds per GiB ≤ 0.9× each peer's.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from bench._common import (
    GiB,
    MiB,
    aws_cli,
    interleaved,
    make_big_file,
    median,
    result,
    row,
    s5cmd,
    temp_dir,
)
from bench._s3 import S3Bench, Sample, s3_bench, summary

if TYPE_CHECKING:
    from taskcreds_demo.seaweed import SeaweedFS

TITLE = "one big file to S3 (SeaweedFS)"
PEERS = {
    "boto3": "boto3 upload_file (default TransferConfig)",
    "cli": "aws s3 cp",
    "s5cmd": "s5cmd cp (Go)",
}
#: The CPU goal against each peer: 0.9× the Python peers, at most s5cmd's.
CPU_GOALS = {"boto3": 0.9, "cli": 0.9, "s5cmd": 1.0}


def _upload(bench: S3Bench, client: str, path: str, key: str, timeout: float) -> Sample:
    if client == "ours":
        cmd, env = bench.client_cmd("ours-file", path, key), bench.ours_env()
    elif client == "boto3":
        cmd, env = bench.client_cmd("boto3-file", path, key), bench.peer_env()
    elif client == "s5cmd":
        cmd = [s5cmd(), "--endpoint-url", bench.endpoint, "cp", path, f"s3://{bench.bucket}/{key}"]
        env = bench.peer_env()
    else:
        cmd = [
            aws_cli(), "s3", "cp", path, f"s3://{bench.bucket}/{key}",
            "--endpoint-url", bench.endpoint, "--only-show-errors", "--no-progress",
        ]  # fmt: skip
        env = bench.peer_env()
    sample = bench.measure(cmd, env, timeout=timeout)
    sizes = bench.object_sizes(key)
    if sizes.get(key) is None:
        raise RuntimeError(f"P4 {client}: s3://{bench.bucket}/{key} is missing after the upload")
    bench.delete_prefix(key)
    return sample


def measure(
    *, size: int, rounds: int, seaweed: SeaweedFS | None = None, quick: bool = True
) -> dict[str, Any]:
    started = time.monotonic()
    samples: dict[str, list[Sample]] = {"ours": [], "boto3": [], "cli": [], "s5cmd": []}
    timeout = 120 + size / MiB  # at ≥ 1 MiB/s, or something is wrong
    with temp_dir("p4") as work, s3_bench(seaweed) as bench:
        path = str(make_big_file(work / "big.bin", size))

        def one(client: str) -> float:
            key = f"bench/p4/{client}-{len(samples[client])}.bin"
            sample = _upload(bench, client, path, key, timeout)
            samples[client].append(sample)
            return sample.measured.wall

        interleaved(rounds, {name: functools.partial(one, name) for name in samples})
    gib = size / GiB
    throughput = {n: [size / MiB / s.measured.wall for s in v] for n, v in samples.items()}
    cpu_per_gib = {n: [s.measured.cpu / gib for s in v] for n, v in samples.items()}
    rows = []
    for peer, peer_name in PEERS.items():
        rows.append(
            row(
                bench_id="P4",
                what=f"throughput, {size // MiB} MiB file vs {peer}",
                unit="MiB/s",
                ours=median(throughput["ours"]),
                peer=median(throughput[peer]),
                peer_name=peer_name,
                goal_op=">=",
                goal=1.0,
                ours_runs=throughput["ours"],
                peer_runs=throughput[peer],
            )
        )
    for peer, peer_name in PEERS.items():
        rows.append(
            row(
                bench_id="P4",
                what=f"client CPU-seconds per GiB vs {peer}",
                unit="CPU-s/GiB",
                ours=median(cpu_per_gib["ours"]),
                peer=median(cpu_per_gib[peer]),
                peer_name=peer_name,
                goal_op="<=",
                goal=CPU_GOALS[peer],
                ours_runs=cpu_per_gib["ours"],
                peer_runs=cpu_per_gib[peer],
            )
        )
    return result(
        "P4",
        TITLE,
        rows,
        quick=quick,
        started=started,
        params={"size_mib": size // MiB, "rounds": rounds},
        details={name: summary(v) for name, v in samples.items()},
    )


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return measure(size=64 * MiB, rounds=2)
    return measure(size=1 * GiB, rounds=5, quick=False)
