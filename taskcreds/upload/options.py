"""Upload options, typed, and the constants the CLI shares with the uploader.

This module imports nothing from boto3, botocore or s3transfer: ``taskcreds upload --help`` and
other callers that only need :data:`CHECKSUM_ALGORITHMS` or :class:`UploadOptions` stay fast.

Options are a frozen :class:`UploadOptions`; the upload methods also take them as keyword
arguments (``upload_bytes(data, key, overwrite=False, content_type="text/plain")``), typed for
checkers as ``Unpack[UploadOptionsDict]``. An unknown name raises :class:`TypeError`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypedDict
from urllib.parse import urlencode

from taskcreds.errors import ConfigError

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MULTIPART_THRESHOLD",
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "SSE_ALGORITHMS",
    "MiB",
    "Progress",
    "UploadOptions",
    "UploadOptionsDict",
]

#: The checksums S3 computes and checks (``--checksum`` of ``taskcreds upload``).
CHECKSUM_ALGORITHMS = ("CRC32C", "CRC32", "SHA256", "CRC64NVME")
#: What ``sse`` may be.
SSE_ALGORITHMS = ("AES256", "aws:kms")
MiB = 1024 * 1024
#: s3transfer's defaults: 8 MiB parts, multipart from 8 MiB, 10 requests at once.
DEFAULT_MULTIPART_THRESHOLD = 8 * MiB
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_CONCURRENCY = 10
#: S3's smallest part (the last part of an upload excepted).
MIN_PART_SIZE = 5 * MiB

#: Stored with each object ``upload_dir`` writes, so an unchanged file can be skipped later.
SHA256_METADATA = "taskcreds-sha256"

Progress = Callable[[int], None]
"""Called with the number of bytes sent since the last call (negative after a retried part)."""


@dataclass(frozen=True)
class UploadOptions:
    """How one object (or each file of a directory) is written.

    ``content_type`` defaults to a guess from the key's name; ``checksum_algorithm`` to the
    uploader's. ``overwrite=False`` writes with ``If-None-Match: *``. ``sse`` is ``AES256`` or
    ``aws:kms`` (``kms_key_id`` needs ``aws:kms``). ``progress`` is called from the transfer
    threads with the bytes sent since its last call.
    """

    content_type: str | None = None
    metadata: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None
    storage_class: str | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    checksum_algorithm: str | None = None
    overwrite: bool = True
    progress: Progress | None = None

    def merged(self, overrides: Mapping[str, Any]) -> UploadOptions:
        """These options with ``overrides`` (keyword arguments) applied; unknown names raise
        :class:`TypeError`."""
        unknown = set(overrides) - OPTION_NAMES
        if unknown:
            raise TypeError(f"unknown upload option(s): {', '.join(sorted(unknown))}")
        return replace(self, **overrides) if overrides else self

    def with_defaults(self, *, name: str) -> UploadOptions:
        """With ``content_type`` guessed from ``name`` when none was given."""
        if self.content_type is not None:
            return self
        return replace(self, content_type=guess_type(name))

    def extra_args(self, default_algorithm: str) -> dict[str, Any]:
        """The ``ExtraArgs`` of s3transfer (and PutObject's parameters) for these options;
        raises :class:`ConfigError` for an unknown checksum or SSE, or a KMS key without KMS."""
        algorithm = checked_algorithm(self.checksum_algorithm or default_algorithm)
        extra: dict[str, Any] = {"ChecksumAlgorithm": algorithm}
        if self.content_type:
            extra["ContentType"] = self.content_type
        if self.metadata:
            extra["Metadata"] = dict(self.metadata)
        if self.tags:
            extra["Tagging"] = urlencode(dict(self.tags))
        if self.storage_class:
            extra["StorageClass"] = self.storage_class
        if self.sse:
            if self.sse not in SSE_ALGORITHMS:
                raise ConfigError(f"sse must be 'AES256' or 'aws:kms', not {self.sse!r}")
            extra["ServerSideEncryption"] = self.sse
            if self.kms_key_id:
                extra["SSEKMSKeyId"] = self.kms_key_id
        elif self.kms_key_id:
            raise ConfigError("kms_key_id needs sse='aws:kms'")
        return extra


class UploadOptionsDict(TypedDict, total=False):
    """:class:`UploadOptions` as keyword arguments (for ``Unpack``)."""

    content_type: str | None
    metadata: Mapping[str, str] | None
    tags: Mapping[str, str] | None
    storage_class: str | None
    sse: str | None
    kms_key_id: str | None
    checksum_algorithm: str | None
    overwrite: bool
    progress: Progress | None


OPTION_NAMES = frozenset(field.name for field in fields(UploadOptions))


def resolve(options: UploadOptions | None, overrides: Mapping[str, Any]) -> UploadOptions:
    """``options`` (default: none set) with the keyword arguments of a call applied."""
    return (options or UploadOptions()).merged(overrides)


def checked_algorithm(name: str) -> str:
    """``name`` in upper case, or :class:`ConfigError` if S3 does not know it."""
    upper = name.upper()
    if upper not in CHECKSUM_ALGORITHMS:
        raise ConfigError(
            f"checksum algorithm {name!r} is not one of {', '.join(CHECKSUM_ALGORITHMS)}"
        )
    return upper


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
