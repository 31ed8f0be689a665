"""Load for the broker e2e test: ``python _broker_fanout.py --processes N --threads T ...``.

Starts N worker processes (this file with ``--worker``), each running T threads of *plain
botocore* (``botocore.session.Session().get_credentials()``, not taskcreds) that ask for the
credentials, pause, and repeat until the duration has passed. Each call checks that the set it
holds is unexpired. Prints one JSON line with the totals.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone


def worker(threads: int, duration: float, pause: float, start_at: float) -> dict[str, object]:
    import botocore.session

    credentials = botocore.session.Session().get_credentials()
    if credentials is None:
        raise SystemExit("botocore found no credentials")
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    keys: set[str] = set()
    min_left = [float("inf")]
    while time.time() < start_at:
        time.sleep(0.01)
    end = start_at + duration

    def loop() -> None:
        done: Counter[str] = Counter()
        seen: set[str] = set()
        lowest = float("inf")
        while time.time() < end:
            try:
                frozen = credentials.get_frozen_credentials()
                expiry = credentials._expiry_time  # type: ignore[attr-defined]
                left = (expiry - datetime.now(timezone.utc)).total_seconds()
                lowest = min(lowest, left)
                done["expired" if left <= 0 else "ok"] += 1
                seen.add(frozen.access_key)
            except Exception as exc:
                done[type(exc).__name__] += 1
            time.sleep(pause)
        with lock:
            counts.update(done)
            keys.update(seen)
            min_left[0] = min(min_left[0], lowest)

    running = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return {"calls": dict(counts), "keys": sorted(keys), "min_left": min_left[0]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--pause", type=float, default=0.015)
    parser.add_argument("--worker", type=float, default=None, help="(internal) start time")
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.threads, args.duration, args.pause, args.worker)))
        return 0
    start_at = time.time() + 5.0  # every worker imported botocore by then
    command = [
        sys.executable,
        __file__,
        "--threads",
        str(args.threads),
        "--duration",
        str(args.duration),
        "--pause",
        str(args.pause),
        "--worker",
        str(start_at),
    ]
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(args.processes)
    ]
    calls: Counter[str] = Counter()
    keys: set[str] = set()
    min_left = float("inf")
    failed = 0
    for process in workers:
        out, _ = process.communicate(timeout=args.duration + 60)
        if process.returncode != 0:
            failed += 1
            continue
        document = json.loads(out)
        calls.update(document["calls"])
        keys.update(document["keys"])
        min_left = min(min_left, document["min_left"])
    print(
        json.dumps(
            {
                "calls": dict(calls),
                "sets": len(keys),
                "min_left": min_left,
                "failed_workers": failed,
                "started": start_at,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
