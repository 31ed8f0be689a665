"""One transfer: a small object in one PutObject, anything else through s3transfer, and what
follows a failure (the lost-answer check of a no-overwrite write, the multipart clean-up)."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskcreds.errors import TaskCredsError
from taskcreds.upload import _crt_multipart
from taskcreds.upload._confirm import own_write_after_lost_answer
from taskcreds.upload._crt import headers_are_sendable, is_redirect
from taskcreds.upload._crt_multipart import PartSource
from taskcreds.upload.options import Progress
from taskcreds.upload.results import UploadResult, result_from

if TYPE_CHECKING:
    from taskcreds.upload.uploader import Uploader

__all__ = ["ByteBudget", "ByteCounter", "read_at_most", "send_locked"]


def send_locked(
    uploader: Uploader,
    source: str | IO[bytes],
    key: str,
    size: int | None,
    *,
    overwrite: bool,
    extra_args: dict[str, Any],
    counter: ByteCounter,
) -> UploadResult:
    algorithm = str(extra_args["ChecksumAlgorithm"])
    uploader._ledger.forget(key)
    try:
        if size is not None and size < uploader._multipart_threshold:
            response = _put_small(
                uploader, source, key, size, extra_args=extra_args, overwrite=overwrite
            )
            counter.add(size)
        else:
            _put_in_parts(
                uploader,
                source,
                key,
                size,
                overwrite=overwrite,
                extra_args=extra_args,
                counter=counter,
            )
            response = uploader._ledger.take_response(key)
    except Exception as exc:
        own = None
        try:
            if not overwrite:
                own = own_write_after_lost_answer(
                    uploader._client(overwrite=True),
                    uploader._ledger,
                    bucket=uploader.bucket,
                    key=key,
                    error=exc,
                    size=size,
                    extra_args=extra_args,
                    translate=uploader._translated,
                )
        finally:
            if own is None:
                uploader._clean_up_after_failure(key)
        if own is not None:
            uploader._ledger.forget(key)
            if size is not None and size < uploader._multipart_threshold:
                counter.add(size)  # sent in one request: the progress callback gets it now
            return own
        if isinstance(exc, TaskCredsError):
            raise
        raise uploader._translated(exc, key) from exc
    except BaseException:
        uploader._clean_up_after_failure(key)
        raise
    multipart = uploader._ledger.was_multipart(key)
    uploader._ledger.forget(key)
    return result_from(
        response,
        bucket=uploader.bucket,
        key=key,
        size=size if size is not None else counter.total,
        algorithm=algorithm,
        multipart=multipart,
    )


def _put_small(
    uploader: Uploader,
    source: str | IO[bytes],
    key: str,
    size: int,
    *,
    extra_args: dict[str, Any],
    overwrite: bool,
) -> Mapping[str, Any]:
    """One PutObject, without s3transfer's task machinery: for small objects that machinery
    costs more CPU than the request itself (benchmark P5). Through the CRT where the uploader
    uses it (:mod:`._crt`), else botocore."""
    # The CRT for writes that may replace an object; a no-overwrite write keeps botocore, where
    # every attempt of a retried conditional write is seen (see _crt).
    engine = uploader._clients.crt() if overwrite and headers_are_sendable(extra_args) else None
    if engine is not None:
        # Bodies are held in memory while they are sent: at most part_size x max_concurrency
        # bytes of them at once, as for the parts of multipart uploads.
        with uploader._small_bodies.hold(size):
            data = read_at_most(source, size)
            if data is not None:
                try:
                    return engine.put(
                        bucket=uploader.bucket, key=key, body=data, extra_args=extra_args
                    )
                except ClientError as exc:
                    if not is_redirect(exc):
                        raise
                    # The bucket is in another region: botocore's redirector follows that.
            if not isinstance(source, str):
                source.seek(0)
    client = uploader._client(overwrite=overwrite)
    if isinstance(source, str):
        with open(source, "rb") as body:
            return client.put_object(Bucket=uploader.bucket, Key=key, Body=body, **extra_args)
    return client.put_object(Bucket=uploader.bucket, Key=key, Body=source, **extra_args)


def _put_in_parts(
    uploader: Uploader,
    source: str | IO[bytes],
    key: str,
    size: int | None,
    *,
    overwrite: bool,
    extra_args: dict[str, Any],
    counter: ByteCounter,
) -> None:
    """A multipart upload: its parts through the CRT where the uploader uses it and the size is
    known (a file, or bytes in memory), else s3transfer (streams, read one part at a time)."""
    engine = uploader._clients.crt()
    if engine is not None and size is not None:
        with _part_source(source, size) as parts:
            if parts is not None:
                _crt_multipart.upload(
                    engine,
                    uploader._client(overwrite=overwrite),
                    bucket=uploader.bucket,
                    key=key,
                    source=parts,
                    part_size=uploader._part_size,
                    concurrency=_crt_multipart.parts_in_flight(
                        uploader._part_size, uploader._max_concurrency
                    ),
                    extra_args=extra_args,
                    progress=counter.add,
                )
                return
    subscribers: list[Any] = [counter]  # s3transfer calls the on_<event> methods it has
    uploader._clients.manager(overwrite=overwrite).upload(
        source, uploader.bucket, key, extra_args, subscribers
    ).result()


@contextlib.contextmanager
def _part_source(source: str | IO[bytes], size: int) -> Iterator[PartSource | None]:
    """The parts of a file or of bytes in memory; None for any other stream."""
    if isinstance(source, str):
        descriptor = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            yield PartSource.of_file(descriptor, size)
        finally:
            os.close(descriptor)
    elif isinstance(source, io.BytesIO) and source.tell() == 0:
        with source.getbuffer() as view:
            yield PartSource.of_buffer(view[:size])
    else:
        yield None


def read_at_most(source: str | int | IO[bytes], size: int) -> bytes | None:
    """The body of a file (its name or descriptor) or stream, or None when it is longer than
    ``size`` (a file that grew since it was measured: botocore streams it instead of this path
    holding it all)."""
    if isinstance(source, int):
        return _read_descriptor(source, size)
    if isinstance(source, str):
        with open(source, "rb") as handle:
            data = handle.read(size + 1)
    else:
        data = source.read(size + 1)
    return data if len(data) <= size else None


def _read_descriptor(descriptor: int, size: int) -> bytes | None:
    # os.read straight from the descriptor: a buffered file object around it costs more than
    # reading a small file does.
    chunks = []
    total = 0
    while chunk := os.read(descriptor, size + 1 - total):
        chunks.append(chunk)
        total += len(chunk)
        if total > size:
            return None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ByteBudget:
    """At most ``limit`` bytes held at once by the threads that :meth:`hold` them (one holder
    may always go ahead alone, whatever its size)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, count: int) -> Iterator[None]:
        with self._changed:
            while self._used and self._used + count > self.limit:
                self._changed.wait()
            self._used += count
        try:
            yield
        finally:
            with self._changed:
                self._used -= count
                self._changed.notify_all()


class ByteCounter:
    """An s3transfer subscriber (s3transfer calls the ``on_<event>`` methods a subscriber has,
    so s3transfer is imported only by the uploads that use it) that totals bytes sent and
    forwards them to a callback."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self.total = 0

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self.add(bytes_transferred)

    def add(self, count: int) -> None:
        with self._lock:
            self.total += count
        if self._progress is not None:
            self._progress(count)
