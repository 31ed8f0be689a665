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
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskcreds import environment as env
from taskcreds.errors import ConfigError, KeyOutsidePrefixError
from taskcreds.upload.keys import normalize_prefix

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

POLICY_VERSION = "2012-10-17"
#: Every feature, in the order documented and printed.
FEATURES = ("upload", "multipart", "overwrite-check", "tags", "read", "list")
DEFAULT_FEATURES = ("upload", "multipart")
DEFAULT_ROLE_NAME = "taskcreds-app"
#: Put in place of the account when none is given: not a valid account, so the policy cannot be
#: applied by mistake with a made-up one.
PLACEHOLDER_ACCOUNT = "<ACCOUNT_ID>"
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
EKS_PODS_PRINCIPAL = "pods.eks.amazonaws.com"
#: Where the role is used: ECS tasks (task role) or EKS pods (Pod Identity).
PLATFORMS = ("ecs", "eks")
DEFAULT_NAMESPACE = "default"
DEFAULT_SERVICE_ACCOUNT = "taskcreds-app"
#: Put in the association command in place of the EKS cluster when none is given.
PLACEHOLDER_CLUSTER = "<CLUSTER_NAME>"
#: The container the task definition fragment names (rename it to yours).
CONTAINER_NAME = "app"

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

_OBJECT_ACTIONS = frozenset(
    {"s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectTagging", "s3:GetObject"}
)

SID_OBJECTS = "AppObjectsUnderPrefix"
SID_LIST = "ListAppPrefixOnly"
SID_MULTIPART_LIST = "ListMultipartUploadsInBucket"
SID_KMS = "UseBucketKmsKeyViaS3"
SID_TRUST = "EcsTasksOfThisAccountOnly"
SID_TRUST_EKS = "EksPodIdentityForThisServiceAccount"

_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
_PARTITION = r"aws|aws-cn|aws-us-gov"
_KMS_KEY_ARN = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):kms:(?P<region>[a-z]{{2}}(-[a-z]+)+-[0-9]{{1,2}})"
    r":(?P<account>[0-9]{12}):key/"
    r"(?P<key>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
)
_CLUSTER = re.compile(r"[A-Za-z0-9_-]{1,255}")
# EKS: CreateCluster's name pattern, at most 100 characters.
_EKS_CLUSTER = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}")
# Kubernetes: a namespace is an RFC 1123 label, a service account name an RFC 1123 subdomain.
_K8S_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_NAMESPACE = re.compile(_K8S_LABEL)
_SERVICE_ACCOUNT = re.compile(rf"(?=.{{1,253}}\Z){_K8S_LABEL}(?:\.{_K8S_LABEL})*", re.S)
_ROLE_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
# Every pattern above is used with fullmatch(): with match() and '$', "app-a\n" would pass (a '$'
# matches before a trailing newline) and land inside an ARN.


@dataclass(frozen=True)
class PolicyRequest:
    """What to generate for; :meth:`validated` checks every field and normalises the prefix."""

    bucket: str
    prefix: str = ""
    features: tuple[str, ...] = DEFAULT_FEATURES
    kms_key_arn: str | None = None
    account: str | None = None
    cluster: str | None = None
    region: str | None = None
    role_name: str = DEFAULT_ROLE_NAME
    #: ``ecs`` (task role) or ``eks`` (EKS Pod Identity).
    platform: str = "ecs"
    #: EKS only: the Kubernetes namespace and service account (default ``default``,
    #: ``taskcreds-app``); ``cluster`` is then the EKS cluster.
    namespace: str | None = None
    service_account: str | None = None

    def validated(self) -> PolicyRequest:
        """A copy with the prefix normalised (``app`` -> ``app/``) and the features in the
        documented order; raises :class:`~taskcreds.errors.ConfigError` naming the bad input."""
        _check_bucket(self.bucket)
        prefix = _checked_prefix(self.prefix, self.bucket)
        features = _checked_features(self.features)
        if self.kms_key_arn is not None:
            _check_kms_key(self.kms_key_arn)
        if self.account is not None and not _ACCOUNT.fullmatch(self.account):
            raise ConfigError(
                f"account {self.account!r} is not a 12-digit AWS account id",
                hint="give --account as 12 digits, such as 123456789012",
            )
        if self.region is not None and not _REGION.fullmatch(self.region):
            raise ConfigError(
                f"region {self.region!r} is not an AWS Region name",
                hint="give --region like us-east-1 or eu-central-1",
            )
        if self.platform not in PLATFORMS:
            raise ConfigError(
                f"platform {self.platform!r} is not one of {', '.join(PLATFORMS)}",
                hint="--platform ecs (task role, the default) or eks (EKS Pod Identity)",
            )
        eks = self.platform == "eks"
        if self.cluster is not None and not eks and not _CLUSTER.fullmatch(self.cluster):
            raise ConfigError(
                f"cluster {self.cluster!r} is not an ECS cluster name",
                hint="up to 255 letters, digits, hyphens and underscores",
            )
        if self.cluster is not None and eks and not _EKS_CLUSTER.fullmatch(self.cluster):
            raise ConfigError(
                f"cluster {self.cluster!r} is not an EKS cluster name",
                hint="1-100 letters, digits, hyphens and underscores, starting with a letter "
                "or digit",
            )
        if not eks:
            for option, value in (
                ("--namespace", self.namespace),
                ("--service-account", self.service_account),
            ):
                if value is not None:
                    raise ConfigError(
                        f"{option} is for --platform eks; ECS tasks have no Kubernetes "
                        "service account",
                        hint="add --platform eks, or leave out " + option,
                    )
        if self.namespace is not None and not _NAMESPACE.fullmatch(self.namespace):
            raise ConfigError(
                f"namespace {self.namespace!r} is not a Kubernetes namespace name",
                hint="1-63 lowercase letters, digits and hyphens, starting and ending with a "
                "letter or digit",
            )
        if self.service_account is not None and not _SERVICE_ACCOUNT.fullmatch(
            self.service_account
        ):
            raise ConfigError(
                f"service account {self.service_account!r} is not a Kubernetes service account "
                "name",
                hint="lowercase letters, digits, '-' and '.', starting and ending with a letter "
                "or digit (at most 253)",
            )
        if not _ROLE_NAME.fullmatch(self.role_name):
            raise ConfigError(
                f"role name {self.role_name!r} is not a valid IAM role name",
                hint="1-64 letters, digits and +=,.@_-",
            )
        _check_partitions(self.kms_key_arn, self.region)
        return PolicyRequest(
            bucket=self.bucket,
            prefix=prefix,
            features=features,
            kms_key_arn=self.kms_key_arn,
            account=self.account,
            cluster=self.cluster,
            region=self.region,
            role_name=self.role_name,
            platform=self.platform,
            namespace=(self.namespace or DEFAULT_NAMESPACE) if eks else None,
            service_account=(self.service_account or DEFAULT_SERVICE_ACCOUNT) if eks else None,
        )

    @property
    def partition(self) -> str:
        """``aws``, ``aws-cn`` or ``aws-us-gov``: from the KMS key ARN, else the Region."""
        if self.kms_key_arn is not None:
            return self.kms_key_arn.split(":", 2)[1]
        return _region_partition(self.region)

    @property
    def account_or_placeholder(self) -> str:
        return self.account if self.account is not None else PLACEHOLDER_ACCOUNT

    @property
    def role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_or_placeholder}:role/{self.role_name}"


@dataclass(frozen=True)
class GeneratedPolicies:
    """The documents, each statement's one-line explanation, and warnings for stderr.

    ECS: ``task_definition`` is set, ``kubernetes`` and ``pod_identity_association`` are None.
    EKS: the other way round.
    """

    request: PolicyRequest
    permissions_policy: dict[str, Any]
    trust_policy: dict[str, Any]
    task_definition: dict[str, Any] | None
    explanations: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    kubernetes: dict[str, Any] | None = None
    pod_identity_association: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        """The JSON output: the permissions and trust policies, then the platform's part(s)."""
        document: dict[str, Any] = {
            "permissions_policy": self.permissions_policy,
            "trust_policy": self.trust_policy,
        }
        if self.task_definition is not None:
            document["task_definition"] = self.task_definition
        if self.kubernetes is not None:
            document["kubernetes"] = self.kubernetes
        if self.pod_identity_association is not None:
            document["pod_identity_association"] = self.pod_identity_association
        return document


def parse_features(text: str) -> tuple[str, ...]:
    """``"upload, tags"`` -> ``("upload", "tags")``; an unknown name raises ConfigError."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    return _checked_features(names)


def generate(request: PolicyRequest) -> GeneratedPolicies:
    """Validate ``request`` and build the documents (see the module docstring)."""
    request = request.validated()
    permissions = permissions_policy(request)
    trust = trust_policy(request)
    explanations = _explanations(request, permissions, trust)
    eks = request.platform == "eks"
    return GeneratedPolicies(
        request=request,
        permissions_policy=permissions,
        trust_policy=trust,
        task_definition=None if eks else task_definition(request),
        explanations=explanations,
        warnings=tuple(_warnings(request)),
        kubernetes=kubernetes_part(request) if eks else None,
        pod_identity_association=pod_identity_association(request) if eks else None,
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


def trust_policy(request: PolicyRequest) -> dict[str, Any]:
    """Who may assume the role: ECS tasks of this account (and Region, and cluster) only; for
    EKS, Pod Identity for this namespace and service account (and cluster) only."""
    if request.platform == "eks":
        return _eks_trust_policy(request)
    account = request.account_or_placeholder
    region = request.region or "*"
    resource = f"task/{request.cluster}/*" if request.cluster else "*"
    source_arn = f"arn:{request.partition}:ecs:{region}:{account}:{resource}"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": SID_TRUST,
                "Effect": "Allow",
                "Principal": {"Service": ECS_TASKS_PRINCIPAL},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": source_arn},
                    "StringEquals": {"aws:SourceAccount": account},
                },
            }
        ],
    }


def _eks_trust_policy(request: PolicyRequest) -> dict[str, Any]:
    # Pod Identity tags the session with the pod's cluster, namespace and service account (unless
    # the association disables session tags): conditions on those tags keep other associations
    # in the account from using this role.
    tags: dict[str, list[str]] = {}
    if request.cluster is not None:
        tags["aws:RequestTag/eks-cluster-name"] = [request.cluster]
    tags["aws:RequestTag/kubernetes-namespace"] = [request.namespace or DEFAULT_NAMESPACE]
    tags["aws:RequestTag/kubernetes-service-account"] = [
        request.service_account or DEFAULT_SERVICE_ACCOUNT
    ]
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": SID_TRUST_EKS,
                "Effect": "Allow",
                "Principal": {"Service": EKS_PODS_PRINCIPAL},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": tags},
            }
        ],
    }


def task_definition(request: PolicyRequest) -> dict[str, Any]:
    """The part of a task definition that gives the task the role and tells the uploader where."""
    return {
        "taskRoleArn": request.role_arn,
        "containerDefinitions": [
            {
                "name": CONTAINER_NAME,
                "environment": [
                    {"name": env.BUCKET, "value": request.bucket},
                    {"name": env.PREFIX, "value": request.prefix},
                ],
            }
        ],
    }


def kubernetes_part(request: PolicyRequest) -> dict[str, Any]:
    """EKS: the ServiceAccount to create, and what the pod spec needs to use it."""
    namespace = request.namespace or DEFAULT_NAMESPACE
    account = request.service_account or DEFAULT_SERVICE_ACCOUNT
    return {
        "serviceAccount": {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": namespace},
        },
        "podSpec": {
            "serviceAccountName": account,
            "containers": [
                {
                    "name": CONTAINER_NAME,
                    "env": [
                        {"name": env.BUCKET, "value": request.bucket},
                        {"name": env.PREFIX, "value": request.prefix},
                    ],
                }
            ],
        },
    }


def pod_identity_association(request: PolicyRequest) -> dict[str, Any]:
    """EKS: the association that binds the role to the service account, and the command for it."""
    cluster = request.cluster or PLACEHOLDER_CLUSTER
    namespace = request.namespace or DEFAULT_NAMESPACE
    account = request.service_account or DEFAULT_SERVICE_ACCOUNT
    argv = [
        "aws",
        "eks",
        "create-pod-identity-association",
        "--cluster-name",
        cluster,
        "--namespace",
        namespace,
        "--service-account",
        account,
        "--role-arn",
        request.role_arn,
    ]
    if request.region is not None:
        argv += ["--region", request.region]
    return {
        "clusterName": cluster,
        "namespace": namespace,
        "serviceAccount": account,
        "roleArn": request.role_arn,
        "command": shlex.join(argv),
    }


# -- explanations and warnings -------------------------------------------------------------------


def _explanations(
    request: PolicyRequest, permissions: Mapping[str, Any], trust: Mapping[str, Any]
) -> dict[str, str]:
    where = f"s3://{request.bucket}/{request.prefix}"
    texts: dict[str, str] = {}
    for statement in permissions["Statement"]:
        sid = statement["Sid"]
        purposes = "; ".join(f"{a}: {ACTION_PURPOSES[a]}" for a in statement["Action"])
        if sid == SID_OBJECTS:
            texts[sid] = f"objects under {where} only. {purposes}"
        elif sid == SID_LIST:
            scope = f"only prefixes under {request.prefix!r}" if request.prefix else "any prefix"
            texts[sid] = f"listing {request.bucket}, {scope}. {purposes}"
        elif sid == SID_MULTIPART_LIST:
            texts[sid] = (
                f"the whole bucket {request.bucket} (S3 has no s3:prefix condition for this "
                "action): the role sees keys and upload ids of other prefixes' uploads in "
                f"progress, but can abort or write none outside {where}. {purposes}"
            )
        elif sid == SID_KMS:
            texts[sid] = (
                "the bucket's SSE-KMS key, only when S3 uses it on the role's behalf "
                f"(kms:ViaService). {purposes}"
            )
    statement = trust["Statement"][0]
    conditions = statement["Condition"]
    if request.platform == "eks":
        tags = conditions["StringEquals"]
        cluster = tags.get("aws:RequestTag/eks-cluster-name", ["any cluster"])[0]
        texts[statement["Sid"]] = (
            f"{EKS_PODS_PRINCIPAL} (EKS Pod Identity) may assume the role and tag the session "
            "only for pods of service account "
            f"{tags['aws:RequestTag/kubernetes-namespace'][0]}/"
            f"{tags['aws:RequestTag/kubernetes-service-account'][0]} in {cluster} (by the "
            "session tags Pod Identity sets: keep them enabled on the association)"
        )
        return texts
    texts[statement["Sid"]] = (
        f"{ECS_TASKS_PRINCIPAL} may assume the role only for a task whose source ARN matches "
        f"{conditions['ArnLike']['aws:SourceArn']} in account "
        f"{conditions['StringEquals']['aws:SourceAccount']} (against the confused deputy)"
    )
    return texts


def _warnings(request: PolicyRequest) -> list[str]:
    warnings = []
    if request.account is None:
        warnings.append(
            f"no --account: the policies say {PLACEHOLDER_ACCOUNT}; "
            "give --account to get policies you can apply"
        )
    if request.prefix == "":
        warnings.append(
            f"no --prefix: the role may use the whole bucket {request.bucket}, not one prefix"
        )
    if request.platform == "eks" and request.cluster is None:
        warnings.append(
            f"no --cluster: the association command says {PLACEHOLDER_CLUSTER}, and the trust "
            "policy allows the namespace and service account in any cluster of the account"
        )
    if request.platform == "ecs" and request.cluster is not None:
        warnings.append(
            "--cluster: AWS documents aws:SourceArn for task roles only as "
            "arn:aws:ecs:REGION:ACCOUNT:*; check that a task of that cluster still gets "
            "credentials before relying on the cluster-scoped form"
        )
    if request.kms_key_arn is not None and request.region is not None:
        key_region = request.kms_key_arn.split(":")[3]
        if key_region != request.region:
            warnings.append(
                f"the KMS key is in {key_region} and --region is {request.region}: SSE-KMS "
                "needs the key in the bucket's Region (tasks in another Region are fine)"
            )
    if "upload" not in request.features and "multipart" not in request.features:
        warnings.append("neither upload nor multipart chosen: the role cannot write anything")
    return warnings


# -- validation ------------------------------------------------------------------------------------


def _checked_features(names: Iterable[str]) -> tuple[str, ...]:
    chosen = list(names)
    unknown = [name for name in chosen if name not in FEATURES]
    if unknown:
        raise ConfigError(
            f"unknown feature(s): {', '.join(unknown)}; valid features: {', '.join(FEATURES)}",
            hint=f"for example --features {','.join(DEFAULT_FEATURES)},tags",
        )
    if not chosen:
        raise ConfigError(
            f"no features chosen; valid features: {', '.join(FEATURES)}",
            hint=f"the default is --features {','.join(DEFAULT_FEATURES)}",
        )
    return tuple(feature for feature in FEATURES if feature in chosen)


def _check_bucket(bucket: str) -> None:
    problem = _bucket_problem(bucket)
    if problem is not None:
        raise ConfigError(
            f"bucket {bucket!r} is not a valid S3 bucket name: {problem}",
            hint="3-63 characters: lowercase letters, digits, dots and hyphens, starting and "
            "ending with a letter or digit",
        )


def _bucket_problem(bucket: str) -> str | None:
    if not 3 <= len(bucket) <= 63:
        return f"it is {len(bucket)} characters long"
    if not _BUCKET_CHARS.fullmatch(bucket):
        return "it has a character other than a-z, 0-9, '.' and '-', or starts or ends with one"
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return "it has two adjacent periods, or a period next to a hyphen"
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        pass
    else:
        return "it is formatted as an IP address"
    for start in _BUCKET_BAD_PREFIXES:
        if bucket.startswith(start):
            return f"it starts with the reserved {start!r}"
    for end in _BUCKET_BAD_SUFFIXES:
        if bucket.endswith(end):
            return f"it ends with the reserved {end!r}"
    return None


def _checked_prefix(prefix: str, bucket: str) -> str:
    try:
        normalized = normalize_prefix(prefix, bucket=bucket)
    except KeyOutsidePrefixError as exc:
        raise ConfigError(exc.message, hint=exc.hint) from exc
    # In a policy's Resource and in StringLike, '*' and '?' are wildcards and '${' starts a
    # policy variable: a prefix holding them would grant more than the prefix.
    for special in ("*", "?", "${"):
        if special in normalized:
            raise ConfigError(
                f"prefix {normalized!r} contains {special!r}, which IAM policies read as a "
                "wildcard or variable: the policy would reach beyond the prefix",
                hint="use a prefix without '*', '?' and '${'",
            )
    return normalized


def _check_kms_key(arn: str) -> None:
    if _KMS_KEY_ARN.fullmatch(arn):
        return
    hint = "give the key ARN: arn:aws:kms:REGION:ACCOUNT:key/KEY-ID"
    if ":alias/" in arn:
        hint = (
            "IAM grants kms:GenerateDataKey and kms:Decrypt on the key ARN, not an alias: "
            "give arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (aws kms describe-key --key-id ALIAS)"
        )
    raise ConfigError(f"KMS key {arn!r} is not a KMS key ARN", hint=hint)


def _check_partitions(kms_key_arn: str | None, region: str | None) -> None:
    if kms_key_arn is None or region is None:
        return
    key_partition = kms_key_arn.split(":", 2)[1]
    if key_partition != _region_partition(region):
        raise ConfigError(
            f"the KMS key is in partition {key_partition} but Region {region} is in "
            f"{_region_partition(region)}",
            hint="give a key and a Region of the same partition",
        )


def _region_partition(region: str | None) -> str:
    if region is None:
        return "aws"
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _s3_service(request: PolicyRequest) -> str:
    """``s3.REGION.amazonaws.com`` for the key's Region (SSE-KMS keys live in the bucket's)."""
    assert request.kms_key_arn is not None
    key_region = request.kms_key_arn.split(":")[3]
    suffix = "amazonaws.com.cn" if request.partition == "aws-cn" else "amazonaws.com"
    return f"s3.{key_region}.{suffix}"
