"""Uploads for asyncio: the :class:`~taskcreds.Uploader`, run in a bounded pool of its own.

Every guarantee is the sync uploader's, because it is the sync uploader doing the work (the key
policy, options, results and typed errors; the CRT engine; aborting a failed multipart upload).
What this module adds is where it runs and how it stops:

- each call runs in one of ``max_workers`` threads of the uploader's own pool (never the loop's
  default executor, never unbounded: more calls wait for a thread);
- ``progress`` and ``on_file`` callbacks are called on the loop (``call_soon_threadsafe``), so
  they may touch the loop's objects;
- cancelling the awaiting task stops the upload at its next step (before the next part or
  file) and waits until the uploader has cleaned up: an incomplete multipart upload is aborted
  before ``CancelledError`` reaches the caller. An object whose single request was already sent
  may be stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeVar

from taskcreds.aio._provider import AsyncCredentialProvider
from taskcreds.provider import CredentialProvider
from taskcreds.upload.options import UploadOptions, resolve
from taskcreds.upload.results import DirectoryResult, FileEvent, UploadResult

if TYPE_CHECKING:
    from taskcreds.upload.uploader import Uploader

__all__ = ["DEFAULT_WORKERS", "AsyncUploader", "UploadCancelled"]

#: Uploads (files, objects, directories) that run at once; each has its own concurrency inside.
DEFAULT_WORKERS = 4

_T = TypeVar("_T")


class UploadCancelled(BaseException):
    """Raised in the uploading thread when its task was cancelled: it unwinds the upload as
    Ctrl-C does (multipart uploads aborted). Never seen by the caller, who gets CancelledError."""


class AsyncUploader:
    """Uploads to one bucket, under one prefix, and nowhere else, from asyncio code.

    Takes :class:`~taskcreds.Uploader`'s arguments (``bucket``, ``prefix`` and its keywords);
    ``provider`` may be an :class:`AsyncCredentialProvider` or a sync one. ``max_workers``
    bounds the uploads running at once. Methods mirror the sync ones and return the same
    results: ``await upload_file / upload_bytes / upload_fileobj / upload_dir``.
    """

    def __init__(
        self,
        bucket: str | None = None,
        prefix: str | None = None,
        *,
        provider: AsyncCredentialProvider | CredentialProvider | None = None,
        max_workers: int = DEFAULT_WORKERS,
        **options: Any,
    ) -> None:
        from taskcreds.upload.uploader import Uploader

        if isinstance(provider, AsyncCredentialProvider):
            provider = provider.provider
        self._uploader: Uploader = Uploader(bucket, prefix, provider=provider, **options)
        self._pool = ThreadPoolExecutor(max(1, max_workers), thread_name_prefix="taskcreds-up")

    @property
    def bucket(self) -> str:
        return self._uploader.bucket

    @property
    def prefix(self) -> str:
        return self._uploader.prefix

    @property
    def uploader(self) -> Uploader:
        """The sync uploader doing the work (``key_for``, ``stats()``...)."""
        return self._uploader

    def __repr__(self) -> str:
        return f"Async{self._uploader!r}"

    def key_for(self, relative_key: str) -> str:
        return self._uploader.key_for(relative_key)

    async def upload_file(
        self,
        path: str | os.PathLike[str],
        key: str | None = None,
        options: UploadOptions | None = None,
        **kwargs: Any,
    ) -> UploadResult:
        """See :meth:`Uploader.upload_file <taskcreds.Uploader.upload_file>`."""
        return await self._run(self._uploader.upload_file, path, key, options, kwargs)

    async def upload_bytes(
        self, data: bytes, key: str, options: UploadOptions | None = None, **kwargs: Any
    ) -> UploadResult:
        """See :meth:`Uploader.upload_bytes <taskcreds.Uploader.upload_bytes>`."""
        return await self._run(self._uploader.upload_bytes, data, key, options, kwargs)

    async def upload_fileobj(
        self, fileobj: IO[bytes], key: str, options: UploadOptions | None = None, **kwargs: Any
    ) -> UploadResult:
        """See :meth:`Uploader.upload_fileobj <taskcreds.Uploader.upload_fileobj>` (the file
        object is read in the uploading thread)."""
        return await self._run(self._uploader.upload_fileobj, fileobj, key, options, kwargs)

    async def upload_dir(
        self,
        path: str | os.PathLike[str],
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        skip_unchanged: bool = True,
        dry_run: bool = False,
        on_file: Callable[[FileEvent], object] | None = None,
        keep_going: bool = True,
        options: UploadOptions | None = None,
        **kwargs: Any,
    ) -> DirectoryResult:
        """See :meth:`Uploader.upload_dir <taskcreds.Uploader.upload_dir>`; ``on_file`` is
        called on the loop."""
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        chosen = _with_progress(resolve(options, kwargs), loop, cancelled)

        def report(event: FileEvent) -> None:
            _stop_if(cancelled)
            if on_file is not None:
                loop.call_soon_threadsafe(on_file, event)

        call = functools.partial(
            self._uploader.upload_dir,
            path,
            include=include,
            exclude=exclude,
            skip_unchanged=skip_unchanged,
            dry_run=dry_run,
            on_file=report,
            keep_going=keep_going,
            options=chosen,
        )
        return await self._until_done(loop, call, cancelled)

    async def aclose(self) -> None:
        """Wait for the uploads running, then release the pool, threads and connections."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, functools.partial(self._pool.shutdown, wait=True))
        self._uploader.close()

    async def __aenter__(self) -> AsyncUploader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- running one call ----------------------------------------------------------------------

    async def _run(
        self,
        method: Callable[..., UploadResult],
        source: Any,
        key: str | None,
        options: UploadOptions | None,
        kwargs: dict[str, Any],
    ) -> UploadResult:
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        chosen = _with_progress(resolve(options, kwargs), loop, cancelled)

        def call() -> UploadResult:
            _stop_if(cancelled)  # cancelled while it waited for a thread: nothing sent
            return method(source, key, chosen)

        return await self._until_done(loop, call, cancelled)

    async def _until_done(
        self, loop: asyncio.AbstractEventLoop, call: Callable[[], _T], cancelled: threading.Event
    ) -> _T:
        future = loop.run_in_executor(self._pool, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Stop the upload at its next step and wait for its clean-up (the abort of a
            # multipart upload) before the cancellation goes on.
            cancelled.set()
            with contextlib.suppress(UploadCancelled, Exception):
                await future
            raise


def _with_progress(
    options: UploadOptions, loop: asyncio.AbstractEventLoop, cancelled: threading.Event
) -> UploadOptions:
    """The options with a progress callback that stops a cancelled upload and calls the
    caller's own callback, if any, on the loop."""
    own = options.progress

    def progress(sent: int) -> None:
        _stop_if(cancelled)
        if own is not None:
            loop.call_soon_threadsafe(own, sent)

    return replace(options, progress=progress)


def _stop_if(cancelled: threading.Event) -> None:
    if cancelled.is_set():
        raise UploadCancelled
