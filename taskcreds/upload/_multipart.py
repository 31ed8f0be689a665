"""Multipart administration: the incomplete uploads under a prefix, aborting them, and the
clean-up after a failed transfer (nothing left behind that keeps costing storage)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from taskcreds._awserror import error_code_and_message
from taskcreds.errors import TaskCredsError, UploadError
from taskcreds.upload._hooks import Ledger
from taskcreds.upload._telemetry import UploadRecorder
from taskcreds.upload.events import AbortFailedEvent
from taskcreds.upload.results import IncompleteUpload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["AWS_ERRORS", "abort_incomplete", "clean_up_after_failure", "list_incomplete"]

logger = logging.getLogger("taskcreds")

AWS_ERRORS = (ClientError, BotoCoreError)

Translate = Callable[[Exception, "str | None"], UploadError]
"""The uploader's ``translate(error, key)``: a typed error for a failed S3 call."""


def list_incomplete(
    client: S3Client, bucket: str, prefix: str, older_than: timedelta, translate: Translate
) -> list[IncompleteUpload]:
    """Multipart uploads under ``prefix`` started more than ``older_than`` ago."""
    cutoff = datetime.now(timezone.utc) - older_than
    found = []
    try:
        paginator = client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                initiated = upload["Initiated"].astimezone(timezone.utc)
                if initiated <= cutoff:
                    found.append(
                        IncompleteUpload(bucket, upload["Key"], upload["UploadId"], initiated)
                    )
    except AWS_ERRORS as exc:
        raise translate(exc, None) from exc
    return found


def abort_incomplete(
    client: S3Client, uploads: list[IncompleteUpload], translate: Translate
) -> list[IncompleteUpload]:
    """Abort each of ``uploads``; the first refusal raises (those aborted before it stay so)."""
    aborted = []
    for upload in uploads:
        try:
            client.abort_multipart_upload(
                Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id
            )
        except AWS_ERRORS as exc:
            raise translate(exc, upload.key) from exc
        aborted.append(upload)
    return aborted


def clean_up_after_failure(
    client: S3Client,
    ledger: Ledger,
    bucket: str,
    key: str,
    recorder: UploadRecorder | None = None,
) -> None:
    """Abort any multipart upload a transfer to ``key`` started and s3transfer did not abort;
    one S3 refuses to abort is logged with its id (and reported, :class:`AbortFailedEvent`)."""
    for upload_id in ledger.open_uploads(key):
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except (*AWS_ERRORS, TaskCredsError) as exc:
            code = error_code_and_message(exc)[0]
            if code != "NoSuchUpload":
                logger.error(
                    "could not abort multipart upload %s of s3://%s/%s (%s); it keeps costing "
                    "storage until aborted: uploader.abort_incomplete() or a lifecycle rule",
                    upload_id,
                    bucket,
                    key,
                    exc,
                )
                if recorder is not None:
                    recorder.emit(AbortFailedEvent, key=key, upload_id=upload_id, error=str(exc))
    ledger.forget(key)
