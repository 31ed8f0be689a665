"""One P2 load process: ``python -m bench._p2_worker CLIENT --threads N --duration S --out FILE``.

CLIENT is ``ours`` (one ``CredentialProvider`` per process, as ``taskcreds.get_credentials()``
keeps) or ``botocore`` (botocore's ``ContainerProvider`` and the ``RefreshableCredentials`` it
loads). The endpoint comes from ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (a local server on
127.0.0.1). The process prints ``ready`` once set up, waits for a line on stdin, then runs N
threads that each call "get the credentials", pause, and repeat until S seconds have passed. Every
fetch either client makes is recorded (start time, outcome, expiry of the set it got) and written
to FILE as JSON with the call and error counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any


class _Log:
    def __init__(self) -> None:
        self.fetches: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.fetches.append(entry)


def _ours(log: _Log) -> Callable[[], object]:
    from taskcreds import CredentialProvider
    from taskcreds.endpoint import Endpoint
    from taskcreds.fetch import Fetcher, FetchResult

    class CountingFetcher(Fetcher):
        def fetch(self, endpoint: Endpoint) -> FetchResult:
            began = time.time()
            try:
                fetched = super().fetch(endpoint)
            except Exception as exc:
                log.add({"t": began, "ok": False, "error": type(exc).__name__})
                raise
            log.add(
                {
                    "t": began,
                    "ok": True,
                    "key": fetched.credentials.access_key_id,
                    "expiration": fetched.credentials.expiration.timestamp(),
                }
            )
            return fetched

    provider = CredentialProvider(os.environ, fetcher=CountingFetcher())
    return provider.get


def _botocore(log: _Log) -> Callable[[], object]:
    from botocore.credentials import ContainerProvider
    from botocore.utils import ContainerMetadataFetcher, parse_timestamp

    class CountingFetcher(ContainerMetadataFetcher):
        def retrieve_full_uri(
            self, full_url: str, headers: dict[str, str] | None = None
        ) -> dict[str, Any]:
            began = time.time()
            try:
                answer: dict[str, Any] = super().retrieve_full_uri(full_url, headers)
            except Exception as exc:
                log.add({"t": began, "ok": False, "error": type(exc).__name__})
                raise
            expiry = parse_timestamp(answer["Expiration"]).timestamp()
            log.add({"t": began, "ok": True, "key": answer["AccessKeyId"], "expiration": expiry})
            return answer

    holder: dict[str, Any] = {}
    lock = threading.Lock()

    def get() -> object:
        credentials = holder.get("c")
        if credentials is None:
            with lock:  # the first load fetches, as botocore's session does on first use
                credentials = holder.get("c")
                if credentials is None:
                    fetcher: Any = CountingFetcher()  # botocore's stubs name the wrong fetcher type
                    loaded = ContainerProvider(os.environ, fetcher=fetcher).load()
                    if loaded is None:
                        raise RuntimeError("botocore found no container credentials")
                    credentials = holder["c"] = loaded
        return credentials.get_frozen_credentials()

    return get


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._p2_worker")
    parser.add_argument("client", choices=("ours", "botocore"))
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--pause", type=float, default=0.02)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    log = _Log()
    get = _ours(log) if args.client == "ours" else _botocore(log)
    calls = Counter[str]()
    calls_lock = threading.Lock()

    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1  # the parent went away
    started = time.time()
    end = started + args.duration

    def work() -> None:
        done: Counter[str] = Counter()
        while time.time() < end:
            try:
                get()
                done["ok"] += 1
            except Exception as exc:  # noqa: BLE001 - counted: a failed call is the finding
                done[type(exc).__name__] += 1
            time.sleep(args.pause)
        with calls_lock:
            calls.update(done)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(args.threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=args.duration + 60)
    finished = time.time()
    document = {
        "client": args.client,
        "pid": os.getpid(),
        "started": started,
        "finished": finished,
        "calls": dict(calls),
        "fetches": sorted(log.fetches, key=lambda entry: float(entry["t"])),
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(document, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
