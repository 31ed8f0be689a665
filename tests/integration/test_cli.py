"""The CLI in-process (``main(argv)``) against a real agent-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import shlex
import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskcreds.cli import main
from taskcreds.cli._common import EXIT_INTERNAL
from taskcreds.credentials import Credentials, format_timestamp
from taskcreds.errors import CredentialsExpiredError
from taskcreds.local import AgentServer, Faults, StaticSource
from taskcreds_demo.seaweed import SeaweedFS

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


BOTH_WARNING = (
    "both AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are set"
)


@pytest.mark.parametrize("json_mode", [False, True])
def test_show_prints_the_both_variables_warning_once(
    canary: AgentServer,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    json_mode: bool,
) -> None:
    # The process environment never holds RELATIVE_URI (that would aim at 169.254.170.2): show
    # reads a mapping with both variables, and its fetch of the RELATIVE_URI endpoint goes to
    # the canary on 127.0.0.1 instead. The library still logs the warning; show prints it once.
    from taskcreds.cli import show
    from taskcreds.endpoint import Endpoint, resolve_endpoint
    from taskcreds.fetch import Fetcher, FetchResult

    both = {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/never-fetched",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": canary.full_uri,
    }
    loopback = resolve_endpoint({"AWS_CONTAINER_CREDENTIALS_FULL_URI": canary.full_uri})
    asked: list[str] = []

    class LoopbackFetcher(Fetcher):
        def fetch(self, endpoint: Endpoint) -> FetchResult:
            asked.append(endpoint.variable)
            return super().fetch(loopback)

    env.setattr(show, "_environ", lambda: both)
    env.setattr("taskcreds.fetch.Fetcher", LoopbackFetcher)  # what fetch_once uses
    code, out, err = run(["show", "--json"] if json_mode else ["show"], capsys)
    assert code == 0
    assert asked == ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
    if json_mode:
        warnings = json.loads(out)["warnings"]
        assert [w for w in warnings if BOTH_WARNING in w] == [
            f"{BOTH_WARNING}; using "
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (every AWS SDK does the same)"
        ]
        assert BOTH_WARNING not in err
    else:
        assert out.splitlines()[0] == (
            "source      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS task role)"
        )
        assert err.count(BOTH_WARNING) == 1
        assert err.startswith(f"warning: {BOTH_WARNING}")
        assert "WARNING taskcreds" not in err


def test_the_library_still_logs_the_both_variables_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # For programs that never read Endpoint.warnings; only the CLI holds the record back.
    from taskcreds.cli._inspect import resolve_for_report
    from taskcreds.endpoint import resolve_endpoint

    both = {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds",
    }
    with caplog.at_level(logging.WARNING, logger="taskcreds"):
        endpoint = resolve_endpoint(both)  # resolves only: no request is made
    assert [r.getMessage() for r in caplog.records] == list(endpoint.warnings)
    assert BOTH_WARNING in endpoint.warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="taskcreds"):
        reported = resolve_for_report(both)
        logging.getLogger("taskcreds").warning("an unrelated warning")
    assert reported.warnings == endpoint.warnings
    assert [r.getMessage() for r in caplog.records] == ["an unrelated warning"]


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
    # The fix says what to do, not the cause again.
    assert failed["fix"] != failed["cause"]
    assert "credentials ID in the URI matches what the endpoint serves" in str(failed["fix"])
    assert "/v2/credentials/<id>" in str(failed["fix"])
    assert "task was not stopped" in str(failed["fix"])


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


def test_doctor_missing_token_file_is_its_own_step(
    canary: AgentServer,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    missing = tmp_path / "eks-pod-identity-token"
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(missing))
    code, report, _ = doctor(capsys)
    assert code == 2
    assert step(report, "endpoint allowed")["ok"] is True
    failed = step(report, "authorization token")
    assert failed["ok"] is False
    assert str(missing) in str(failed["detail"])
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in str(failed["cause"])
    assert "serviceAccountName" in str(failed["fix"])
    assert [s["name"] for s in report["steps"]][-1] == "authorization token"  # type: ignore[index]
    missing.write_text("CANARYfileTOKEN\n")
    code, report, out = doctor(capsys)
    assert code == 0
    assert step(report, "authorization token")["ok"] is True
    assert "CANARYfileTOKEN" not in out


def test_doctor_pod_identity_agent_without_token_says_what_to_set(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = tmp_path / "eks-pod-identity-token"
    token.write_text("CANARYpodTOKEN\n")
    expiration = datetime.now(timezone.utc) + timedelta(hours=1)
    creds = Credentials(
        KEY_ID, CANARY_SECRET, CANARY_TOKEN, expiration, ROLE, account_id="123456789012"
    )
    with AgentServer(
        StaticSource(creds),
        pod_identity_token_file=str(token),
        include_role_arn=False,
        include_account_id=True,
    ) as server:
        env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.base_url + "/v1/credentials")
        code, report, _ = doctor(capsys)  # no AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
        assert code == 4
        failed = step(report, "http")
        assert "Service account token cannot be empty" in str(failed["detail"])  # plain text
        assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in str(failed["fix"])
        env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
        code, report, out = doctor(capsys)
        assert code == 0
        assert "account 123456789012" in str(step(report, "response shape")["detail"])
        assert "CANARYpodTOKEN" not in out


def test_doctor_bad_token_variable_is_the_token_step(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "CANARY\r\nX-Injected: 1")
    code, report, out = doctor(capsys)
    assert code == 2
    assert step(report, "environment")["ok"] is True
    failed = step(report, "authorization token")
    assert failed["ok"] is False
    assert "line break" in str(failed["detail"])
    assert "CANARY" not in out


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_doctor_malformed_region_names_the_variable(
    variable: str,
    canary: AgentServer,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env.delenv("AWS_REGION", raising=False)
    env.delenv("AWS_DEFAULT_REGION", raising=False)
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    env.setenv(variable, "us east 1")
    for extra in (["--sts"], ["--bucket", "app-a"]):
        code, report, _ = doctor(capsys, *extra)
        assert code == 2
        failed = step(report, "region")
        assert failed["ok"] is False
        assert f"{variable}='us east 1'" in str(failed["detail"])
        assert "malformed" in str(failed["cause"])
        assert variable in str(failed["cause"])
        assert "cannot be reached" not in json.dumps(report)
        assert [s["name"] for s in report["steps"]][-1] == "region"  # type: ignore[index]


def test_doctor_region_without_any_setting(
    canary: AgentServer,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        env.delenv(name, raising=False)
    env.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    (tmp_path / "config").write_text("[default]\nregion = eu-west-3\n")
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", canary.full_uri)
    env.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # never reached: region fails first
    env.setenv("AWS_REGION", "eu-central-1")
    env.setenv("AWS_DEFAULT_REGION", "bad region")
    code, report, _ = doctor(capsys, "--sts")
    # AWS_REGION wins, so the malformed AWS_DEFAULT_REGION is never read (one resolution).
    assert step(report, "region") == {
        "name": "region",
        "ok": True,
        "detail": "eu-central-1 from AWS_REGION",
        "cause": None,
        "fix": None,
        "warnings": [],
    }
    assert code != 0  # nothing listens on port 9
    env.delenv("AWS_REGION")
    env.delenv("AWS_DEFAULT_REGION")
    (tmp_path / "config").write_text("[default]\nregion = eu west 3\n")
    code, report, _ = doctor(capsys, "--sts")
    assert code == 2
    failed = step(report, "region")
    assert "region in the AWS config file='eu west 3'" in str(failed["detail"])


def test_doctor_sts_and_write_probe_on_seaweed_deletes_the_probe(
    seaweed: SeaweedFS, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in seaweed.environment().items():
        env.setenv(name, value)
    with AgentServer(lambda: seaweed.assume_role("AppA")) as server:
        env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.full_uri)
        code, report, _ = doctor(capsys, "--sts", "--bucket", "app-a", "--prefix", "doctor")
    assert code == 0, report
    assert step(report, "region")["detail"] == f"{seaweed.region} from AWS_REGION"
    assert "role/AppA" in str(step(report, "sts")["detail"])
    probe = step(report, "write probe")
    assert probe["ok"] is True
    assert probe["warnings"] == []  # AppA may s3:DeleteObject: the probe is gone
    assert "s3://app-a/doctor/.taskcreds-doctor-" in str(probe["detail"])
    with closing(seaweed.admin_client("s3")) as s3:
        assert s3.list_objects_v2(Bucket="app-a", Prefix="doctor/").get("Contents", []) == []


def test_doctor_help_says_what_happens_to_the_probe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--help"]) == 0
    out = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even at a '-'
    assert "objectisdeleted" not in out
    assert "PREFIX.taskcreds-doctor-<32hexdigits>" in out
    assert "thendeletesitiftherolemays3:DeleteObject" in out
    assert "theobjectstaysatthatkey" in out


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
