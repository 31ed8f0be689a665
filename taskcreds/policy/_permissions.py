"""The task role's permissions policy: only the S3 (and KMS) actions the chosen features need."""

from __future__ import annotations

from typing import Any

from taskcreds.policy._features import FEATURE_ACTIONS
from taskcreds.policy._request import PolicyRequest

__all__ = ["permissions_policy"]

POLICY_VERSION = "2012-10-17"

SID_OBJECTS = "AppObjectsUnderPrefix"
SID_LIST = "ListAppPrefixOnly"
SID_MULTIPART_LIST = "ListMultipartUploadsInBucket"
SID_KMS = "UseBucketKmsKeyViaS3"

_OBJECT_ACTIONS = frozenset(
    {"s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectTagging", "s3:GetObject"}
)


def permissions_policy(request: PolicyRequest) -> dict[str, Any]:
    """The task role's permissions policy for an already validated ``request``."""
    actions = {action for feature in request.features for action in FEATURE_ACTIONS[feature]}
    partition = request.partition
    bucket_arn = f"arn:{partition}:s3:::{request.bucket}"
    statements: list[dict[str, Any]] = []
    object_actions = sorted(actions & _OBJECT_ACTIONS)
    if object_actions:
        statements.append(
            {
                "Sid": SID_OBJECTS,
                "Effect": "Allow",
                "Action": object_actions,
                "Resource": f"{bucket_arn}/{request.prefix}*",
            }
        )
    if "s3:ListBucket" in actions:
        statement: dict[str, Any] = {
            "Sid": SID_LIST,
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": bucket_arn,
        }
        if request.prefix:  # the empty prefix is the whole bucket: no condition to add
            statement["Condition"] = {"StringLike": {"s3:prefix": [f"{request.prefix}*"]}}
        statements.append(statement)
    if "s3:ListBucketMultipartUploads" in actions:
        # S3 has no s3:prefix condition key for this action (only ListBucket and
        # ListBucketVersions have one), so it can only be granted for the whole bucket.
        statements.append(
            {
                "Sid": SID_MULTIPART_LIST,
                "Effect": "Allow",
                "Action": ["s3:ListBucketMultipartUploads"],
                "Resource": bucket_arn,
            }
        )
    if request.kms_key_arn is not None:
        statements.append(
            {
                "Sid": SID_KMS,
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": request.kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": _s3_service(request)}},
            }
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


def _s3_service(request: PolicyRequest) -> str:
    """``s3.REGION.amazonaws.com`` for the key's Region (SSE-KMS keys live in the bucket's)."""
    assert request.kms_key_arn is not None
    key_region = request.kms_key_arn.split(":")[3]
    suffix = "amazonaws.com.cn" if request.partition == "aws-cn" else "amazonaws.com"
    return f"s3.{key_region}.{suffix}"
