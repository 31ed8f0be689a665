"""`taskcreds.policy` and `taskcreds policy`: what is generated, for which input, and what is refused.

That the generated permissions are enough and no more is proven against a real IAM engine in
tests/integration/test_policy_proof.py; here the documents themselves are pinned down.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from taskcreds.cli import main
from taskcreds.errors import ConfigError
from taskcreds.policy import (
    DEFAULT_FEATURES,
    FEATURE_ACTIONS,
    FEATURES,
    PLACEHOLDER_ACCOUNT,
    PolicyRequest,
    generate,
    parse_features,
)

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def policy(**kwargs: Any) -> dict[str, Any]:
    request = PolicyRequest(**{"bucket": "app-a", "prefix": "uploads/", **kwargs})
    return generate(request).permissions_policy


def statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def all_actions(document: dict[str, Any]) -> set[str]:
    return {a for s in document["Statement"] for a in s["Action"]}


# -- the permissions policy ----------------------------------------------------------------------


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


# -- trust policy and task definition ------------------------------------------------------------


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


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["abc", "app-a", "my.bucket.2024", "a" * 63, "0a0"])
def test_valid_bucket_names(bucket: str) -> None:
    generate(PolicyRequest(bucket))


@pytest.mark.parametrize(
    "bucket",
    [
        "ab",
        "a" * 64,
        "App-a",
        "app_a",
        "-app",
        "app-",
        ".app",
        "app..a",
        "app.-a",
        "192.168.1.1",
        "xn--app",
        "sthree-app",
        "app-s3alias",
        "app--ol-s3",
        "app a",
        "app/a",
        "",
    ],
)
def test_invalid_bucket_names(bucket: str) -> None:
    with pytest.raises(ConfigError, match="bucket"):
        generate(PolicyRequest(bucket))


@pytest.mark.parametrize(
    ("prefix", "normalized"), [("uploads", "uploads/"), ("a/b/", "a/b/"), ("", "")]
)
def test_prefix_is_normalized(prefix: str, normalized: str) -> None:
    assert generate(PolicyRequest("app-a", prefix)).request.prefix == normalized


@pytest.mark.parametrize("prefix", ["../x", "/abs", "a//b", "a\\b", "a/./b", "x\n"])
def test_prefix_breaking_key_rules_refused(prefix: str) -> None:
    with pytest.raises(ConfigError):
        generate(PolicyRequest("app-a", prefix))


@pytest.mark.parametrize("prefix", ["app*", "app?/", "a/${aws:username}/"])
def test_prefix_with_iam_wildcards_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="wildcard"):
        generate(PolicyRequest("app-a", prefix))


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:kms:us-east-1:123456789012:alias/app",
        "arn:aws:kms:us-east-1:123456789012:key/not-a-uuid",
        "arn:aws:kms:us-east-1:12345:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:s3:::app-a",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        KEY + "x",
    ],
)
def test_bad_kms_key_refused(arn: str) -> None:
    with pytest.raises(ConfigError, match="KMS key ARN"):
        generate(PolicyRequest("app-a", kms_key_arn=arn))


def test_alias_hint_says_use_the_key_arn() -> None:
    with pytest.raises(ConfigError) as info:
        generate(PolicyRequest("app-a", kms_key_arn="arn:aws:kms:us-east-1:123456789012:alias/a"))
    assert info.value.hint is not None
    assert "describe-key" in info.value.hint


def test_kms_partition_must_match_region() -> None:
    with pytest.raises(ConfigError, match="partition"):
        generate(PolicyRequest("app-a", kms_key_arn=KEY, region="cn-north-1"))


def test_kms_key_in_another_region_warns() -> None:
    generated = generate(PolicyRequest("app-a", kms_key_arn=KEY, region="eu-west-1"))
    assert any("Region" in w for w in generated.warnings)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account", "12345678901"),
        ("account", "1234567890123"),
        ("account", "12345678901a"),
        ("region", "us_east_1"),
        ("region", "useast1"),
        ("cluster", "prod/1"),
        ("cluster", ""),
        ("role_name", "a" * 65),
        ("role_name", "bad role"),
    ],
)
def test_bad_fields_refused(field: str, value: str) -> None:
    with pytest.raises(ConfigError):
        generate(PolicyRequest("app-a", **{field: value}))  # type: ignore[arg-type]


def test_parse_features() -> None:
    assert parse_features(" tags, upload ,") == ("upload", "tags")
    with pytest.raises(ConfigError) as info:
        parse_features("upload,nope")
    assert "nope" in info.value.message
    for feature in FEATURES:
        assert feature in info.value.message
    with pytest.raises(ConfigError, match="no features"):
        parse_features(" , ")


# -- the command ---------------------------------------------------------------------------------

TYPICAL = [
    "policy",
    "--bucket",
    "app-a",
    "--prefix",
    "uploads/",
    "--features",
    "upload,multipart,overwrite-check,tags,read,list",
    "--kms-key",
    KEY,
    "--account",
    ACCOUNT,
    "--region",
    "us-east-1",
]


def test_cli_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(TYPICAL) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert set(document) == {"permissions_policy", "trust_policy", "task_definition"}
    assert captured.err == ""
    assert main([*TYPICAL, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == document


def test_cli_warnings_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--bucket", "app-a", "--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)
    assert "--account" in captured.err
    assert "whole bucket" in captured.err


def test_cli_text_has_headings_and_a_line_per_statement(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*TYPICAL, "--format", "text"]) == 0
    out = capsys.readouterr().out
    for heading in ("== Permissions policy", "== Trust policy", "== Task definition fragment"):
        assert heading in out
    for sid in (
        "AppObjectsUnderPrefix",
        "ListAppPrefixOnly",
        "ListMultipartUploadsInBucket",
        "UseBucketKmsKeyViaS3",
        "EcsTasksOfThisAccountOnly",
    ):
        assert re.search(rf"^  - {sid}: \S", out, re.M), sid


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--features", "upload,delete"], "valid features: upload, multipart, overwrite-check"),
        (["--prefix", "../up"], "prefix"),
        (["--account", "42"], "12-digit"),
        (["--kms-key", "alias/app"], "KMS key ARN"),
    ],
)
def test_cli_bad_input_exits_1(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "--bucket", "app-a", *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert main(["policy", "--bucket", "app-a", *args, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    assert document["exit_code"] == 1
    assert message in document["error"]["message"]


def test_cli_bucket_required_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy"]) == 1
    assert main(["policy", "--help"]) == 0
    assert "example:" in capsys.readouterr().out


# -- docs/iam.md shows the real output ------------------------------------------------------------


def test_docs_show_the_generated_output(capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "iam.md").read_text(encoding="utf-8")
    command = "python -m taskcreds " + " ".join(TYPICAL)
    assert command in page
    shown = page.split(command, 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    assert main(TYPICAL) == 0
    assert json.loads(shown) == json.loads(capsys.readouterr().out)
    rows = [line for line in page.splitlines() if line.startswith("| ")]
    for feature, actions in FEATURE_ACTIONS.items():
        start = next(i for i, row in enumerate(rows) if row.startswith(f"| `{feature}` |"))
        # the feature's row and its continuation rows (first cell empty)
        block = [
            rows[start],
            *itertools.takewhile(lambda r: r.startswith("| |"), rows[start + 1 :]),
        ]
        for action in actions:
            assert any(action in row for row in block), (feature, action)


# -- a trailing newline is refused in every validated field ----------------------------------------

VALID = {
    "bucket": "app-a",
    "prefix": "uploads/",
    "kms_key_arn": KEY,
    "account": ACCOUNT,
    "region": "us-east-1",
    "cluster": "prod",
    "role_name": "taskcreds-app",
}


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("bucket", "bucket"),
        ("prefix", "prefix"),
        ("kms_key_arn", "KMS key"),
        ("account", "account"),
        ("region", "region"),
        ("cluster", "cluster"),
        ("role_name", "role name"),
    ],
)
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_a_trailing_newline_is_refused_naming_the_field(
    field: str, named: str, ending: str
) -> None:
    generate(PolicyRequest(**VALID))  # valid as they are
    with pytest.raises(ConfigError) as info:
        generate(PolicyRequest(**{**VALID, field: VALID[field] + ending}))
    assert info.value.message.startswith(f"{named} {VALID[field] + ending!r} ")


def test_a_feature_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown feature"):
        generate(PolicyRequest("app-a", features=("upload\n",)))
    # On the command line, names are comma-separated and stripped: "upload, tags\n" is fine.
    assert parse_features("upload, tags\n") == ("upload", "tags")


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--bucket", "app-a\n", "bucket"),
        ("--prefix", "uploads/\n", "prefix"),
        ("--kms-key", KEY + "\n", "KMS key"),
        ("--account", ACCOUNT + "\n", "account"),
        ("--region", "us-east-1\n", "region"),
        ("--cluster", "prod\n", "cluster"),
        ("--role-name", "taskcreds-app\n", "role name"),
    ],
)
def test_cli_refuses_a_trailing_newline(
    option: str, value: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["policy", "--bucket", "app-a", option, value]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"taskcreds: error: {named} {value!r} ")  # \n as repr shows it
    assert len(captured.err.splitlines()) == 2  # the error and its hint


# -- EKS Pod Identity --------------------------------------------------------------------------------

EKS: dict[str, Any] = {"platform": "eks", "account": ACCOUNT, "region": "us-east-1"}


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


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("platform", "fargate", "platform"),
        ("cluster", "-prod", "cluster"),
        ("cluster", "a" * 101, "cluster"),
        ("cluster", "prod\n", "cluster"),
        ("namespace", "Web", "namespace"),
        ("namespace", "web_1", "namespace"),
        ("namespace", "a" * 64, "namespace"),
        ("namespace", "web\n", "namespace"),
        ("namespace", "", "namespace"),
        ("service_account", "Uploader", "service account"),
        ("service_account", "up..loader", "service account"),
        ("service_account", "-up", "service account"),
        ("service_account", "a" * 254, "service account"),
        ("service_account", "uploader\n", "service account"),
    ],
)
def test_eks_bad_fields_refused_naming_the_field(field: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        generate(PolicyRequest("app-a", **{"platform": "eks", field: value}))  # type: ignore[arg-type]
    assert info.value.message.startswith(f"{named} {value!r} ")


@pytest.mark.parametrize("account", ["uploader", "a.b-c", "a" * 63 + "." + "b" * 63])
def test_eks_valid_service_accounts(account: str) -> None:
    generate(PolicyRequest("app-a", platform="eks", service_account=account))


@pytest.mark.parametrize("field", ["namespace", "service_account"])
def test_kubernetes_fields_need_platform_eks(field: str) -> None:
    with pytest.raises(ConfigError, match="--platform eks"):
        generate(PolicyRequest("app-a", **{field: "web"}))  # type: ignore[arg-type]


EKS_ARGS = [
    "policy",
    "--platform",
    "eks",
    "--bucket",
    "app-a",
    "--prefix",
    "uploads/",
    "--account",
    ACCOUNT,
    "--region",
    "us-east-1",
    "--cluster",
    "prod",
    "--namespace",
    "web",
    "--service-account",
    "uploader",
]


def test_cli_eks_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(EKS_ARGS) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    document = json.loads(captured.out)
    assert "task_definition" not in document
    assert document["trust_policy"]["Statement"][0]["Principal"] == {
        "Service": "pods.eks.amazonaws.com"
    }
    assert document["kubernetes"]["podSpec"]["serviceAccountName"] == "uploader"
    assert document["pod_identity_association"]["command"].startswith(
        "aws eks create-pod-identity-association --cluster-name prod --namespace web "
        "--service-account uploader --role-arn arn:aws:iam::123456789012:role/taskcreds-app"
    )


def test_cli_eks_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*EKS_ARGS, "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "== Task definition" not in out
    for heading in ("== Permissions policy", "== Trust policy", "== Kubernetes", "== Pod Identity"):
        assert heading in out
    assert re.search(r"^  - EksPodIdentityForThisServiceAccount: \S", out, re.M)
    assert re.search(r"^\$ aws eks create-pod-identity-association --cluster-name prod ", out, re.M)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--platform", "eks", "--namespace", "Web"], "namespace 'Web' "),
        (["--platform", "eks", "--service-account", "a_b"], "service account 'a_b' "),
        (["--platform", "eks", "--cluster", "prod\n"], "cluster 'prod\\n' "),
        (["--namespace", "web"], "--platform eks"),
    ],
)
def test_cli_eks_bad_input_exits_1(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "--bucket", "app-a", *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_cli_unknown_platform_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--bucket", "app-a", "--platform", "lambda"]) == 1
    assert "--platform" in capsys.readouterr().err
