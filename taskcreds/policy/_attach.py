"""How the role reaches the app: the ECS task definition fragment, or for EKS the Kubernetes
ServiceAccount, the pod spec part and the Pod Identity association."""

from __future__ import annotations

import shlex
from typing import Any

from taskcreds import environment as env
from taskcreds.policy._request import DEFAULT_NAMESPACE, DEFAULT_SERVICE_ACCOUNT, PolicyRequest

__all__ = ["kubernetes_part", "pod_identity_association", "task_definition"]

#: Put in the association command in place of the EKS cluster when none is given.
PLACEHOLDER_CLUSTER = "<CLUSTER_NAME>"
#: The container the task definition fragment names (rename it to yours).
CONTAINER_NAME = "app"


def _app_environment(request: PolicyRequest) -> list[dict[str, str]]:
    """The variables the uploader reads its bucket and prefix from."""
    return [
        {"name": env.BUCKET, "value": request.bucket},
        {"name": env.PREFIX, "value": request.prefix},
    ]


def task_definition(request: PolicyRequest) -> dict[str, Any]:
    """The part of a task definition that gives the task the role and tells the uploader where."""
    return {
        "taskRoleArn": request.role_arn,
        "containerDefinitions": [
            {"name": CONTAINER_NAME, "environment": _app_environment(request)}
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
            "containers": [{"name": CONTAINER_NAME, "env": _app_environment(request)}],
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
