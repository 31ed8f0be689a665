"""The transfer-engine comparison behind taskcreds' choice (docs/performance.md, "Engines").

``python -m bench.engines [--files N] [--big-mib M] [--rounds R] [--pin]``: against one local
SeaweedFS and AppA's STS session, interleaved rounds of N × 8 KiB files (and, with
``--big-mib``, one file of M MiB) through taskcreds' ``Uploader``, s5cmd, the CRT S3 client made
directly (plain, and with CRC32C and If-None-Match) and, when installed, obstore. Prints files/s
(or MiB/s), the client's CPU-seconds per run and the server's CPU per object. With ``--pin``
SeaweedFS runs on the last CPU and the clients on the others, so each client's cost to the
server is measured apart from its own (the server then bounds every client's throughput). Not
part of ``make bench``: obstore is not a dependency, and the figures are for choosing, not for a
goal.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from bench._common import PYTHON, MiB, make_big_file, s5cmd, temp_dir
from bench._s3 import S3Bench, s3_bench
from bench.p5_upload_dir import make_tree

if TYPE_CHECKING:
    from taskcreds_demo.seaweed import SeaweedFS

ENGINES = ("taskcreds", "s5cmd", "crt", "crt-checked", "obstore", "obstore-create")


def _command(
    bench: S3Bench, engine: str, tree: Path, prefix: str
) -> tuple[list[str], dict[str, str]]:
    if engine == "taskcreds":
        return bench.client_cmd("ours-dir", str(tree), prefix), bench.ours_env()
    if engine == "s5cmd":
        target = f"s3://{bench.bucket}/{prefix}/"
        return [
            s5cmd(),
            "--endpoint-url",
            bench.endpoint,
            "cp",
            f"{tree}/",
            target,
        ], bench.peer_env()
    command = [PYTHON, "-m", "bench._engine_clients", engine, str(tree), prefix]
    env = bench.peer_env() | {"CHECKSUM_LOCATION": "header"}
    return [*command, bench.bucket, bench.endpoint], env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engines")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--big-mib", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--pin", action="store_true", help="the server on the last CPU, the clients on the others"
    )
    args = parser.parse_args(argv)
    compare(files=args.files, big_mib=args.big_mib, rounds=args.rounds, pin=args.pin)
    return 0


def compare(
    *,
    files: int,
    big_mib: int,
    rounds: int,
    seaweed: SeaweedFS | None = None,
    only: tuple[str, ...] = ENGINES,
    pin: bool = False,
) -> None:
    """Run the comparison (the engines in ``only``) and print one line per engine and round."""
    engines = [
        name
        for name in only
        if not name.startswith("obstore") or importlib.util.find_spec("obstore") is not None
    ]
    if len(engines) < len(only):
        print("obstore is not installed (pip install obstore): left out")
    with temp_dir("engines") as work, s3_bench(seaweed) as bench:
        if pin:
            print(f"SeaweedFS pinned; clients on CPUs {sorted(bench.pin_server())}")
        tree = make_tree(work / "small", files)
        trees = [("small", tree, files)]
        if big_mib:
            big = work / "big"
            big.mkdir()
            make_big_file(big / "big.bin", big_mib * MiB)
            trees.append(("big", big, 1))
        for label, root, count in trees:
            for round_number in range(rounds):
                for engine in engines:
                    prefix = f"engines/{label}/{engine}-{round_number}"
                    command, env = _command(bench, engine, root, prefix)
                    sample = bench.measure(command, env, timeout=900)
                    stored = len(bench.object_sizes(prefix + "/"))
                    bench.delete_prefix(prefix + "/")
                    rate = (
                        f"{count / sample.measured.wall:7.0f} files/s"
                        if label == "small"
                        else f"{big_mib / sample.measured.wall:7.1f} MiB/s"
                    )
                    print(
                        f"{label} round {round_number} {engine:15} {rate}  client "
                        f"{sample.measured.cpu:5.2f} CPU-s  server {sample.server_cpu:5.2f} CPU-s "
                        f"({sample.server_cpu / count * 1000:5.2f} ms/object)  "
                        f"stored {stored}/{count}",
                        flush=True,
                    )


if __name__ == "__main__":
    raise SystemExit(main())
