"""The CLI as a task sees it: a private network namespace where 169.254.170.2:80 is the agent.

Only ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (or the Pod Identity variables) is set for the
command under test, exactly as the ECS agent sets it. Nothing here touches the real network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import in_container, python

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("netns")]

ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
RELATIVE = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": f"/v2/credentials/{ID}"}
CANARY = {
    "key": "ASIACANARY0000005678",
    "secret": "CANARYsecret/never+printed/000000000000",
    "token": "CANARYtoken//never+printed",
}


def agent(**faults: Any) -> dict[str, Any]:
    return {"kind": "agent", "credentials_id": ID, "canary": CANARY, "faults": faults}


def doctor_in_container(
    endpoint: dict[str, Any] | None, env: dict[str, str]
) -> tuple[int, dict[str, Any], float]:
    plan = {
        "endpoint": endpoint,
        "commands": [{"argv": python("doctor", "--json", "--timeout", "2"), "env": env}],
    }
    run = in_container(plan)["runs"][0]
    for secret in (CANARY["secret"], CANARY["token"], CANARY["key"]):
        assert secret not in run["stdout"] + run["stderr"]
    return run["code"], json.loads(run["stdout"]), run["seconds"]


def failed_step(report: dict[str, Any]) -> dict[str, Any]:
    return next(step for step in report["steps"] if not step["ok"])


def test_show_with_only_relative_uri_via_serve_local() -> None:
    plan = {
        "endpoint": {"kind": "serve-local", "args": ["--fake", "--credentials-id", ID]},
        "commands": [
            {"argv": python("show", "--json"), "env": RELATIVE},
            {"argv": python("show"), "env": RELATIVE},
            {"argv": python("show", "--quiet"), "env": RELATIVE},
        ],
    }
    as_json, as_text, quiet = in_container(plan)["runs"]
    assert as_json["code"] == 0, as_json["stderr"]
    shown = json.loads(as_json["stdout"])
    assert shown["source"] == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
    assert shown["endpoint"].startswith("http://169.254.170.2/v2/credentials/…")
    assert shown["role_arn"].startswith("arn:aws:iam::")
    assert shown["access_key_id"].startswith("ASIA…")
    assert len(shown["access_key_id"]) == 9
    assert as_text["code"] == 0
    assert "ECS task role" in as_text["stdout"]
    assert quiet == {**quiet, "code": 0, "stdout": "", "stderr": ""}


def test_doctor_all_good() -> None:
    code, report, _ = doctor_in_container(agent(), RELATIVE)
    assert code == 0
    assert all(step["ok"] for step in report["steps"])


def test_doctor_no_variables() -> None:
    code, report, _ = doctor_in_container(agent(), {})
    assert code == 2
    step = failed_step(report)
    assert step["name"] == "environment"
    assert "taskRoleArn" in step["cause"]


def test_doctor_agent_down_refused() -> None:
    code, report, _ = doctor_in_container(None, RELATIVE)
    assert code == 3
    step = failed_step(report)
    assert step["name"] == "tcp connect"
    assert "169.254.170.2:80 refused" in step["detail"]
    assert "ECS_ENABLE_TASK_IAM_ROLE" in step["cause"]


def test_doctor_agent_hanging_times_out_within_deadline() -> None:
    code, report, seconds = doctor_in_container(agent(hang=True), RELATIVE)
    assert code == 3
    step = failed_step(report)
    assert step["name"] == "http"
    assert "hung" in step["cause"]
    assert seconds < 6  # --timeout 2, plus interpreter start


def test_doctor_invalid_id() -> None:
    wrong = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/not-this-task"}
    code, report, _ = doctor_in_container(agent(), wrong)
    assert code == 4
    step = failed_step(report)
    assert "InvalidIdInRequest" in step["detail"]
    assert "task was stopped" in step["cause"]


@pytest.mark.parametrize(("status", "word"), [(503, "CredentialsUninitialized"), (429, "429")])
def test_doctor_transient_then_success(status: int, word: str) -> None:
    code, report, _ = doctor_in_container(agent(fail_first=1, fail_status=status), RELATIVE)
    assert code == 0
    http = next(step for step in report["steps"] if step["name"] == "http")
    assert "after 2 attempts" in http["detail"]
    assert word in " ".join(http["warnings"])


def test_doctor_body_missing_token() -> None:
    body = json.dumps(
        {
            "RoleArn": "arn:aws:iam::123456789012:role/AppA",
            "AccessKeyId": CANARY["key"],
            "SecretAccessKey": CANARY["secret"],
            "Expiration": "2099-01-01T00:00:00Z",
        }
    )
    code, report, _ = doctor_in_container(agent(body_override=body), RELATIVE)
    assert code == 5
    step = failed_step(report)
    assert step["name"] == "response shape"
    assert "'Token'" in step["detail"]


def test_pod_identity_token_rotation_sends_new_token(tmp_path: Path) -> None:
    token_file = str(tmp_path / "eks-pod-identity-token")
    client = (
        "import taskcreds, pathlib\n"
        "p = taskcreds.CredentialProvider()\n"
        "first = p.get()\n"
        f"pathlib.Path({token_file!r}).write_text('second-token\\n')\n"
        "p.refresh()\n"
        "print(first.account_id)\n"
    )
    plan = {
        "endpoint": {
            "kind": "agent",
            "host": "169.254.170.23",
            "pod_identity_token_file": token_file,
            "include_role_arn": False,
            "include_account_id": True,
        },
        "commands": [
            {"write_file": token_file, "content": "first-token\n"},
            {
                "argv": ["{python}", "-c", client],
                "env": {
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token_file,
                },
            },
        ],
    }
    report = in_container(plan)
    run = report["runs"][0]
    assert run["code"] == 0, run["stderr"]
    assert run["stdout"].strip() == "123456789012"
    assert [r["authorization"] for r in report["requests"]] == ["first-token", "second-token"]
    assert all(r["status"] == 200 for r in report["requests"])
