"""taskcreds.policy: PolicyRequest and its checks: what is refused, naming the field.

That the generated permissions are enough and no more is proven against a real IAM engine in
tests/integration/test_policy_proof.py; here the documents themselves are pinned down.
"""

from __future__ import annotations

import pytest

from taskcreds.cli import main
from taskcreds.errors import ConfigError
from taskcreds.policy import FEATURES, PolicyRequest, generate, parse_features

from ._policy_requests import ACCOUNT, KEY


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


# -- EKS Pod Identity ------------------------------------------------------------------------------


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
