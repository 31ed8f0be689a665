"""The CLI in-process (``main(argv)``) against a real agent-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import shlex
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from taskcreds.cli import main
from taskcreds.cli._common import EXIT_INTERNAL
from taskcreds.credentials import Credentials, format_timestamp
from taskcreds.errors import CredentialsExpiredError
from taskcreds.local import AgentServer, Faults, StaticSource

CANARY_SECRET = "CANARYsecretKEY/do+not+print+0123456789"
CANARY_TOKEN = "CANARYsessionTOKEN//do+not+print"
KEY_ID = "ASIACANARYKEY0001234"
ROLE = "arn:aws:iam::123456789012:role/AppA"


@pytest.fixture
def canary() -> Iterator[AgentServer]:
    creds = Credentials(
        KEY_ID,
        CANARY_SECRET,
        CANARY_TOKEN,
        datetime.now(timezone.utc) + timedelta(hours=6),
        ROLE,
    )
    with AgentServer(StaticSource(creds), faults=Faults()) as server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_ACCESS_KEY_ID",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        if argv[0] != "export":
            assert CANARY_SECRET not in text
            assert CANARY_TOKEN not in text
            assert KEY_ID not in text
    return code, captured.out, captured.err


def test_show_json(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    code, out, _ = run(["show", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["role_arn"] == ROLE
    assert document["account_id"] == "123456789012"
    assert document["access_key_id"] == "ASIA…1234"
    assert document["source"] == "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    assert document["expires_in_seconds"] > 5 * 3600
    assert document["warnings"] == []
    assert canary.credentials_id not in out  # the ID is as sensitive as the agent log treats it


def test_show_text(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    code, out, err = run(["show"], capsys)
    assert code == 0
    assert ROLE in out
    assert "ASIA…1234" in out
    assert "time left" in out
    assert err == ""


def test_show_warnings_go_to_stderr(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    env.setenv("AWS_ACCESS_KEY_ID", "AKIASTATIC0000000001")
    env.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    code, out, err = run(["show", "--json"], capsys)
    assert code == 0
    warnings = json.loads(out)["warnings"]
    assert any("AWS_ACCESS_KEY_ID" in w for w in warnings)
    assert any("NO_PROXY" in w for w in warnings)
    env.setenv("NO_PROXY", "localhost,127.0.0.0/8")
    code, out, err = run(["show"], capsys)
    assert "NO_PROXY" not in err
    assert "warning: AWS_ACCESS_KEY_ID is set" in err


def test_show_quiet(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    assert run(["show", "--quiet"], capsys) == (0, "", "")
    canary.faults.update(fail_first=10, fail_status=500)
    assert run(["show", "--quiet", "--timeout", "0.5"], capsys) == (4, "", "")


def test_show_not_in_container(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["show"], capsys)
    assert code == 2
    assert out == ""
    assert "taskRoleArn" in err
    code, out, _ = run(["show", "--json"], capsys)
    assert code == 2
    assert json.loads(out)["error"]["type"] == "NotInContainerError"


def test_usage_error_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--bogus"]) == 1
    assert main(["nope"]) == 1
    assert main(["--help"]) == 0
    capsys.readouterr()


def test_export_formats(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    code, out, _ = run(["export"], capsys)
    assert code == 0
    values = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    assert shlex.split(values["AWS_SECRET_ACCESS_KEY"]) == [CANARY_SECRET]
    assert values["AWS_ACCESS_KEY_ID"] == KEY_ID
    assert shlex.split(values["AWS_SESSION_TOKEN"]) == [CANARY_TOKEN]
    assert values["AWS_CREDENTIAL_EXPIRATION"].endswith("Z")
    code, out, _ = run(["export", "--format", "process"], capsys)
    process = json.loads(out)
    assert process["Version"] == 1
    assert process["SessionToken"] == CANARY_TOKEN
    assert set(process) == {
        "Version",
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    }
    code, out, _ = run(["export", "--format", "json"], capsys)
    assert json.loads(out)["RoleArn"] == ROLE


def doctor(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, object], str]:
    code, out, _ = run(["doctor", "--json", "--timeout", "2", *extra], capsys)
    return code, json.loads(out), out


def step(report: dict[str, object], name: str) -> dict[str, object]:
    steps = report["steps"]
    assert isinstance(steps, list)
    return next(s for s in steps if s["name"] == name)


def test_doctor_all_good(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    code, report, _ = doctor(capsys)
    assert code == 0
    assert report["ok"] is True
    names = [s["name"] for s in report["steps"]]  # type: ignore[attr-defined]
    assert names == [
        "environment",
        "endpoint allowed",
        "tcp connect",
        "http",
        "response shape",
        "expiry and clock",
    ]
    code, out, _ = run(["doctor"], capsys)
    assert "✓ tcp connect" in out
    assert "all checks passed" in out


def test_doctor_no_variables(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, report, _ = doctor(capsys)
    assert code == 2
    failed = step(report, "environment")
    assert failed["ok"] is False
    assert "taskRoleArn" in str(failed["cause"])


def test_doctor_refused(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{port}/creds")
    code, report, _ = doctor(capsys)
    assert code == 3
    failed = step(report, "tcp connect")
    assert "refused" in str(failed["detail"])
    assert "serve-local" in str(failed["cause"])


def test_doctor_hang(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    canary.faults.update(hang=True)
    code, report, _ = doctor(capsys)
    assert code == 3
    assert "hung" in str(step(report, "http")["cause"])


def test_doctor_invalid_id(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.base_url + "/v2/credentials/wrong-id")
    code, report, _ = doctor(capsys)
    assert code == 4
    failed = step(report, "http")
    assert "InvalidIdInRequest" in str(failed["detail"])
    assert "task was stopped" in str(failed["cause"])


@pytest.mark.parametrize(("status", "word"), [(503, "CredentialsUninitialized"), (429, "429")])
def test_doctor_transient_then_success(
    canary: AgentServer,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status: int,
    word: str,
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    canary.faults.update(fail_first=1, fail_status=status)
    code, report, _ = doctor(capsys)
    assert code == 0
    http = step(report, "http")
    assert "after 2 attempts" in str(http["detail"])
    assert word in str(http["warnings"])


def test_doctor_missing_token_field(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    body = json.dumps(
        {
            "AccessKeyId": KEY_ID,
            "SecretAccessKey": CANARY_SECRET,
            "Expiration": "2099-01-01T00:00:00Z",
        }
    ).encode()
    canary.faults.update(body_override=body)
    code, report, _ = doctor(capsys)
    assert code == 5
    failed = step(report, "response shape")
    assert "Token" in str(failed["detail"])


def test_doctor_unsupported_host(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.169.254/latest/meta-data/")
    code, report, _ = doctor(capsys)
    assert code == 2
    assert step(report, "endpoint allowed")["ok"] is False


def test_canary_never_printed_in_any_failure_mode(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "CANARYauthTOKEN")
    faults = [
        {},
        {"fail_first": 10, "fail_status": 500},
        {"fail_first": 10, "fail_status": 429},
        {
            "body_override": json.dumps(
                {"SecretAccessKey": CANARY_SECRET, "Token": CANARY_TOKEN}
            ).encode()
        },
        {"body_override": CANARY_SECRET.encode()},
        {"drop_connection": True},
    ]
    for fault in faults:
        canary.faults.reset()
        canary.faults.update(**fault)
        for argv in (
            ["show"],
            ["show", "--json"],
            ["doctor"],
            ["doctor", "--json"],
            ["show", "-vv"],
        ):
            _, out, err = run([*argv, "--timeout", "1"], capsys)
            assert "CANARYauthTOKEN" not in out + err


def test_expired_set_is_exit_6_for_show_and_export(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expired = Credentials(
        KEY_ID, CANARY_SECRET, CANARY_TOKEN, datetime.now(timezone.utc) - timedelta(minutes=3), ROLE
    )
    with AgentServer(StaticSource(expired)) as server:
        env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.full_uri)
        code, out, err = run(["show"], capsys)
        assert code == 6
        assert "expired 3m" in err
        code, out, err = run(["export"], capsys)
        assert code == 6
        assert CANARY_SECRET not in out
        code, report, _ = doctor(capsys)
        assert code == 6


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_timeout_must_be_positive_seconds(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("show", "doctor", "export"):
        assert main([command, "--timeout", value]) == 1
    assert "--timeout" in capsys.readouterr().err


# -- escaping and internal errors ------------------------------------------------------------------

HOSTILE_ROLE = "arn:aws:iam::123456789012:role/App\x1b]0;owned\x07\x1b[2J\u202eA"


def test_text_output_escapes_what_the_endpoint_sends(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "AccessKeyId": KEY_ID,
        "SecretAccessKey": CANARY_SECRET,
        "Token": CANARY_TOKEN,
        "Expiration": format_timestamp(datetime.now(timezone.utc) + timedelta(hours=6)),
        "RoleArn": HOSTILE_ROLE,
    }
    canary.faults.update(body_override=json.dumps(body).encode())
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    for argv in (["show"], ["doctor"]):
        code, out, err = run(argv, capsys)
        assert code == 0
        assert "role/App\\x1b]0;owned\\x07\\x1b[2J\\u202eA" in out
        for char in "\x1b\x07\u202e":
            assert char not in out + err
    code, out, _ = run(["show", "--json"], capsys)
    assert json.loads(out)["role_arn"] == HOSTILE_ROLE  # JSON keeps it, escaped by json itself
    assert "\x1b" not in out


def test_usage_errors_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--timeout", "\x1b[2J"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\\x1b[2J" in err


def _boom(*_: object) -> int:
    raise RuntimeError("it broke \x1b[2J " + "x" * 500)


@pytest.mark.parametrize("where", ["run", "add_arguments"])
def test_an_unexpected_exception_is_one_line_and_exit_9(
    where: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setattr(f"taskcreds.cli.policy.{where}", _boom)
    code, out, err = run(["policy", "--bucket", "app-a"], capsys)
    assert code == EXIT_INTERNAL == 9
    assert out == ""
    first, hint, *rest = err.splitlines()
    assert rest == []
    assert first.startswith("taskcreds: internal error: RuntimeError: it broke \\x1b[2J xxx")
    assert first.endswith("x…")
    assert len(first) < 260  # the message is cut to 200 characters
    assert "-vv" in hint
    assert "report it" in hint
    assert "Traceback" not in err
    assert "\x1b" not in err

    code, out, err = run(["policy", "--bucket", "app-a", "--json"], capsys)
    assert code == 9
    document = json.loads(out)
    assert document["ok"] is False
    assert document["exit_code"] == 9
    assert document["error"]["type"] == "RuntimeError"
    assert document["error"]["message"].startswith("it broke \x1b[2J xxx")
    assert len(document["error"]["message"]) == 201
    assert "Traceback" not in err


def test_an_unexpected_exception_logs_its_traceback_with_vv(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setattr("taskcreds.cli.policy.run", _boom)
    code, _, err = run(["policy", "--bucket", "app-a", "-vv"], capsys)
    assert code == 9
    assert "DEBUG taskcreds.cli: internal error" in err
    assert "Traceback (most recent call last)" in err
    assert "taskcreds: internal error: RuntimeError" in err


def test_interrupts_and_exits_are_not_internal_errors(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    def exits(*_: object) -> int:
        raise SystemExit(3)

    env.setattr("taskcreds.cli.policy.run", interrupted)
    assert main(["policy", "--bucket", "app-a"]) == 130
    env.setattr("taskcreds.cli.policy.run", exits)
    with pytest.raises(SystemExit):
        main(["policy", "--bucket", "app-a"])
    assert "internal error" not in capsys.readouterr().err


def test_a_taskcreds_error_is_not_an_internal_error(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def expired(*_: object) -> int:
        raise CredentialsExpiredError("expired \x1b[2J", hint="check the clock")

    env.setattr("taskcreds.cli.policy.run", expired)
    code, _, err = run(["policy", "--bucket", "app-a"], capsys)
    assert code == 6
    assert err == "taskcreds: error: expired \\x1b[2J\n  hint: check the clock\n"


def test_log_lines_are_escaped(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def logs(*_: object) -> int:
        logging.getLogger("taskcreds.fetch").warning(
            "the agent said %r and %s", "x", "\x1b[2J\nFAKE"
        )
        return 0

    env.setattr("taskcreds.cli.policy.run", logs)
    code, _, err = run(["policy", "--bucket", "app-a"], capsys)
    assert code == 0
    assert err == "WARNING taskcreds.fetch: the agent said 'x' and \\x1b[2J\\x0aFAKE\n"
