"""The prefetch worker (taskcreds/_prefetch.py) on its own: it refreshes when due, backs off
after a failure and hands over to callers, and stops for good."""

from __future__ import annotations

import threading
import time

from taskcreds._prefetch import PrefetchWorker


def test_refreshes_when_due_and_stops() -> None:
    calls = threading.Semaphore(0)
    due = [time.monotonic()]

    def refresh() -> None:
        due[0] = time.monotonic() + 3600  # the next refresh is far away
        calls.release()

    worker = PrefetchWorker(due=lambda: due[0], refresh=refresh, monotonic=time.monotonic)
    worker.ensure_running()
    assert calls.acquire(timeout=5)
    assert worker.running
    worker.stop()
    worker.join(5)
    assert not worker.running
    worker.ensure_running()  # a stopped worker is not restarted
    assert not worker.running


def test_a_failure_marks_it_unhealthy_until_it_succeeds() -> None:
    attempts: list[bool] = []
    succeeded = threading.Event()
    unhealthy_seen = threading.Event()

    def refresh() -> None:
        if not attempts:
            attempts.append(False)
            raise RuntimeError("upstream down")
        if not worker.healthy:
            unhealthy_seen.set()
        attempts.append(True)
        succeeded.set()
        worker.stop()

    worker = PrefetchWorker(due=lambda: None, refresh=refresh, monotonic=time.monotonic)
    worker.ensure_running()
    assert succeeded.wait(10)  # retried after the failure (backoff at most 1 s the first time)
    worker.join(5)
    assert attempts == [False, True]
    assert unhealthy_seen.is_set()  # callers were refreshing while it failed


def test_after_fork_nothing_runs_and_callers_refresh() -> None:
    worker = PrefetchWorker(due=lambda: None, refresh=lambda: None, monotonic=time.monotonic)
    worker.reset_after_fork()
    assert not worker.running
    assert not worker.healthy
