"""The uploader's features, and the IAM actions each one needs (the table in docs/iam.md)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ACTION_PURPOSES", "DEFAULT_FEATURES", "FEATURES", "FEATURE_ACTIONS"]

#: Every feature, in the order documented and printed.
FEATURES = ("upload", "multipart", "overwrite-check", "tags", "read", "list")
DEFAULT_FEATURES = ("upload", "multipart")

#: The IAM actions each feature needs (the documented table; a feature may add none).
FEATURE_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "upload": ("s3:PutObject",),
    "multipart": ("s3:AbortMultipartUpload", "s3:ListBucketMultipartUploads", "s3:PutObject"),
    "overwrite-check": (),
    "tags": ("s3:PutObjectTagging",),
    "read": ("s3:GetObject",),
    "list": ("s3:ListBucket",),
}

#: What each action is for, one line each (the text output and docs/iam.md use these).
ACTION_PURPOSES: Mapping[str, str] = {
    "s3:PutObject": "write objects: PutObject and every multipart step (create, parts, complete), "
    "with or without If-None-Match",
    "s3:AbortMultipartUpload": "abort a multipart upload that failed or was abandoned "
    "(the uploader's clean-up after a failure, abort_incomplete)",
    "s3:PutObjectTagging": "set tags while writing (the x-amz-tagging header)",
    "s3:GetObject": "read objects back: HeadObject for upload_dir(skip_unchanged=True), "
    "presigned GET URLs",
    "s3:ListBucket": "list keys, only with a prefix under the app's prefix",
    "s3:ListBucketMultipartUploads": "list multipart uploads in progress (list_incomplete, "
    "abort_incomplete)",
    "kms:GenerateDataKey": "encrypt new objects and parts with the bucket's KMS key",
    "kms:Decrypt": "decrypt the data key: every multipart upload part, and reads",
}
