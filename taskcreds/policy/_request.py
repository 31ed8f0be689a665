"""What to generate for: :class:`PolicyRequest`, and the checks of every field it holds.

Every pattern here is used with ``fullmatch()``: with ``match()`` and ``$``, ``"app-a\\n"`` would
pass (a ``$`` matches before a trailing newline) and land inside an ARN.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from taskcreds.errors import ConfigError, KeyOutsidePrefixError
from taskcreds.policy._features import DEFAULT_FEATURES, FEATURES
from taskcreds.upload.keys import normalize_prefix

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_ROLE_NAME",
    "DEFAULT_SERVICE_ACCOUNT",
    "PLACEHOLDER_ACCOUNT",
    "PLATFORMS",
    "PolicyRequest",
    "parse_features",
]

DEFAULT_ROLE_NAME = "taskcreds-app"
#: Put in place of the account when none is given: not a valid account, so the policy cannot be
#: applied by mistake with a made-up one.
PLACEHOLDER_ACCOUNT = "<ACCOUNT_ID>"
#: Where the role is used: ECS tasks (task role) or EKS pods (Pod Identity).
PLATFORMS = ("ecs", "eks")
DEFAULT_NAMESPACE = "default"
DEFAULT_SERVICE_ACCOUNT = "taskcreds-app"

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
        _check_cluster(self.cluster, eks=eks)
        if eks:
            _check_kubernetes(self.namespace, self.service_account)
        else:
            _check_no_kubernetes(self.namespace, self.service_account)
        if not _ROLE_NAME.fullmatch(self.role_name):
            raise ConfigError(
                f"role name {self.role_name!r} is not a valid IAM role name",
                hint="1-64 letters, digits and +=,.@_-",
            )
        _check_partitions(self.kms_key_arn, self.region)
        return dataclasses.replace(
            self,
            prefix=prefix,
            features=features,
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


def parse_features(text: str) -> tuple[str, ...]:
    """``"upload, tags"`` -> ``("upload", "tags")``; an unknown name raises ConfigError."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    return _checked_features(names)


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


def _check_cluster(cluster: str | None, *, eks: bool) -> None:
    if cluster is not None and not eks and not _CLUSTER.fullmatch(cluster):
        raise ConfigError(
            f"cluster {cluster!r} is not an ECS cluster name",
            hint="up to 255 letters, digits, hyphens and underscores",
        )
    if cluster is not None and eks and not _EKS_CLUSTER.fullmatch(cluster):
        raise ConfigError(
            f"cluster {cluster!r} is not an EKS cluster name",
            hint="1-100 letters, digits, hyphens and underscores, starting with a letter or digit",
        )


def _check_no_kubernetes(namespace: str | None, service_account: str | None) -> None:
    for option, value in (("--namespace", namespace), ("--service-account", service_account)):
        if value is not None:
            raise ConfigError(
                f"{option} is for --platform eks; ECS tasks have no Kubernetes service account",
                hint="add --platform eks, or leave out " + option,
            )


def _check_kubernetes(namespace: str | None, service_account: str | None) -> None:
    if namespace is not None and not _NAMESPACE.fullmatch(namespace):
        raise ConfigError(
            f"namespace {namespace!r} is not a Kubernetes namespace name",
            hint="1-63 lowercase letters, digits and hyphens, starting and ending with a "
            "letter or digit",
        )
    if service_account is not None and not _SERVICE_ACCOUNT.fullmatch(service_account):
        raise ConfigError(
            f"service account {service_account!r} is not a Kubernetes service account name",
            hint="lowercase letters, digits, '-' and '.', starting and ending with a letter "
            "or digit (at most 253)",
        )


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
