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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskcreds.errors import TaskCredsError
from taskcreds.upload._checksums import body_checksum
from taskcreds.upload._crt import (
    CrtPut,
    Sent,
    UploadTransportError,
    checksum_header,
    fixed_headers,
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

__all__ = ["IN_FLIGHT", "SmallFiles", "lane_headers"]

#: Requests in flight at once, at least: an 8 KiB PutObject is nearly all waiting.
IN_FLIGHT = 64
#: How often (seconds) the requests in flight are checked against their deadlines.
DEADLINE_SCAN = 1.0

#: What the lane reports for file ``index``: its outcome, or None when it hands it back.
Settle = Callable[[int, "UploadResult | FailedFile | None"], None]


@dataclass(slots=True)
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
    """Sends files through ``engine``: :meth:`send` starts them one by one, and the caller
    hands each request that ended (from the shared queue) to :meth:`settle_ended`."""

    def __init__(
        self,
        uploader: Uploader,
        engine: CrtPut,
        *,
        tree: Tree,
        open_listed: Callable[[Tree, Listed], int],
        digests: Mapping[str, str],
        options: UploadOptions,
        headers: LaneHeaders,
        settle: Settle,
        ended: queue.SimpleQueue[Any],
    ) -> None:
        self._uploader = uploader
        self._engine = engine
        self._tree = tree
        self._open_listed = open_listed
        self._digests = digests
        self._options = options
        self._headers = headers
        self._settle = settle
        #: Shared with the caller's thread pool: (this lane, the file's index) per request ended.
        self._ended = ended
        self._in_flight: dict[int, _File] = {}
        self._bytes = 0
        self._next_scan = 0.0
        self._byte_limit = uploader._small_bodies.limit
        self._most_in_flight = max(IN_FLIGHT, uploader._max_concurrency)
        self._refill_at = self._most_in_flight - self._most_in_flight // 4

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
    def has_room(self) -> bool:
        """Whether a quarter of the requests in flight have ended since the lane was
        :attr:`busy` (and the bodies are back within the byte budget): it is refilled in
        batches, because waking the caller's thread for every request that ends costs more CPU
        than the file does (benchmark P5)."""
        return not self._in_flight or (
            len(self._in_flight) <= self._refill_at and self._bytes < self._byte_limit
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
            self._settle(index, item.failed(exc))
            return True
        if file is None:
            return False
        return self._start(file)

    def settle_ended(self, index: int) -> None:
        """Settle file ``index``, whose request ended (or send it again, or hand it back)."""
        file = self._in_flight.pop(index)
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
            algorithm=self._headers.algorithm,
            multipart=False,
            path=file.item.path,
        )
        if self._options.progress is not None:
            self._options.progress(len(file.body))
        self._settle(index, result)

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
                self._in_flight.pop(entry[1], None)

    # -- one file ------------------------------------------------------------------------------

    def _prepared(self, index: int, item: Listed) -> _File | None:
        descriptor = self._open_listed(self._tree, item)
        try:
            body = read_at_most(descriptor, item.size)
        finally:
            os.close(descriptor)
        if body is None:
            return None  # grew since it was listed: streamed by the pool's path
        digest = self._digests.get(item.key) or hashlib.sha256(body).hexdigest()
        headers = self._headers.of(item.name, body, digest)
        if headers is None:
            return None  # a content type its headers cannot carry: botocore's path
        return _File(index, item, body, headers)

    def _start(self, file: _File) -> bool:
        index = file.index
        try:
            file.sent = self._engine.submit(
                self._uploader.bucket,
                file.item.key,
                "",
                io.BytesIO(file.body),
                file.headers,
                operation="PutObject",
                length=len(file.body),
                # The index, not the file: what the CRT holds must not lead back to the request
                # (a cycle through the CRT that the collector cannot see would never be freed).
                on_done=lambda: self._ended.put((self, index)),
                waitable=False,
            )
        except TaskCredsError as exc:  # no credentials to sign with
            self._settle(file.index, file.item.failed(exc))
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
        self._settle(file.index, file.item.failed(translated))


class LaneHeaders:
    """The headers of each file's PutObject: what the options give, the same for every file,
    is made (and checked) once; the content type, the SHA-256 and the checksum per file."""

    def __init__(self, options: UploadOptions, default_algorithm: str) -> None:
        common = options.extra_args(default_algorithm)
        self.algorithm = str(common.pop("ChecksumAlgorithm"))
        self._content_type = common.pop("ContentType", None)
        metadata = dict(common.pop("Metadata", None) or {})
        metadata.pop(SHA256_METADATA, None)  # the file's own SHA-256 replaces it
        if metadata:
            common["Metadata"] = metadata
        self._common = common
        self._fixed = fixed_headers(common)
        self._checksum_header = checksum_header(self.algorithm)
        #: Content type (or None: not sendable) by what of a name decides it (its suffixes).
        self._types: dict[str, str | None] = {}

    @property
    def sendable(self) -> bool:
        """Whether what the options give fits this path (else every file goes to botocore)."""
        probe = {**self._common, "Metadata": {**self._common.get("Metadata", {}), "k": "v"}}
        if self._content_type is not None:
            probe["ContentType"] = self._content_type
        return headers_are_sendable(probe)

    def of(self, name: str, body: bytes, digest: str) -> list[tuple[str, str]] | None:
        """The headers for file ``name`` with these bytes; None when its content type cannot
        be sent on this path."""
        content_type = self._content_type or self._type_of(name)
        if content_type is None:
            return None
        return [
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            *self._fixed,
            (f"x-amz-meta-{SHA256_METADATA}", digest),
            (self._checksum_header, str(body_checksum(body, self.algorithm))),
        ]

    def _type_of(self, name: str) -> str | None:
        if ":" in name:  # a name mimetypes may read as a URL ("data:..."): never cached
            return _sendable_type(guess_type(name))
        stem = name.lstrip(".")  # a leading dot starts no suffix
        dot = stem.find(".")
        # mimetypes looks at the suffixes alone: "x" stands for whatever comes before them.
        suffixes = "x" + stem[dot:] if dot >= 0 else "x"
        if suffixes not in self._types:
            self._types[suffixes] = _sendable_type(guess_type(suffixes))
        return self._types[suffixes]


def _sendable_type(content_type: str) -> str | None:
    return content_type if headers_are_sendable({"ContentType": content_type}) else None


def lane_headers(options: UploadOptions, default_algorithm: str) -> LaneHeaders | None:
    """The lane's headers for these options, or None when they are not for this path."""
    headers = LaneHeaders(options, default_algorithm)
    return headers if headers.sendable else None
