"""Mapping S3 errors to typed upload errors (a unit of logic; the real S3 path is in integration)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from taskcreds import AccessDeniedError, ObjectExistsError, UploadError
from taskcreds.upload._errors import classify, classify_error, codes_of, translate


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("operation", "message", "action"),
    [
        ("PutObject", "Access Denied", "s3:PutObject"),
        ("UploadPart", "Access Denied", "s3:PutObject"),
        ("AbortMultipartUpload", "Access Denied", "s3:AbortMultipartUpload"),
        ("ListMultipartUploads", "Access Denied", "s3:ListBucketMultipartUploads"),
        ("HeadObject", "Forbidden", "s3:GetObject"),
        (
            "PutObject",
            "User: arn:aws:sts::1:assumed-role/A/s is not authorized to perform: "
            "s3:PutObjectTagging on resource: arn:aws:s3:::b/k",
            "s3:PutObjectTagging",
        ),
        (
            "CreateMultipartUpload",
            "The ciphertext refers to a customer master key (KMS)",
            "kms:GenerateDataKey",
        ),
        ("UploadPart", "not authorized to perform kms Decrypt (KMS)", "kms:Decrypt"),
    ],
)
def test_access_denied_names_the_action(operation: str, message: str, action: str) -> None:
    error = translate(client_error("AccessDenied", message, operation), bucket="b", key="k")
    assert isinstance(error, AccessDeniedError)
    assert error.action == action
    assert action in str(error)
    assert (error.bucket, error.key) == ("b", "k")


def test_precondition_failed_is_object_exists() -> None:
    error = translate(
        client_error("PreconditionFailed", "At least one", "PutObject"), bucket="b", key="k"
    )
    assert isinstance(error, ObjectExistsError)


def test_other_errors_are_upload_errors() -> None:
    error = translate(client_error("SlowDown", "Please reduce", "PutObject"), bucket="b", key="k")
    assert type(error) is UploadError
    assert "SlowDown" in str(error)


def test_conflict_after_every_retry_is_not_object_exists() -> None:
    # 409 ConditionalRequestConflict: a competing write was in flight; nothing is known to be
    # stored, so it must not read as "already exists ... left as it was".
    error = translate(
        client_error("ConditionalRequestConflict", "A conflicting operation", "PutObject"),
        bucket="b",
        key="k",
    )
    assert type(error) is UploadError
    assert not isinstance(error, ObjectExistsError)
    assert "ConditionalRequestConflict" in str(error)
    assert "not known" in str(error)
    assert (error.bucket, error.key) == ("b", "k")


@pytest.mark.parametrize(
    ("prefix", "resource"),
    [("x/", "arn:aws:s3:::app-b/x/*"), ("", "arn:aws:s3:::app-b/*")],
)
def test_access_denied_hint_grants_the_prefix_not_the_object(prefix: str, resource: str) -> None:
    error = translate(
        client_error("AccessDenied", "Access Denied", "PutObject"),
        bucket="app-b",
        key=f"{prefix}deep/report.csv",
        prefix=prefix,
    )
    assert isinstance(error, AccessDeniedError)
    assert error.hint == (
        f"grant s3:PutObject on {resource} to the task role "
        "(docs/uploading.md lists the actions each feature needs)"
    )
    assert "report.csv" not in error.hint


def test_list_multipart_uploads_hint_is_the_bucket() -> None:
    error = translate(
        client_error("AccessDenied", "Access Denied", "ListMultipartUploads"),
        bucket="app-b",
        key=None,
        prefix="x/",
    )
    assert error.hint is not None
    assert "on arn:aws:s3:::app-b to the task role" in error.hint


# -- the one table of S3 error codes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ExpiredToken", "expired"),
        ("InvalidToken", "expired"),
        ("InvalidAccessKeyId", "expired"),
        ("TokenRefreshRequired", "expired"),
        ("AccessDenied", "denied"),
        ("403", "denied"),
        ("PreconditionFailed", "exists"),
        ("412", "exists"),
        ("ConditionalRequestConflict", "conflict"),
        ("SlowDown", "throttled"),
        ("ServiceUnavailable", "throttled"),
        ("NoSuchKey", "not_found"),
        ("404", "not_found"),
        ("NoSuchBucket", "no_bucket"),
        ("InternalError", "other"),
        (None, "other"),
    ],
)
def test_classify(code: str | None, kind: str) -> None:
    assert classify(code) == kind


def test_classify_error_reads_the_client_error() -> None:
    assert classify_error(client_error("InvalidToken", "bad", "PutObject")) == "expired"
    assert "InvalidToken" in codes_of("expired")


def test_an_expired_token_is_not_reported_as_denied() -> None:
    error = translate(client_error("InvalidToken", "bad", "PutObject"), bucket="b", key="k")
    assert type(error) is UploadError
