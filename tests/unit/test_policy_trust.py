"""taskcreds.policy: the trust policies for ECS tasks and EKS Pod Identity.

That the generated permissions are enough and no more is proven against a real IAM engine in
tests/integration/test_policy_proof.py; here the documents themselves are pinned down.
"""

from __future__ import annotations

import json

from taskcreds.policy import PLACEHOLDER_ACCOUNT, PolicyRequest, generate

from ._policy_requests import ACCOUNT, EKS


def test_trust_policy_with_account_and_region() -> None:
    generated = generate(PolicyRequest("app-a", "u/", account=ACCOUNT, region="eu-west-1"))
    assert generated.trust_policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EcsTasksOfThisAccountOnly",
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": "arn:aws:ecs:eu-west-1:123456789012:*"},
                    "StringEquals": {"aws:SourceAccount": "123456789012"},
                },
            }
        ],
    }
    assert generated.warnings == ()


def test_trust_policy_with_cluster_and_any_region() -> None:
    generated = generate(PolicyRequest("app-a", "u/", account=ACCOUNT, cluster="prod"))
    condition = generated.trust_policy["Statement"][0]["Condition"]
    assert condition["ArnLike"] == {"aws:SourceArn": "arn:aws:ecs:*:123456789012:task/prod/*"}
    assert any("--cluster" in w for w in generated.warnings)


def test_without_account_a_placeholder_and_a_warning() -> None:
    generated = generate(PolicyRequest("app-a", "u/"))
    text = json.dumps(generated.document())
    assert PLACEHOLDER_ACCOUNT in text
    assert "123456789012" not in text
    assert any("--account" in w for w in generated.warnings)


# -- EKS Pod Identity ------------------------------------------------------------------------------


def test_eks_trust_policy_exact_shape() -> None:
    generated = generate(
        PolicyRequest(
            "app-a", "u/", cluster="prod", namespace="web", service_account="uploader", **EKS
        )
    )
    assert generated.trust_policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EksPodIdentityForThisServiceAccount",
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {
                        "aws:RequestTag/eks-cluster-name": ["prod"],
                        "aws:RequestTag/kubernetes-namespace": ["web"],
                        "aws:RequestTag/kubernetes-service-account": ["uploader"],
                    }
                },
            }
        ],
    }
    assert generated.warnings == ()
    # The permissions do not depend on the platform.
    ecs = generate(PolicyRequest("app-a", "u/", account=ACCOUNT, region="us-east-1"))
    assert generated.permissions_policy == ecs.permissions_policy
