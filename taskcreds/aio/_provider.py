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
  upstream request. A waiter that is cancelled does not cancel the shared fetch.

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
        #: The one thread that fetches (made on first use, and again after aclose()).
        self._worker: ThreadPoolExecutor | None = None
        #: The fetch each loop's callers share, per kind ("get" or "refresh").
        self._shared: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Future[Credentials]]
        ] = weakref.WeakKeyDictionary()

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
                self._start("get", self._provider.get)  # advisory: in the background
            return credentials
        return await asyncio.shield(self._start("get", self._provider.get))

    async def refresh(self) -> Credentials:
        """Fetch a new set now; callers on this loop meanwhile share it."""
        return await asyncio.shield(self._start("refresh", self._provider.refresh))

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

    def _start(self, kind: str, call: Callable[[], Credentials]) -> asyncio.Future[Credentials]:
        """The fetch of this kind in flight for the running loop, started if there is none."""
        loop = asyncio.get_running_loop()
        shared = self._shared.setdefault(loop, {})
        future = shared.get(kind)
        if future is None or future.done():
            future = shared[kind] = loop.run_in_executor(self._thread(), call)
            # A background refresh nobody awaits must not log "exception never retrieved".
            future.add_done_callback(_retrieve)
        return future

    def _thread(self) -> ThreadPoolExecutor:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="taskcreds-aio")
        return self._worker


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
