"""What uploads return: one object, a directory's plan, summary and per-file events, an
incomplete multipart upload."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from taskcreds.errors import TaskCredsError

__all__ = [
    "DirectoryResult",
    "FailedFile",
    "FileEvent",
    "IncompleteUpload",
    "PlannedFile",
    "UploadResult",
]


@dataclass(frozen=True)
class UploadResult:
    """One object written to S3."""

    bucket: str
    key: str
    size: int
    etag: str | None
    version_id: str | None = None
    #: ``CRC32C``, ``CRC32``, ``SHA256`` or ``CRC64NVME``; None when S3 returned no checksum.
    checksum_algorithm: str | None = None
    #: The base64 checksum S3 computed and checked (``…-N`` for a composite multipart checksum).
    checksum: str | None = None
    multipart: bool = False
    #: The local file uploaded (``upload_file`` and ``upload_dir``); None for bytes and streams.
    path: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def result_from(
    answer: Mapping[str, Any],
    *,
    bucket: str,
    key: str,
    size: int,
    algorithm: str,
    multipart: bool,
    path: str | None = None,
) -> UploadResult:
    """The :class:`UploadResult` of a write, from S3's answer to it (or to a HEAD of it)."""
    checksum = answer.get(f"Checksum{algorithm}")
    return UploadResult(
        bucket=bucket,
        key=key,
        size=size,
        etag=answer.get("ETag"),
        version_id=answer.get("VersionId"),
        checksum_algorithm=algorithm if checksum else None,
        checksum=checksum,
        multipart=multipart,
        path=path,
    )


@dataclass(frozen=True)
class PlannedFile:
    """A file ``upload_dir`` would upload (``Uploader.plan_dir``): where it is, its full key and
    its size in bytes."""

    path: str
    key: str
    size: int


@dataclass(frozen=True)
class FailedFile:
    """A file of ``upload_dir`` that was not uploaded, and why."""

    path: str
    key: str | None
    reason: str
    #: The error itself: a :class:`~taskcreds.errors.TaskCredsError` (an ``AccessDeniedError``,
    #: an ``ObjectExistsError``...), or the ``OSError`` of a file that could not be read.
    error: TaskCredsError | OSError

    @property
    def error_type(self) -> str:
        """The error's type name, e.g. ``AccessDeniedError``."""
        return type(self.error).__name__


@dataclass
class DirectoryResult:
    """What ``upload_dir`` did with each file."""

    uploaded: list[UploadResult] = field(default_factory=list)
    #: Keys left alone because the object already holds the same bytes (or would, in a dry run).
    skipped: list[str] = field(default_factory=list)
    failed: list[FailedFile] = field(default_factory=list)
    #: Keys that would be uploaded (dry run only).
    planned: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: Keys not tried because the first file's failure meant they would fail the same way
    #: (``keep_going=False``: access denied, or no credentials).
    not_attempted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def bytes_uploaded(self) -> int:
        return sum(result.size for result in self.uploaded)


#: What a :class:`FileEvent` says happened to one file.
FileStatus = Literal["uploaded", "skipped", "planned", "failed"]


@dataclass(frozen=True)
class FileEvent:
    """One file of ``upload_dir`` settled, as passed to its ``on_file`` callback."""

    status: FileStatus
    #: The local path, as listed (under the directory as the caller named it).
    path: str
    #: The full key, or None when no key could be made for the file's name.
    key: str | None
    #: The object written (``uploaded``) or the failure (``failed``); None otherwise.
    outcome: UploadResult | FailedFile | None = None


@dataclass(frozen=True)
class IncompleteUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    bucket: str
    key: str
    upload_id: str
    initiated: datetime
