"""The credentials cache for asyncio: the sync provider's one policy, never blocking the loop.

:class:`AsyncCredentialProvider` holds a :class:`~taskcreds.CredentialProvider` and adds
nothing to its policy (windows, single flight, stale-on-error, jitter, typed errors): it only
decides where each call runs.

- A fresh set (the common case) is returned on the loop, from the same lock-free tuple the sync
  fast path reads.
- In the advisory window the cached set is returned at once and one refresh is started in the
  provider's worker thread; nobody waits for it.
- Otherwise (no set yet, the mandatory window, expired) the callers on one loop await one
  shared fetch in that thread: 10,000 coroutines calling ``get()`` during a refresh cause one
  upstream request. A waiter that is cancelled does not cancel the shared fetch, and when it
  ends the waiters are woken a few hundred per turn of the loop, so the loop keeps ticking.

The fetch itself (requests, its tenacity retries and their sleeps, the provider's lock) runs in
one worker thread per provider, never in the loop's default executor: an HTTP client of its own
for the loop would be a second implementation of the fetch, its retries and its checks (and a
dependency); the endpoint is a loopback or link-local call made minutes apart, for which a
thread costs nothing that matters.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from taskcreds.credentials import Credentials
from taskcreds.endpoint import Endpoint
from taskcreds.fetch import DEFAULT_DEADLINE
from taskcreds.provider import CredentialProvider
from taskcreds.sources import CredentialSource
from taskcreds.telemetry import EventListener, ProviderStats

__all__ = ["AsyncCredentialProvider"]

_T = TypeVar("_T")

#: Waiters woken per turn of the loop when a shared fetch ends.
WAKE_BATCH = 256


class AsyncCredentialProvider:
    """Caches credentials from the container endpoint (or any source) for asyncio code.

    Takes the arguments of :class:`~taskcreds.CredentialProvider` (``environ``,
    ``allowed_hosts``, ``timeout``, ``prefetch``, ``on_event``, ``schedule`` and its injectable
    clocks, session, resolver, fetcher and jitter); :meth:`from_source` and :meth:`wrap` make
    one around any source or an existing provider. ``await get()``, ``await refresh()``,
    ``stats()``, ``endpoint``; ``async with`` / ``await aclose()``.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        allowed_hosts: Iterable[str] = (),
        timeout: float = DEFAULT_DEADLINE,
        prefetch: bool = False,
        on_event: EventListener | None = None,
        **injected: Any,
    ) -> None:
        self._setup(
            CredentialProvider(
                environ,
                allowed_hosts=allowed_hosts,
                timeout=timeout,
                prefetch=prefetch,
                on_event=on_event,
                **injected,
            )
        )

    @classmethod
    def from_source(cls, source: CredentialSource, **options: Any) -> AsyncCredentialProvider:
        """One that caches ``source``; ``options`` are those of
        :meth:`CredentialProvider.from_source <taskcreds.CredentialProvider.from_source>`."""
        return cls.wrap(CredentialProvider.from_source(source, **options))

    @classmethod
    def wrap(cls, provider: CredentialProvider) -> AsyncCredentialProvider:
        """One that serves ``provider``'s cache (shared with its sync callers: one policy, one
        set, one fetch at a time for both)."""
        wrapped = cls.__new__(cls)
        wrapped._setup(provider)
        return wrapped

    def _setup(self, provider: CredentialProvider) -> None:
        self._provider = provider
        #: The one thread that fetches, started now: starting a thread in the first get()
        #: would hold that caller's loop for milliseconds (made again after aclose()).
        self._worker: ThreadPoolExecutor | None = None
        self._thread().submit(_started)
        #: The fetch each loop's callers share, per kind ("get" or "refresh").
        self._flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Flight]] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def provider(self) -> CredentialProvider:
        """The sync provider behind this one (for :func:`taskcreds.aio.session`, an
        :class:`~taskcreds.Uploader`...)."""
        return self._provider

    @property
    def endpoint(self) -> Endpoint:
        """Where credentials come from (see :attr:`CredentialProvider.endpoint`)."""
        return self._provider.endpoint

    def stats(self) -> ProviderStats:
        """The provider's counters (see :meth:`CredentialProvider.stats`); takes no lock."""
        return self._provider.stats()

    def __repr__(self) -> str:
        return f"Async{self._provider!r}"

    async def get(self) -> Credentials:
        """The current credentials; waits (without blocking the loop) only when there is no
        usable set."""
        credentials, refresh_due = self._provider._without_waiting()
        if credentials is not None:
            if refresh_due:
                self._flight("get", self._provider.get)  # advisory: in the background
            return credentials
        return await self._flight("get", self._provider.get).join()

    async def refresh(self) -> Credentials:
        """Fetch a new set now; callers on this loop meanwhile share it."""
        return await self._flight("refresh", self._provider.refresh).join()

    async def aclose(self) -> None:
        """Stop the prefetch thread and the worker thread; the cached set stays usable, and a
        later call that must fetch starts a worker again (as the sync provider's callers
        refresh it after close())."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread(), self._provider.close)
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=False)

    async def __aenter__(self) -> AsyncCredentialProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _flight(self, kind: str, call: Callable[[], Credentials]) -> _Flight:
        """The fetch of this kind in flight for the running loop, started if there is none."""
        loop = asyncio.get_running_loop()
        flights = self._flights.setdefault(loop, {})
        flight = flights.get(kind)
        if flight is None or flight.fetch.done():
            flight = flights[kind] = _Flight(loop, loop.run_in_executor(self._thread(), call))
        return flight

    def _thread(self) -> ThreadPoolExecutor:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="taskcreds-aio")
        return self._worker


def _started() -> None:
    """Run once in a new worker thread, so that it exists before anyone waits for it."""


class _Flight:
    """One fetch in the worker thread and the coroutines waiting for it.

    Each waiter awaits a future of its own (cancelling it cancels nothing else). When the fetch
    ends they are woken :data:`WAKE_BATCH` at a time, one batch per turn of the loop: 10,000
    waiters woken in one turn would hold the loop for tens of milliseconds.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fetch: asyncio.Future[Credentials]) -> None:
        self._loop = loop
        self.fetch = fetch
        self._waiters: list[asyncio.Future[Credentials]] = []
        fetch.add_done_callback(self._ended)

    def join(self) -> asyncio.Future[Credentials]:
        waiter: asyncio.Future[Credentials] = self._loop.create_future()
        self._waiters.append(waiter)
        return waiter

    def _ended(self, fetch: asyncio.Future[Credentials]) -> None:
        # Retrieved here, so that a background refresh nobody awaits logs nothing.
        error = None if fetch.cancelled() else fetch.exception()
        self._wake(0, error)

    def _wake(self, start: int, error: BaseException | None) -> None:
        fetch = self.fetch
        for waiter in self._waiters[start : start + WAKE_BATCH]:
            if waiter.done():  # its caller was cancelled
                continue
            if fetch.cancelled():
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(fetch.result())
        if start + WAKE_BATCH < len(self._waiters):
            self._loop.call_soon(self._wake, start + WAKE_BATCH, error)
