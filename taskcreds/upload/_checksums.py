"""The S3 checksums the uploader asks for, computed here too: to know what a write should store.

S3 checks a ``x-amz-checksum-<algorithm>`` value against the bytes it received. When a
no-overwrite write is answered 412 after an attempt whose answer was lost, the uploader compares
what S3 stored with the value it sent (single objects) or with the composite of the parts'
values (multipart: ``base64(checksum(part checksums)) + "-N"``), to tell its own object from
another writer's. CRC32C and CRC64NVME come from awscrt (``botocore[crt]``, a dependency).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Any

from awscrt import checksums as _crt  # type: ignore[import-untyped]

__all__ = ["body_checksum", "composite_checksum", "multipart_etag"]

_BLOCK = 1024 * 1024


def _crc(function: Callable[[bytes, int], int], width: int) -> Callable[[Iterable[bytes]], bytes]:
    def digest(blocks: Iterable[bytes]) -> bytes:
        value = 0
        for block in blocks:
            value = function(block, value)
        return value.to_bytes(width, "big")

    return digest


def _sha256(blocks: Iterable[bytes]) -> bytes:
    running = hashlib.sha256()
    for block in blocks:
        running.update(block)
    return running.digest()


_DIGESTS: dict[str, Callable[[Iterable[bytes]], bytes]] = {
    "CRC32": _crc(zlib.crc32, 4),
    "CRC32C": _crc(_crt.crc32c, 4),
    "CRC64NVME": _crc(_crt.crc64nvme, 8),
    "SHA256": _sha256,
}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def body_checksum(body: Any, algorithm: str) -> str | None:
    """The base64 checksum of a request body from its current position (a seekable stream is
    put back where it was, as botocore does); None when the body cannot be read twice."""
    digest = _DIGESTS[algorithm]
    if body is None:
        return _b64(digest([]))
    if isinstance(body, (bytes, bytearray)):
        return _b64(digest([bytes(body)]))
    stream: IO[bytes] = body
    try:
        start = stream.tell()
    except (AttributeError, OSError, ValueError):
        return None
    try:
        value = _b64(digest(iter(lambda: stream.read(_BLOCK), b"")))
    finally:
        stream.seek(start)
    return value


def composite_checksum(part_checksums: list[str], algorithm: str) -> str:
    """S3's checksum of a multipart object made of parts with these (base64) checksums."""
    raw = b"".join(base64.b64decode(value) for value in part_checksums)
    return f"{_b64(_DIGESTS[algorithm]([raw]))}-{len(part_checksums)}"


def multipart_etag(part_etags: list[str]) -> str:
    """S3's ETag of a multipart object made of parts with these (MD5) ETags."""
    raw = b"".join(bytes.fromhex(etag.strip('"')) for etag in part_etags)
    return f'"{hashlib.md5(raw, usedforsecurity=False).hexdigest()}-{len(part_etags)}"'
