"""`taskcreds policy`: the command, its output and docs/iam.md.

That the generated permissions are enough and no more is proven against a real IAM engine in
tests/integration/test_policy_proof.py; here the documents themselves are pinned down.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from taskcreds.cli import main
from taskcreds.policy import FEATURE_ACTIONS

from ._policy_requests import ACCOUNT, KEY

ROOT = Path(__file__).resolve().parents[2]


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


# -- docs/iam.md shows the real output -------------------------------------------------------------


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


# -- EKS Pod Identity ------------------------------------------------------------------------------


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
