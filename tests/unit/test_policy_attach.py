"""taskcreds.policy: the task definition fragment, the Kubernetes part and the Pod Identity association.

That the generated permissions are enough and no more is proven against a real IAM engine in
tests/integration/test_policy_proof.py; here the documents themselves are pinned down.
"""

from __future__ import annotations

from taskcreds.policy import PolicyRequest, generate

from ._policy_requests import ACCOUNT, EKS


def test_task_definition_fragment() -> None:
    generated = generate(PolicyRequest("app-a", "uploads", account=ACCOUNT, role_name="web"))
    assert generated.task_definition == {
        "taskRoleArn": "arn:aws:iam::123456789012:role/web",
        "containerDefinitions": [
            {
                "name": "app",
                "environment": [
                    {"name": "TASKCREDS_BUCKET", "value": "app-a"},
                    {"name": "TASKCREDS_PREFIX", "value": "uploads/"},
                ],
            }
        ],
    }


# -- EKS Pod Identity ------------------------------------------------------------------------------


def test_eks_replaces_the_task_definition_with_kubernetes_and_the_association() -> None:
    generated = generate(
        PolicyRequest(
            "app-a", "u", cluster="prod", namespace="web", service_account="uploader", **EKS
        )
    )
    assert generated.task_definition is None
    document = generated.document()
    assert list(document) == [
        "permissions_policy",
        "trust_policy",
        "kubernetes",
        "pod_identity_association",
    ]
    assert document["kubernetes"] == {
        "serviceAccount": {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "uploader", "namespace": "web"},
        },
        "podSpec": {
            "serviceAccountName": "uploader",
            "containers": [
                {
                    "name": "app",
                    "env": [
                        {"name": "TASKCREDS_BUCKET", "value": "app-a"},
                        {"name": "TASKCREDS_PREFIX", "value": "u/"},
                    ],
                }
            ],
        },
    }
    assert document["pod_identity_association"] == {
        "clusterName": "prod",
        "namespace": "web",
        "serviceAccount": "uploader",
        "roleArn": "arn:aws:iam::123456789012:role/taskcreds-app",
        "command": "aws eks create-pod-identity-association --cluster-name prod --namespace web "
        "--service-account uploader --role-arn arn:aws:iam::123456789012:role/taskcreds-app "
        "--region us-east-1",
    }


def test_eks_defaults_and_placeholders_warn() -> None:
    generated = generate(PolicyRequest("app-a", "u/", platform="eks"))
    assert generated.request.namespace == "default"
    assert generated.request.service_account == "taskcreds-app"
    tags = generated.trust_policy["Statement"][0]["Condition"]["StringEquals"]
    assert "aws:RequestTag/eks-cluster-name" not in tags  # no cluster given: any cluster
    association = generated.pod_identity_association
    assert association is not None
    assert association["command"] == (
        "aws eks create-pod-identity-association --cluster-name '<CLUSTER_NAME>' --namespace "
        "default --service-account taskcreds-app --role-arn "
        "'arn:aws:iam::<ACCOUNT_ID>:role/taskcreds-app'"
    )
    assert any("--cluster" in w for w in generated.warnings)
    assert any("--account" in w for w in generated.warnings)


def test_ecs_is_the_default_and_unchanged() -> None:
    generated = generate(PolicyRequest("app-a", "u/", account=ACCOUNT))
    assert generated.request.platform == "ecs"
    assert generated.request.namespace is None
    assert set(generated.document()) == {"permissions_policy", "trust_policy", "task_definition"}
    assert generated.kubernetes is None
    assert generated.pod_identity_association is None
