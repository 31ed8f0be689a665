"""Uploads to the app's own bucket and prefix, with the task role's credentials.

:class:`Uploader` (and with it boto3) is imported on first use, so that
``import taskcreds.upload.options`` (the CLI's constants, :class:`UploadOptions`) loads no boto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskcreds.upload.options import CHECKSUM_ALGORITHMS, UploadOptions, UploadOptionsDict
from taskcreds.upload.results import (
    DirectoryResult,
    FailedFile,
    FileEvent,
    IncompleteUpload,
    PlannedFile,
    UploadResult,
)

if TYPE_CHECKING:
    from taskcreds.upload.uploader import Uploader

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DirectoryResult",
    "FailedFile",
    "FileEvent",
    "IncompleteUpload",
    "PlannedFile",
    "UploadOptions",
    "UploadOptionsDict",
    "UploadResult",
    "Uploader",
]


def __getattr__(name: str) -> Any:
    if name == "Uploader":
        from taskcreds.upload.uploader import Uploader

        return Uploader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
