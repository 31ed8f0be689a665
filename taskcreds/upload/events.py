"""What an :class:`~taskcreds.upload.Uploader` reports besides its results: the S3 requests it
sent again, credentials S3 refused as expired, multipart uploads it aborted and aborts S3
refused (docs/observability.md, "Uploads").

Each is a :class:`taskcreds.telemetry.CredentialEvent`, delivered like the providers' events:
to the uploader's ``on_event`` and to every :func:`taskcreds.telemetry.add_listener` listener,
in the telemetry dispatcher thread, never in the thread that uploads. ``source`` is the
uploader's ``s3://bucket/prefix``. :meth:`Uploader.stats() <taskcreds.upload.Uploader.stats>`
counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskcreds.telemetry import CredentialEvent

__all__ = [
    "AbortFailedEvent",
    "CredentialsRejectedEvent",
    "MultipartAbortedEvent",
    "RequestRetryEvent",
    "UploadEvent",
    "UploaderStats",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadEvent(CredentialEvent):
    """Base class of the uploader's events."""

    bucket: str
    #: The object's full key (None for a request about no one object).
    key: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRetryEvent(UploadEvent):
    """botocore is sending a request again (5xx, ``SlowDown``, a dropped connection, a 409
    ``ConditionalRequestConflict``, expired credentials). Requests the AWS CRT sends (see
    docs/uploading.md, "Engines") are retried inside it, which does not report them."""

    #: The S3 operation (``PutObject``, ``UploadPart``...).
    operation: str
    #: The attempt about to be sent: 2 for the first retry.
    attempt: int
    #: What the attempt before it met: S3's error code, or the exception's class name.
    code: str | None
    #: Its HTTP status (None when no answer came).
    status: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialsRejectedEvent(UploadEvent):
    """S3 called the credentials expired or unknown (``ExpiredToken``, ``InvalidAccessKeyId``):
    the uploader forced a refresh of its provider (or reused one forced a moment ago) and sends
    the request again once."""

    operation: str
    code: str
    #: Whether a valid set is in place for the retry (False: the refresh failed).
    refreshed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class MultipartAbortedEvent(UploadEvent):
    """A failed multipart upload was aborted (its parts no longer cost storage)."""

    upload_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AbortFailedEvent(UploadEvent):
    """S3 refused to abort a failed multipart upload (it is also logged at ERROR): it keeps
    costing storage until ``Uploader.abort_incomplete()`` or a lifecycle rule removes it."""

    upload_id: str
    #: Why, as the uploader's typed error says it (never a secret).
    error: str


@dataclass(frozen=True, slots=True)
class UploaderStats:
    """Counts of one uploader's events since it was made (:meth:`Uploader.stats`)."""

    source: str
    request_retries: int
    credentials_rejected: int
    multipart_aborted: int
    abort_failures: int
