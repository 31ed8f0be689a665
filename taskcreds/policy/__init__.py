"""The least-privilege role for the uploader: IAM policy, trust policy, and how to attach it.

Pure generation: no I/O, no AWS calls, same input -> byte-identical output (actions sorted,
statements in a fixed order). For ``platform="ecs"`` (the default) :func:`generate` returns three
documents:

1. the task role's **permissions policy**: only the S3 actions the chosen uploader *features* need,
   on ``arn:aws:s3:::BUCKET/PREFIX*`` (``s3:ListBucket`` only with feature ``list``, and then only
   for ``s3:prefix`` values under the prefix), plus ``kms:GenerateDataKey`` and ``kms:Decrypt`` on
   the bucket's KMS key when one is given;
2. the role's **trust policy**: ``ecs-tasks.amazonaws.com`` may assume it, only for tasks of this
   account (``aws:SourceAccount``) and, by ``aws:SourceArn``, of this Region (and cluster);
3. a **task definition fragment**: ``taskRoleArn`` and the ``TASKCREDS_BUCKET`` /
   ``TASKCREDS_PREFIX`` environment the uploader reads.

For ``platform="eks"`` (EKS Pod Identity) the trust policy lets ``pods.eks.amazonaws.com``
``sts:AssumeRole`` and ``sts:TagSession``, only for the session tags of this namespace and service
account (and cluster, when given); the task definition is replaced by the **Kubernetes** part (a
ServiceAccount and the pod spec's ``serviceAccountName`` and environment) and the **Pod Identity
association** (``aws eks create-pod-identity-association ...``) that binds the role to them.

Features and the actions they add (docs/iam.md explains each one):

=================  ==========================================================================
upload             s3:PutObject (PutObject, and CreateMultipartUpload/UploadPart/Complete)
multipart          s3:PutObject, s3:AbortMultipartUpload; s3:ListBucketMultipartUploads on the
                   bucket (S3 offers no s3:prefix condition for it, so it is bucket-wide)
overwrite-check    nothing: ``If-None-Match: *`` is a condition of s3:PutObject itself
tags               s3:PutObjectTagging (the x-amz-tagging header of PutObject/CreateMultipartUpload)
read               s3:GetObject (HeadObject for upload_dir skip_unchanged, presigned GET URLs)
list               s3:ListBucket on the bucket, with ``StringLike s3:prefix PREFIX*``
=================  ==========================================================================

The parts, each one job:

- ``_features``: the features and the actions each one needs;
- ``_request``: :class:`PolicyRequest` and the checks of every field (bucket, prefix, KMS key,
  account, Region, cluster, namespace, service account, role name);
- ``_permissions``: the permissions policy;
- ``_trust``: the trust policies for ECS tasks and EKS Pod Identity;
- ``_attach``: the task definition fragment, the Kubernetes part and the Pod Identity association;
- ``_generate``: :func:`generate`, with each statement's explanation and the warnings.
"""

from __future__ import annotations

from taskcreds.policy._attach import CONTAINER_NAME as CONTAINER_NAME
from taskcreds.policy._attach import PLACEHOLDER_CLUSTER as PLACEHOLDER_CLUSTER
from taskcreds.policy._attach import kubernetes_part, pod_identity_association, task_definition
from taskcreds.policy._features import (
    ACTION_PURPOSES,
    DEFAULT_FEATURES,
    FEATURE_ACTIONS,
    FEATURES,
)
from taskcreds.policy._generate import GeneratedPolicies, generate
from taskcreds.policy._permissions import POLICY_VERSION as POLICY_VERSION
from taskcreds.policy._permissions import SID_KMS as SID_KMS
from taskcreds.policy._permissions import SID_LIST as SID_LIST
from taskcreds.policy._permissions import SID_MULTIPART_LIST as SID_MULTIPART_LIST
from taskcreds.policy._permissions import SID_OBJECTS as SID_OBJECTS
from taskcreds.policy._permissions import permissions_policy
from taskcreds.policy._request import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE
from taskcreds.policy._request import (
    DEFAULT_ROLE_NAME,
    PLACEHOLDER_ACCOUNT,
    PLATFORMS,
    PolicyRequest,
    parse_features,
)
from taskcreds.policy._request import DEFAULT_SERVICE_ACCOUNT as DEFAULT_SERVICE_ACCOUNT
from taskcreds.policy._trust import ECS_TASKS_PRINCIPAL as ECS_TASKS_PRINCIPAL
from taskcreds.policy._trust import EKS_PODS_PRINCIPAL as EKS_PODS_PRINCIPAL
from taskcreds.policy._trust import SID_TRUST as SID_TRUST
from taskcreds.policy._trust import SID_TRUST_EKS as SID_TRUST_EKS
from taskcreds.policy._trust import trust_policy

__all__ = [
    "ACTION_PURPOSES",
    "DEFAULT_FEATURES",
    "DEFAULT_ROLE_NAME",
    "FEATURES",
    "FEATURE_ACTIONS",
    "PLACEHOLDER_ACCOUNT",
    "PLATFORMS",
    "GeneratedPolicies",
    "PolicyRequest",
    "generate",
    "kubernetes_part",
    "parse_features",
    "permissions_policy",
    "pod_identity_association",
    "task_definition",
    "trust_policy",
]
