"""The provider's background refresh: one daemon thread that refreshes before callers must.

Kept apart from the cache, as google-auth keeps its ``_refresh_worker`` apart from its
credentials. The worker knows nothing of credentials: it sleeps until ``due()`` (a monotonic
time), calls ``refresh()``, and backs off with tenacity after a failure. While it is *healthy*
the provider lets callers skip the advisory refresh; after a failure it is not, so callers
refresh synchronously until the worker succeeds again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import tenacity

__all__ = ["PrefetchWorker"]

logger = logging.getLogger("taskcreds")

#: Backoff bounds of the thread after failures (full jitter).
_BACKOFF_BASE = 1.0
_BACKOFF_CAP = 60.0


class _Stopped(Exception):
    """The worker was stopped while it slept."""


class PrefetchWorker:
    """Runs ``refresh()`` in a daemon thread whenever ``due()`` (monotonic seconds) is reached."""

    def __init__(
        self,
        *,
        due: Callable[[], float | None],
        refresh: Callable[[], None],
        monotonic: Callable[[], float],
    ) -> None:
        self._due = due
        self._refresh = refresh
        self._monotonic = monotonic
        #: False after a failed refresh, until one succeeds: callers refresh meanwhile.
        self.healthy = True
        self._new_thread_state()

    def _new_thread_state(self) -> None:
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ensure_running(self) -> None:
        """Start the thread unless it runs (or the worker was stopped)."""
        if self._stopped.is_set() or self.running:
            return
        self.healthy = True
        self._thread = threading.Thread(target=self._loop, name="taskcreds-prefetch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Tell the thread to end (it is not restarted); :meth:`join` waits for it."""
        self._stopped.set()
        self.healthy = False

    def join(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def reset_after_fork(self) -> None:
        """In a forked child: no thread runs there yet; callers refresh until one starts."""
        was_stopped = self._stopped.is_set()
        self._new_thread_state()
        if was_stopped:
            self._stopped.set()
        self.healthy = False

    def _loop(self) -> None:
        retrying = tenacity.Retrying(
            # Every failure is retried: only stop() (``_Stopped``) ends the thread.
            retry=tenacity.retry_if_not_exception_type(_Stopped),
            wait=tenacity.wait_random_exponential(multiplier=_BACKOFF_BASE, max=_BACKOFF_CAP),
            sleep=self._sleep,
            before_sleep=self._failed,
        )
        try:
            while True:
                due = self._due()
                self._sleep(max(due - self._monotonic(), 0.0) if due is not None else 0.0)
                retrying(self._refresh)
        except _Stopped:
            return

    def _failed(self, state: tenacity.RetryCallState) -> None:
        # Hand refreshing back to callers until the thread succeeds again.
        self.healthy = False
        exc = state.outcome.exception() if state.outcome is not None else None
        # DEBUG: the provider already logged the failed fetch (WARNING or ERROR) with its fields.
        logger.debug(
            "prefetching credentials failed; retrying in %.1f s: %s", state.upcoming_sleep, exc
        )

    def _sleep(self, seconds: float) -> None:
        if self._stopped.wait(seconds):
            raise _Stopped
