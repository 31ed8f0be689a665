"""S3 error codes, classified once, and botocore's errors turned into taskcreds' typed upload
errors naming the IAM action refused.

:func:`classify` is the one table of what an S3 error code means (used by the hooks, by
:func:`translate`, and by ``taskcreds doctor``); this module imports no boto.
"""

from __future__ import annotations

import re
from typing import Literal

from taskcreds._awserror import error_code_and_message
from taskcreds.errors import AccessDeniedError, ObjectExistsError, UploadError

__all__ = ["IAM_ACTIONS", "S3ErrorKind", "classify", "classify_error", "codes_of", "translate"]

#: The IAM action each S3 operation the uploader uses needs (HEAD needs s3:GetObject).
IAM_ACTIONS = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObjectTagging": "s3:PutObjectTagging",
    "DeleteObject": "s3:DeleteObject",
}

S3ErrorKind = Literal[
    "expired", "denied", "exists", "conflict", "throttled", "not_found", "no_bucket", "other"
]
"""What an S3 error code means to taskcreds (see :func:`classify`)."""

#: The one table: each kind and the codes (or bare HTTP statuses, as HEAD answers) that mean it.
_KINDS: dict[S3ErrorKind, frozenset[str]] = {
    # The credentials are refused as expired or unknown: refresh once and retry (_hooks).
    "expired": frozenset(
        {"ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired"}
    ),
    "denied": frozenset({"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}),
    # If-None-Match: * refused: the key is taken.
    "exists": frozenset({"PreconditionFailed", "412"}),
    # 409: another conditional write to the key is in flight. It is retried (_hooks.NoOverwrite);
    # once the retries run out nothing is known to be stored: it is not "already exists".
    "conflict": frozenset({"ConditionalRequestConflict"}),
    # Refused before anything was stored; botocore's standard retry mode retries them.
    "throttled": frozenset({"SlowDown", "ServiceUnavailable"}),
    "not_found": frozenset({"404", "NoSuchKey", "NotFound"}),
    "no_bucket": frozenset({"NoSuchBucket"}),
}
_BY_CODE = {code: kind for kind, codes in _KINDS.items() for code in codes}


def classify(code: str | None) -> S3ErrorKind:
    """What the S3 error ``code`` means: ``expired``, ``denied``, ``exists``, ``conflict``,
    ``throttled``, ``not_found``, ``no_bucket`` or ``other``."""
    return _BY_CODE.get(code or "", "other")


def classify_error(error: BaseException) -> S3ErrorKind:
    """:func:`classify` of a botocore ``ClientError`` (or anything with its ``response``)."""
    return classify(error_code_and_message(error)[0])


def codes_of(kind: S3ErrorKind) -> frozenset[str]:
    """The codes :func:`classify` maps to ``kind``."""
    return _KINDS.get(kind, frozenset())


_KMS_HINT_WORDS = ("kms", "KMS")
_PERFORM = re.compile(r"perform: ([a-z0-9-]+:[A-Za-z0-9]+)")


def translate(error: Exception, *, bucket: str, key: str | None, prefix: str = "") -> UploadError:
    """A typed error for a failed S3 call; the original stays the ``__cause__``.

    An access-denied hint names the grant on the whole prefix (``arn:aws:s3:::B/P*``), never
    on the one object: a role needs it for every key it writes.
    """
    found_code, found_message = error_code_and_message(error)
    code = found_code or ""
    message = found_message or str(error)
    operation = str(getattr(error, "operation_name", "") or "")
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    kind = classify(code)
    if kind == "exists":
        return ObjectExistsError(
            f"{where} already exists and overwrite=False",
            bucket=bucket,
            key=key,
            hint="choose another key, or pass overwrite=True to replace it",
        )
    if kind == "conflict":
        return UploadError(
            f"uploading to {where} failed: another write to it was still in progress after "
            f"every retry ({code}); whether anything is stored there is not known",
            bucket=bucket,
            key=key,
            hint="try again later; check the object before relying on it",
        )
    if kind == "denied":
        action = _denied_action(operation, message)
        return AccessDeniedError(
            f"access denied: {operation or 'the request'} on {where} needs {action}",
            bucket=bucket,
            key=key,
            action=action,
            hint=f"grant {action} on {_resource(action, bucket, prefix)} to the task role "
            "(docs/uploading.md lists the actions each feature needs)",
        )
    if kind == "no_bucket":
        return UploadError(
            f"bucket {bucket!r} does not exist",
            bucket=bucket,
            key=key,
            hint="check TASKCREDS_BUCKET (and the region / AWS_ENDPOINT_URL_S3)",
        )
    summary = f"{code}: {message}" if code else message
    return UploadError(f"uploading to {where} failed: {summary}", bucket=bucket, key=key)


def _denied_action(operation: str, message: str) -> str:
    # AWS names the refused action itself: "... is not authorized to perform: s3:PutObjectTagging"
    named = _PERFORM.search(message)
    if named:
        return named.group(1)
    if any(word in message for word in _KMS_HINT_WORDS):
        # Multipart uploads to SSE-KMS buckets need kms:Decrypt too; GenerateDataKey comes first.
        return "kms:Decrypt" if "Decrypt" in message else "kms:GenerateDataKey"
    return IAM_ACTIONS.get(operation, "s3:PutObject")


def _resource(action: str, bucket: str, prefix: str) -> str:
    if action.startswith("kms:"):
        return "the bucket's KMS key"
    if action == "s3:ListBucketMultipartUploads":
        return f"arn:aws:s3:::{bucket}"
    return f"arn:aws:s3:::{bucket}/{prefix}*"
