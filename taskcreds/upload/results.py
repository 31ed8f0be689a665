"""What uploads return: one object, a directory summary, an incomplete multipart upload."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["DirectoryResult", "FailedFile", "IncompleteUpload", "UploadResult"]


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

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class FailedFile:
    path: str
    key: str | None
    reason: str
    #: The error's type name, e.g. ``AccessDeniedError``.
    error: str


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

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def bytes_uploaded(self) -> int:
        return sum(result.size for result in self.uploaded)


@dataclass(frozen=True)
class IncompleteUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    bucket: str
    key: str
    upload_id: str
    initiated: datetime
