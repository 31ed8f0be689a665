"""The small files of one ``upload_dir`` sent through the CRT from the caller's thread.

A thread per file costs more than the file: with 64 threads waiting on 64 requests, Python spends
its time switching between them and waking them (benchmark P5). Here the caller's thread reads
each file (through the descriptor :meth:`_Run.open_listed` checked against the listing), starts
its PutObject on the CRT and goes on to the next one; the CRT's threads only put each ended
request in a queue, which the same thread empties. Up to :data:`IN_FLIGHT` requests (or the
uploader's ``max_concurrency``, if it is more) are in flight, their bodies within the uploader's
byte budget.

Each file is what ``upload_one`` would have sent: the same options, the SHA-256 in its metadata,
its checksum in the signed header, an expired set refreshed once and the request sent again,
errors through the uploader's one table. A file this lane cannot send (a redirect to another
region, one that grew since it was listed, options its headers cannot carry) is handed back to
the caller's thread pool, which sends it as any other.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskcreds.errors import TaskCredsError
from taskcreds.upload._checksums import body_checksum
from taskcreds.upload._crt import (
    CrtPut,
    Sent,
    UploadTransportError,
    header_list,
    headers_are_sendable,
    is_redirect,
)
from taskcreds.upload._transfer import read_at_most
from taskcreds.upload.options import SHA256_METADATA, UploadOptions, guess_type
from taskcreds.upload.results import FailedFile, UploadResult, result_from

if TYPE_CHECKING:
    from taskcreds.upload._directory import Listed
    from taskcreds.upload._tree import Tree
    from taskcreds.upload.uploader import Uploader

__all__ = ["IN_FLIGHT", "SmallFiles"]

#: Requests in flight at once, at least: an 8 KiB PutObject is nearly all waiting.
IN_FLIGHT = 64
#: How often (seconds) the requests in flight are checked against their deadlines.
DEADLINE_SCAN = 1.0

#: What the lane reports for file ``index``: its outcome, or None when it hands it back.
Settle = Callable[[int, "UploadResult | FailedFile | None"], None]


@dataclass
class _File:
    index: int
    item: Listed
    body: bytes
    headers: list[tuple[str, str]]
    sent: Sent | None = None
    due: float = math.inf
    resent: bool = False
    timed_out: bool = False


class SmallFiles:
    """Sends files through ``engine``; :meth:`send` takes them one by one, :meth:`wait_one`
    settles the next that ended, :meth:`drain` the rest."""

    def __init__(
        self,
        uploader: Uploader,
        engine: CrtPut,
        *,
        tree: Tree,
        open_listed: Callable[[Tree, Listed], int],
        digests: Mapping[str, str],
        options: UploadOptions,
        settle: Settle,
        ended: queue.SimpleQueue[Any],
    ) -> None:
        self._uploader = uploader
        self._engine = engine
        self._tree = tree
        self._open_listed = open_listed
        self._digests = digests
        self._options = options
        # Everything but the content type and the SHA-256 is the same for every file.
        self._common = options.extra_args(uploader.checksum_algorithm)
        self._common.pop("ContentType", None)
        self._algorithm = str(self._common["ChecksumAlgorithm"])
        self._settle = settle
        #: Shared with the caller's thread pool: (this lane, the file) for each request ended.
        self._ended = ended
        self._in_flight: dict[int, _File] = {}
        self._bytes = 0
        self._next_scan = 0.0
        self._byte_limit = uploader._small_bodies.limit
        self._most_in_flight = max(IN_FLIGHT, uploader._max_concurrency)

    def fits(self, item: Listed) -> bool:
        """Whether ``item`` is small enough for this lane (one PutObject)."""
        return item.size < self._uploader._multipart_threshold

    @property
    def busy(self) -> bool:
        """Whether another file must wait for one in flight to end."""
        return len(self._in_flight) >= self._most_in_flight or (
            bool(self._in_flight) and self._bytes >= self._byte_limit
        )

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def send(self, index: int, item: Listed) -> bool:
        """Read ``item`` and start its PutObject; False when it is not this lane's to send
        (the caller's pool sends it). A file that cannot be read or signed is settled failed."""
        try:
            file = self._prepared(index, item)
        except (OSError, TaskCredsError) as exc:  # vanished, unreadable, swapped: it alone
            self._settle(index, _failed(item, exc))
            return True
        if file is None:
            return False
        return self._start(file)

    def settle_ended(self, file: _File) -> None:
        """Settle a file whose request ended (or send it again, or hand it back)."""
        del self._in_flight[file.index]
        self._bytes -= len(file.body)
        assert file.sent is not None
        try:
            answer = file.sent.result()
        except (ClientError, UploadTransportError) as exc:
            self._after_error(file, exc)
            return
        result = result_from(
            answer,
            bucket=self._uploader.bucket,
            key=file.item.key,
            size=len(file.body),
            algorithm=self._algorithm,
            multipart=False,
        )
        if self._options.progress is not None:
            self._options.progress(len(file.body))
        self._settle(file.index, _with_path(result, file.item))

    def cancel_overdue(self) -> None:
        """Cancel the requests past their deadline (each then ends, failed, through the
        queue). Scans at most once per :data:`DEADLINE_SCAN` seconds: deadlines are minutes."""
        now = time.monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + DEADLINE_SCAN
        for file in self._in_flight.values():
            if file.due <= now and file.sent is not None:
                file.due = math.inf
                file.timed_out = True
                file.sent.cancel()

    def cancel_all(self) -> None:
        """Cancel every request in flight and wait until the CRT has let go of each (its
        entry in the queue): nothing of this lane runs after ``upload_dir`` returns."""
        for file in self._in_flight.values():
            if file.sent is not None:
                file.sent.cancel()
        while self._in_flight:
            entry = self._ended.get()
            if entry[0] is self:
                self._in_flight.pop(entry[1].index, None)

    # -- one file ------------------------------------------------------------------------------

    def _prepared(self, index: int, item: Listed) -> _File | None:
        with os.fdopen(self._open_listed(self._tree, item), "rb") as handle:
            body = read_at_most(handle, item.size)
        if body is None:
            return None  # grew since it was listed: streamed by the pool's path
        digest = self._digests.get(item.key) or hashlib.sha256(body).hexdigest()
        extra = dict(self._common)
        extra["ContentType"] = self._options.content_type or guess_type(item.path.name)
        extra["Metadata"] = {**self._common.get("Metadata", {}), SHA256_METADATA: digest}
        if not headers_are_sendable(extra):
            return None
        checksum = body_checksum(body, self._algorithm)
        return _File(index, item, body, header_list(extra, self._algorithm, checksum, len(body)))

    def _start(self, file: _File) -> bool:
        try:
            file.sent = self._engine.submit(
                self._uploader.bucket,
                file.item.key,
                "",
                io.BytesIO(file.body),
                file.headers,
                operation="PutObject",
                length=len(file.body),
                on_done=lambda: self._ended.put((self, file)),
                waitable=False,
            )
        except TaskCredsError as exc:  # no credentials to sign with
            self._settle(file.index, _failed(file.item, exc))
            return True
        file.due = time.monotonic() + file.sent.deadline
        self._in_flight[file.index] = file
        self._bytes += len(file.body)
        return True

    def _after_error(self, file: _File, error: Exception) -> None:
        if file.timed_out:
            assert file.sent is not None
            error = file.sent.timed_out()
        elif isinstance(error, ClientError):
            if is_redirect(error):
                self._settle(file.index, None)  # the pool's path follows the redirect
                return
            if not file.resent and self._engine.refreshed_after(error, file.item.key):
                file.resent = True
                self._start(file)
                return
        translated = self._uploader._translated(error, file.item.key)
        self._settle(file.index, _failed(file.item, translated))


def _with_path(result: UploadResult, item: Listed) -> UploadResult:
    return replace(result, path=str(item.path))


def _failed(item: Listed, error: TaskCredsError | OSError) -> FailedFile:
    return FailedFile(str(item.path), item.key, str(error), error)
