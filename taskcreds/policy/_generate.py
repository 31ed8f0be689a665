"""All the documents for one request, each statement's one-line explanation, and the warnings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taskcreds.policy._attach import (
    PLACEHOLDER_CLUSTER,
    kubernetes_part,
    pod_identity_association,
    task_definition,
)
from taskcreds.policy._features import ACTION_PURPOSES
from taskcreds.policy._permissions import (
    SID_KMS,
    SID_LIST,
    SID_MULTIPART_LIST,
    SID_OBJECTS,
    permissions_policy,
)
from taskcreds.policy._request import PLACEHOLDER_ACCOUNT, PolicyRequest
from taskcreds.policy._trust import ECS_TASKS_PRINCIPAL, EKS_PODS_PRINCIPAL, trust_policy

__all__ = ["GeneratedPolicies", "generate"]


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


def generate(request: PolicyRequest) -> GeneratedPolicies:
    """Validate ``request`` and build the documents (see :mod:`taskcreds.policy`)."""
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
