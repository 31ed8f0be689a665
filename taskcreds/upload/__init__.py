"""Uploads to the app's own bucket and prefix, with the task role's credentials."""

from __future__ import annotations

from taskcreds.upload.results import (
    DirectoryResult,
    FailedFile,
    FileEvent,
    IncompleteUpload,
    UploadResult,
)
from taskcreds.upload.uploader import CHECKSUM_ALGORITHMS, Uploader

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DirectoryResult",
    "FailedFile",
    "FileEvent",
    "IncompleteUpload",
    "UploadResult",
    "Uploader",
]
