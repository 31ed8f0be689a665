"""A no-overwrite write refused on a retry after an attempt whose answer was lost: is the object
S3 holds this write's own (its checksum, size and SHA-256 say so), or someone else's?"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from taskcreds._awserror import error_code_and_message
from taskcreds.errors import UploadError
from taskcreds.upload._checksums import composite_checksum, multipart_etag
from taskcreds.upload._errors import classify
from taskcreds.upload._hooks import Ledger, Unconfirmed
from taskcreds.upload._multipart import AWS_ERRORS
from taskcreds.upload.options import SHA256_METADATA
from taskcreds.upload.results import UploadResult, result_from

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["holds_this_write", "own_write_after_lost_answer"]

logger = logging.getLogger("taskcreds")


def own_write_after_lost_answer(
    client: S3Client,
    ledger: Ledger,
    *,
    bucket: str,
    key: str,
    error: Exception,
    size: int | None,
    extra_args: Mapping[str, Any],
    translate: Callable[[Exception, str | None], UploadError],
) -> UploadResult | None:
    """The result of a no-overwrite write that S3 refused on a retry because an earlier
    attempt, whose answer was lost, had stored it; None when the object is someone else's.

    Only a 412 (or NoSuchUpload for a completion) that follows an attempt with no answer is
    checked: S3 holds this write's bytes when its checksum (and size, and the SHA-256
    ``upload_dir`` stores) is what this write sent.
    """
    unconfirmed = ledger.take_unconfirmed(key)
    code = error_code_and_message(error)[0]
    if unconfirmed is None or (classify(code) != "exists" and code != "NoSuchUpload"):
        return None
    algorithm = str(extra_args["ChecksumAlgorithm"])
    try:
        head: Mapping[str, Any] = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except AWS_ERRORS as exc:
        if classify(error_code_and_message(exc)[0]) == "not_found":
            return None
        reason = translate(exc, key)
        raise UploadError(
            f"s3://{bucket}/{key} exists and may be this upload's own: the answer to an "
            f"earlier attempt was lost, and checking the object failed ({reason})",
            bucket=bucket,
            key=key,
            hint="look at the object (its checksum or x-amz-meta-taskcreds-sha256) before "
            "uploading again; reading it back needs s3:GetObject",
        ) from error
    if not holds_this_write(head, unconfirmed, algorithm, size, extra_args):
        return None
    logger.info(
        "the answer to %s of s3://%s/%s was lost and the retry was refused (%s); the object "
        "holds this upload's own bytes (%s %s), so it was uploaded",
        unconfirmed.operation,
        bucket,
        key,
        code,
        algorithm,
        head.get(f"Checksum{algorithm}"),
    )
    return result_from(
        head,
        bucket=bucket,
        key=key,
        size=int(head.get("ContentLength", size or 0)),
        algorithm=algorithm,
        multipart=unconfirmed.operation == "CompleteMultipartUpload",
    )


def holds_this_write(
    head: Mapping[str, Any],
    sent: Unconfirmed,
    algorithm: str,
    size: int | None,
    extra_args: Mapping[str, Any],
) -> bool:
    """Whether the object S3 describes (HEAD) is the one this write sent."""
    if size is not None and head.get("ContentLength") != size:
        return False
    wanted_sha = (extra_args.get("Metadata") or {}).get(SHA256_METADATA)
    if wanted_sha is not None and head.get("Metadata", {}).get(SHA256_METADATA) != wanted_sha:
        return False
    if sent.checksum is not None:
        sent_algorithm, value = sent.checksum
        stored = head.get(f"Checksum{sent_algorithm}")
        if stored is not None:
            return bool(stored == value)
    elif sent.parts:
        parts = sorted(sent.parts, key=lambda part: int(part.get("PartNumber", 0)))
        stored = head.get(f"Checksum{algorithm}")
        sums = [part.get(f"Checksum{algorithm}") for part in parts]
        if stored is not None and str(stored).endswith(f"-{len(parts)}") and all(sums):
            return bool(stored == composite_checksum([str(s) for s in sums], algorithm))
        etags = [part.get("ETag") for part in parts]
        if str(head.get("ETag", "")).strip('"').endswith(f"-{len(parts)}") and all(etags):
            return bool(head["ETag"] == multipart_etag([str(e) for e in etags]))
    # No checksum to compare: only the SHA-256 upload_dir stores can say it is this write.
    return wanted_sha is not None
