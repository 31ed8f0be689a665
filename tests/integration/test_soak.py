"""Concurrency against the real local agent: many threads while the agent rotates every second."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from taskcreds import CredentialProvider, Credentials
from taskcreds.local import AgentServer, RotatingSource

from .conftest import ROLE_ARN, full_uri_environ

THREADS = 64
SECONDS = 30.0


def test_64_threads_while_the_agent_rotates_every_second_for_30_s() -> None:
    # The agent replaces a set once half its lifetime has passed: a new set every second.
    source = RotatingSource(role_arn=ROLE_ARN, lifetime=2.0)
    minted: dict[str, Credentials] = {}
    minted_lock = threading.Lock()

    def recording_source() -> Credentials:
        creds = source()
        with minted_lock:
            minted[creds.access_key_id] = creds
        return creds

    problems: list[str] = []
    calls = [0] * THREADS
    stop = threading.Event()
    with (
        AgentServer(recording_source) as server,
        CredentialProvider(full_uri_environ(server.full_uri), prefetch=True) as provider,
    ):
        provider.get()
        start = threading.Barrier(THREADS + 1)
        wall_minus_monotonic = time.time() - time.monotonic()

        def reader(index: int) -> None:
            start.wait()
            while not stop.is_set():
                # The promise is a set valid when get() was called; checked against a time taken
                # after it returns, a set expiring that very moment would be a false alarm.
                asked = datetime.now(timezone.utc)
                try:
                    creds = provider.get()
                except Exception as exc:
                    problems.append(f"get() raised {type(exc).__name__}: {exc}")
                    return
                # The provider counts a set's life on the monotonic clock from when it arrived.
                # Some VMs slew the wall clock ahead of it (5 ms a second was measured here):
                # what the wall clock gained since the start is not the provider's to see.
                gained = (time.time() - time.monotonic()) - wall_minus_monotonic
                if creds.expiration <= asked - timedelta(seconds=max(gained, 0.0)):
                    problems.append(f"expired set handed out ({creds.expiration} <= {asked})")
                with minted_lock:
                    original = minted.get(creds.access_key_id)
                if original is None or (original.secret_access_key, original.token) != (
                    creds.secret_access_key,
                    creds.token,
                ):
                    problems.append("a set mixing two sets' fields was handed out")
                calls[index] += 1
                if problems:
                    return

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        start.wait()
        stop.wait(SECONDS)
        stop.set()
        for thread in threads:
            thread.join(10)
        fetches = server.request_count
    assert problems == []
    assert all(count > 0 for count in calls)
    assert source.minted >= SECONDS * 0.8  # the agent really did rotate about every second
    # One fetch per refresh point, not one per call: millions of calls, a few dozen fetches.
    assert fetches < 4 * SECONDS
    assert sum(calls) > 100 * fetches
