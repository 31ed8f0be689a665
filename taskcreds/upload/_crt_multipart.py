"""A multipart upload whose parts the AWS CRT sends: bytes, signing and retries in C.

The upload's three kinds of request are split by what each needs:

- CreateMultipartUpload and CompleteMultipartUpload go through the uploader's botocore client, so
  that its hooks apply unchanged: the ledger records the upload id (a failed upload is aborted by
  it, :mod:`._multipart`) and the completion's answer, ``If-None-Match: *`` is added to the
  completion of a no-overwrite write (with its 409 retries and lost-answer check), and botocore
  retries both. They are two requests per upload.
- Each UploadPart goes through the CRT (:class:`~._crt.CrtPut`): the part is read from the file
  (``os.preadv`` into the CRT's own buffer) or from the caller's bytes, without a copy in Python;
  its checksum is computed here and sent in the signed header, and S3 refuses a part that does
  not match it; its credentials are the provider's current set when the part is sent (a long
  upload signs each part with the set in force). A part S3 refuses as expired is sent again once
  after a refresh; 5xx, ``SlowDown`` and dropped connections are retried by the CRT.

Up to ``concurrency`` parts are in flight; they are started and collected by the caller's thread
(no thread per part). When a part fails, the others are cancelled and the error is raised: the
uploader then aborts the upload. Progress is reported as each part is stored.
"""

from __future__ import annotations

import math
import os
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from taskcreds.upload._checksums import body_checksum
from taskcreds.upload._crt import CrtPut, Sent, UploadTransportError, checksum_header

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["PartSource", "parts_in_flight", "upload"]

#: S3's most parts in one upload, and its largest part.
MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024**3
#: The CRT holds each part in flight whole in a buffer of its own (to send it again on a retry):
#: parts in flight are bounded by bytes too, so that a 2 GiB upload stays within 150 MiB (P6).
PART_BYTES_IN_FLIGHT = 64 * 1024 * 1024


def parts_in_flight(part_size: int, max_concurrency: int) -> int:
    """How many parts are sent at once: ``max_concurrency``, within
    :data:`PART_BYTES_IN_FLIGHT` (one part at least, whatever its size)."""
    return max(1, min(max_concurrency, PART_BYTES_IN_FLIGHT // part_size))


class PartSource:
    """Where the parts' bytes come from: a file (read with ``pread``, so parts can be read at
    once from one descriptor) or a buffer in memory (read without a copy)."""

    def __init__(self, read_at: Callable[[int, memoryview], int], size: int) -> None:
        self._read_at = read_at
        self.size = size

    @classmethod
    def of_buffer(cls, data: memoryview) -> PartSource:
        flat = data.cast("B")

        def read_at(offset: int, into: memoryview) -> int:
            chunk = flat[offset : offset + len(into)]
            into[: len(chunk)] = chunk
            return len(chunk)

        return cls(read_at, len(flat))

    @classmethod
    def of_file(cls, descriptor: int, size: int) -> PartSource:
        def read_at(offset: int, into: memoryview) -> int:
            return os.preadv(descriptor, [into], offset)

        return cls(read_at, size)

    def window(self, start: int, length: int) -> PartWindow:
        return PartWindow(self._read_at, start, length)


class PartWindow:
    """``length`` bytes of a :class:`PartSource` from ``start``, as a seekable binary stream
    (what the CRT reads a request body from, again on a retry)."""

    def __init__(self, read_at: Callable[[int, memoryview], int], start: int, length: int) -> None:
        self._read_at = read_at
        self._start = start
        self._length = length
        self._position = 0

    def readinto(self, into: memoryview | bytearray) -> int:
        wanted = min(len(into), self._length - self._position)
        if wanted <= 0:
            return 0
        got = self._read_at(self._start + self._position, memoryview(into)[:wanted])
        if got <= 0:
            raise OSError(
                f"the source ended {self._length - self._position} bytes before the part did "
                "(a file that shrank while it was uploaded)"
            )
        self._position += got
        return got

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._position
        buffer = bytearray(left if size < 0 else min(size, left))
        view = memoryview(buffer)
        filled = 0
        while filled < len(buffer):
            filled += self.readinto(view[filled:])
        return bytes(buffer)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = min(max(base + offset, 0), self._length)
        return self._position

    def tell(self) -> int:
        return self._position


@dataclass
class _Part:
    number: int
    start: int
    length: int
    checksum: str | None = None
    sent: Sent | None = None
    #: When (``time.monotonic()``) the part in flight is cancelled if it has not ended.
    due: float = math.inf
    resent: bool = False


def part_size_for(size: int, part_size: int) -> int:
    """The uploader's part size, doubled until the object fits in S3's 10,000 parts."""
    while math.ceil(size / part_size) > MAX_PARTS and part_size < MAX_PART_SIZE:
        part_size *= 2
    return min(part_size, MAX_PART_SIZE)


def upload(
    engine: CrtPut,
    client: S3Client,
    *,
    bucket: str,
    key: str,
    source: PartSource,
    part_size: int,
    concurrency: int,
    extra_args: Mapping[str, Any],
    progress: Callable[[int], None],
) -> None:
    """Upload ``source`` to ``key`` in parts. The completion's answer is in the uploader's
    ledger; on failure the upload is left open for the uploader to abort (its id is there too)."""
    algorithm = str(extra_args["ChecksumAlgorithm"])
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra_args)["UploadId"]
    size = part_size_for(source.size, part_size)
    parts = [
        _Part(number, start, min(size, source.size - start))
        for number, start in enumerate(range(0, max(source.size, 1), size), start=1)
    ]
    sender = _PartSender(
        engine, bucket=bucket, key=key, upload_id=upload_id, source=source, algorithm=algorithm
    )
    _send_all(sender, parts, concurrency, progress)
    listed: Any = [sender.listed(part) for part in parts]
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
    )


class _PartSender:
    """Sends the parts of one upload through the CRT, and says what each came back with."""

    def __init__(
        self,
        engine: CrtPut,
        *,
        bucket: str,
        key: str,
        upload_id: str,
        source: PartSource,
        algorithm: str,
    ) -> None:
        self._engine = engine
        self._bucket = bucket
        self._key = key
        self._upload_id = upload_id
        self._source = source
        self._algorithm = algorithm
        #: The number of each part whose request ended.
        self.ended: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._etags: dict[int, str] = {}

    def send(self, part: _Part) -> None:
        body = self._source.window(part.start, part.length)
        if part.checksum is None:
            part.checksum = body_checksum(body, self._algorithm)
        headers = [("Content-Length", str(part.length))]
        if part.checksum is not None:
            headers.append((checksum_header(self._algorithm), part.checksum))
        query = f"?partNumber={part.number}&uploadId={quote(self._upload_id, safe='')}"
        ended, number = self.ended, part.number
        part.sent = self._engine.submit(
            self._bucket,
            self._key,
            query,
            body,
            headers,
            operation="UploadPart",
            length=part.length,
            # The number, not the part: what the CRT holds must not lead back to the request.
            on_done=lambda: ended.put(number),
        )
        part.due = time.monotonic() + part.sent.deadline

    def settle(self, part: _Part) -> bool:
        """Record an ended part's ETag; False when it should be sent again (S3 called its
        credentials expired and a fresh set is in place). Raises the part's error."""
        assert part.sent is not None
        try:
            answer = part.sent.result()
        except ClientError as exc:
            if part.resent or not self._engine.refreshed_after(exc, self._key):
                raise
            part.resent = True
            return False
        etag = answer.get("ETag")
        if not etag:
            raise UploadTransportError(ValueError(f"S3 stored part {part.number} without an ETag"))
        self._etags[part.number] = str(etag)
        return True

    def listed(self, part: _Part) -> dict[str, Any]:
        """The part as CompleteMultipartUpload lists it."""
        entry: dict[str, Any] = {"PartNumber": part.number, "ETag": self._etags[part.number]}
        if part.checksum is not None:
            entry[f"Checksum{self._algorithm}"] = part.checksum
        return entry


def _send_all(
    sender: _PartSender, parts: list[_Part], concurrency: int, progress: Callable[[int], None]
) -> None:
    waiting = list(reversed(parts))
    in_flight: set[int] = set()
    try:
        while waiting or in_flight:
            while waiting and len(in_flight) < concurrency:
                part = waiting.pop()
                sender.send(part)
                in_flight.add(part.number)
            part = _next_ended(sender, parts, in_flight)
            in_flight.discard(part.number)
            if sender.settle(part):
                progress(part.length)
            else:
                waiting.append(part)
    except BaseException:
        for number in in_flight:
            sent = parts[number - 1].sent
            assert sent is not None
            sent.cancel()
        raise


def _next_ended(sender: _PartSender, parts: list[_Part], in_flight: set[int]) -> _Part:
    """The next part in flight to end; a part past its deadline is cancelled and fails."""
    first_due = min((parts[number - 1] for number in in_flight), key=lambda part: part.due)
    try:
        return parts[sender.ended.get(timeout=max(first_due.due - time.monotonic(), 0.0)) - 1]
    except queue.Empty:
        assert first_due.sent is not None
        first_due.sent.cancel()
        raise first_due.sent.timed_out() from None
