"""taskcreds.policy: the permissions policy.

That the generated permissions are enough and no more is proven against a real IAM engine in
tests/integration/test_policy_proof.py; here the documents themselves are pinned down.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest

from taskcreds.policy import DEFAULT_FEATURES, FEATURE_ACTIONS, FEATURES, PolicyRequest, generate

from ._policy_requests import ACCOUNT, KEY, all_actions, policy, statements


def test_default_features_exact_document() -> None:
    assert DEFAULT_FEATURES == ("upload", "multipart")
    assert policy() == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AppObjectsUnderPrefix",
                "Effect": "Allow",
                "Action": ["s3:AbortMultipartUpload", "s3:PutObject"],
                "Resource": "arn:aws:s3:::app-a/uploads/*",
            },
            {
                "Sid": "ListMultipartUploadsInBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucketMultipartUploads"],
                "Resource": "arn:aws:s3:::app-a",
            },
        ],
    }


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        ("upload", {"s3:PutObject"}),
        ("multipart", {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucketMultipartUploads"}),
        ("overwrite-check", set()),
        ("tags", {"s3:PutObjectTagging"}),
        ("read", {"s3:GetObject"}),
        ("list", {"s3:ListBucket"}),
    ],
)
def test_each_feature_adds_exactly_its_actions(feature: str, expected: set[str]) -> None:
    assert set(FEATURE_ACTIONS[feature]) == expected
    assert all_actions(policy(features=(feature,))) == expected


def test_overwrite_check_changes_nothing() -> None:
    assert policy(features=("upload", "overwrite-check")) == policy(features=("upload",))


def test_list_is_conditioned_on_the_prefix() -> None:
    listing = statements(policy(features=("list",)))["ListAppPrefixOnly"]
    assert listing["Resource"] == "arn:aws:s3:::app-a"
    assert listing["Action"] == ["s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["uploads/*"]}}


def test_multipart_listing_is_bucket_wide_without_condition() -> None:
    # S3 has no s3:prefix condition key for ListBucketMultipartUploads.
    listing = statements(policy())["ListMultipartUploadsInBucket"]
    assert listing["Resource"] == "arn:aws:s3:::app-a"
    assert "Condition" not in listing


@pytest.mark.parametrize(
    "chosen",
    [c for n in range(1, len(FEATURES) + 1) for c in itertools.combinations(FEATURES, n)],
)
def test_every_combination_is_scoped_sorted_and_minimal(chosen: tuple[str, ...]) -> None:
    document = policy(features=chosen)
    wanted = {a for f in chosen for a in FEATURE_ACTIONS[f]}
    assert all_actions(document) == wanted
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == sorted(statement["Action"])
        assert re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"])
        if statement["Sid"] == "AppObjectsUnderPrefix":
            assert statement["Resource"] == "arn:aws:s3:::app-a/uploads/*"
        else:
            assert statement["Resource"] == "arn:aws:s3:::app-a"
            assert statement["Action"] in (["s3:ListBucket"], ["s3:ListBucketMultipartUploads"])
    assert "*" not in json.dumps(document).replace("uploads/*", "")


def test_output_is_deterministic_whatever_the_feature_order() -> None:
    one = generate(PolicyRequest("app-a", "p", features=("list", "tags", "upload", "read")))
    two = generate(PolicyRequest("app-a", "p/", features=("read", "upload", "tags", "list")))
    assert json.dumps(one.document()) == json.dumps(two.document())
    assert one.request.features == ("upload", "tags", "read", "list")


def test_kms_key_adds_generate_data_key_and_decrypt_via_s3() -> None:
    for features in (("upload",), DEFAULT_FEATURES, FEATURES):
        kms = statements(policy(features=features, kms_key_arn=KEY))["UseBucketKmsKeyViaS3"]
        assert kms == {
            "Sid": "UseBucketKmsKeyViaS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": KEY,
            "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
        }
    assert "UseBucketKmsKeyViaS3" not in statements(policy())


def test_kms_multi_region_key_and_china_partition() -> None:
    china = "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-" + "0" * 32
    generated = generate(PolicyRequest("app-a", "u/", kms_key_arn=china, account=ACCOUNT))
    found = statements(generated.permissions_policy)
    assert found["AppObjectsUnderPrefix"]["Resource"] == "arn:aws-cn:s3:::app-a/u/*"
    assert found["UseBucketKmsKeyViaS3"]["Condition"]["StringEquals"] == {
        "kms:ViaService": "s3.cn-north-1.amazonaws.com.cn"
    }
    assert generated.task_definition is not None  # ECS: always a task definition fragment
    assert generated.task_definition["taskRoleArn"].startswith("arn:aws-cn:iam::")


def test_empty_prefix_means_whole_bucket_and_warns() -> None:
    generated = generate(PolicyRequest("app-a", "", features=("upload", "list"), account=ACCOUNT))
    found = statements(generated.permissions_policy)
    assert found["AppObjectsUnderPrefix"]["Resource"] == "arn:aws:s3:::app-a/*"
    assert "Condition" not in found["ListAppPrefixOnly"]
    assert any("whole bucket" in w for w in generated.warnings)
