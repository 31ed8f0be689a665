"""Who may assume the role: ECS tasks of this account, or EKS Pod Identity for one service
account (and cluster)."""

from __future__ import annotations

from typing import Any

from taskcreds.policy._permissions import POLICY_VERSION
from taskcreds.policy._request import DEFAULT_NAMESPACE, DEFAULT_SERVICE_ACCOUNT, PolicyRequest

__all__ = ["trust_policy"]

ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
EKS_PODS_PRINCIPAL = "pods.eks.amazonaws.com"
SID_TRUST = "EcsTasksOfThisAccountOnly"
SID_TRUST_EKS = "EksPodIdentityForThisServiceAccount"


def trust_policy(request: PolicyRequest) -> dict[str, Any]:
    """Who may assume the role: ECS tasks of this account (and Region, and cluster) only; for
    EKS, Pod Identity for this namespace and service account (and cluster) only."""
    if request.platform == "eks":
        return _eks_trust_policy(request)
    account = request.account_or_placeholder
    region = request.region or "*"
    resource = f"task/{request.cluster}/*" if request.cluster else "*"
    source_arn = f"arn:{request.partition}:ecs:{region}:{account}:{resource}"
    return _one_statement(
        SID_TRUST,
        ECS_TASKS_PRINCIPAL,
        "sts:AssumeRole",
        {
            "ArnLike": {"aws:SourceArn": source_arn},
            "StringEquals": {"aws:SourceAccount": account},
        },
    )


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
    return _one_statement(
        SID_TRUST_EKS,
        EKS_PODS_PRINCIPAL,
        ["sts:AssumeRole", "sts:TagSession"],
        {"StringEquals": tags},
    )


def _one_statement(
    sid: str, service: str, action: str | list[str], condition: dict[str, Any]
) -> dict[str, Any]:
    """A trust policy of one statement: ``service`` may do ``action`` under ``condition``."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": action,
                "Condition": condition,
            }
        ],
    }
