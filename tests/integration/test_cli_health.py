"""``taskcreds health`` in-process (``main(argv)``) and as a subprocess, against a real
agent-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from taskcreds.cli import main
from taskcreds.cli._common import exit_codes_help
from taskcreds.cli.health import EXAMPLE
from taskcreds.credentials import Credentials, format_timestamp
from taskcreds.local import AgentServer, Faults, StaticSource

CANARY_SECRET = "CANARYhealthSECRET/do+not+print+0123456789"
CANARY_TOKEN = "CANARYhealthTOKEN//do+not+print"
KEY_ID = "ASIAHEALTHCANARY9876"
MASKED_KEY_ID = "ASIA…9876"
ROLE = "arn:aws:iam::123456789012:role/AppA"
HOSTILE = "\x1b]0;owned\x07\x1b[2J\u202e"
REPO = Path(__file__).resolve().parents[2]
#: Every field of the --json document (the failure document adds exit_code and error).
FACTS = {
    "ok",
    "expires_in_seconds",
    "expires_in",
    "expiration",
    "role_arn",
    "access_key_id",
    "min_remaining_seconds",
}


def credentials(left: timedelta, role_arn: str | None = ROLE) -> Credentials:
    expiration = datetime.now(timezone.utc) + left
    return Credentials(KEY_ID, CANARY_SECRET, CANARY_TOKEN, expiration, role_arn)


def serving(left: timedelta) -> AgentServer:
    """An agent serving one fixed set with ``left`` to go (negative: already expired)."""
    return AgentServer(StaticSource(credentials(left)), faults=Faults())


@pytest.fixture
def canary() -> Iterator[AgentServer]:
    with serving(timedelta(hours=6)) as server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No container variable, static key or proxy from the environment the tests run in."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower() in {"http_proxy", "https_proxy", "no_proxy"}:
            monkeypatch.delenv(name)
    return monkeypatch


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], server: AgentServer | None = None
) -> tuple[int, str, str]:
    """``main(["health", *argv])``; no output may hold a secret, the key ID or the ID in the URL."""
    code = main(["health", *argv])
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        for secret in (CANARY_SECRET, CANARY_TOKEN, KEY_ID, "CANARYauthTOKEN"):
            assert secret not in text
        if server is not None:
            assert server.credentials_id not in text
    return code, captured.out, captured.err


def point_at(env: pytest.MonkeyPatch, server: AgentServer) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.full_uri)


# -- healthy ---------------------------------------------------------------------------------------


def test_ok_text_is_one_line_and_one_fetch(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(env, canary)
    code, out, err = run([], capsys, canary)
    assert code == 0
    assert re.fullmatch(r"ok: credentials valid for 5h 59m \(margin 5m\)\n", out), out
    assert err == ""
    assert canary.request_count == 1  # one fetch: no cache, no second look


def test_ok_json_document(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    served = credentials(timedelta(hours=6))
    with AgentServer(StaticSource(served)) as server:
        point_at(env, server)
        code, out, err = run(["--json", "--min-remaining", "90"], capsys, server)
    assert code == 0
    assert err == ""
    document = json.loads(out)
    assert set(document) == FACTS
    assert document["ok"] is True
    assert document["min_remaining_seconds"] == 90
    assert 6 * 3600 - 60 < document["expires_in_seconds"] <= 6 * 3600
    assert document["expires_in"].startswith("5h 59m")
    assert document["expiration"] == format_timestamp(served.expiration)
    assert document["role_arn"] == ROLE
    assert document["access_key_id"] == MASKED_KEY_ID


@pytest.mark.parametrize(
    ("margin", "seconds"), [("0", 0), ("30s", 30), ("2m", 120), ("1h", 3600), ("12h", 43200)]
)
def test_margins_shorter_than_the_time_left_pass(
    margin: str,
    seconds: int,
    canary: AgentServer,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_at(env, canary)
    code, out, _ = run(["--json", "--min-remaining", margin], capsys, canary)
    document = json.loads(out)
    if seconds < 6 * 3600:
        assert (code, document["ok"]) == (0, True)
    else:  # 12h: longer than the 6 h the set has left
        assert (code, document["ok"]) == (6, False)
    assert document["min_remaining_seconds"] == seconds


def test_quiet_prints_nothing_whatever_the_outcome(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(timedelta(hours=6)) as fine, serving(timedelta(minutes=3)) as ending:
        point_at(env, fine)
        assert run(["--quiet"], capsys) == (0, "", "")
        assert run(["--quiet", "--json"], capsys) == (0, "", "")
        point_at(env, ending)
        assert run(["--quiet"], capsys) == (6, "", "")
        assert run(["--quiet", "--json"], capsys) == (6, "", "")
        fine.faults.update(fail_first=100, fail_status=500)
        point_at(env, fine)
        assert run(["--quiet", "--timeout", "0.5"], capsys) == (4, "", "")


# -- not valid for the margin: exit 6 --------------------------------------------------------------


def test_within_the_margin_is_exit_6(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(timedelta(minutes=3)) as server:
        point_at(env, server)
        code, out, err = run([], capsys, server)
        assert code == 6
        assert out == ""
        first, hint = err.splitlines()
        assert re.fullmatch(
            r"taskcreds: error: the credentials expire in 2m \d+s, within the 5m margin "
            r"\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)",
            first,
        ), first
        assert hint.startswith("  hint: ")
        assert "--min-remaining" in hint

        code, out, err = run(["--json"], capsys, server)
        assert code == 6
        assert err == ""
        document = json.loads(out)
        assert set(document) == FACTS | {"exit_code", "error"}
        assert (document["ok"], document["exit_code"]) == (False, 6)
        assert 0 < document["expires_in_seconds"] <= 180
        assert document["min_remaining_seconds"] == 300
        assert document["access_key_id"] == MASKED_KEY_ID
        assert document["error"]["type"] == "CredentialsExpiredError"
        assert "within the 5m margin" in document["error"]["message"]

        # A margin shorter than the time left passes on the same set.
        assert run(["--min-remaining", "2m"], capsys, server)[0] == 0
        assert run(["--min-remaining", "0"], capsys, server)[0] == 0


def test_expired_is_exit_6_whatever_the_margin(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(-timedelta(minutes=3)) as server:
        point_at(env, server)
        for margin in ("5m", "0"):
            code, out, err = run(["--min-remaining", margin], capsys, server)
            assert code == 6
            assert out == ""
            assert err.startswith(
                "taskcreds: error: the endpoint served credentials that expired 3m"
            )
            assert "NTP" in err
        code, out, _ = run(["--json"], capsys, server)
        assert code == 6
        document = json.loads(out)
        assert (document["ok"], document["exit_code"]) == (False, 6)
        assert -190 < document["expires_in_seconds"] <= -180
        assert document["expires_in"].startswith("expired 3m")
        assert document["error"]["type"] == "CredentialsExpiredError"


# -- cannot fetch: the error's own exit code -------------------------------------------------------


def test_not_in_a_container_is_exit_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run([], capsys)
    assert code == 2
    assert out == ""
    assert "taskRoleArn" in err
    code, out, _ = run(["--json"], capsys)
    assert code == 2
    document = json.loads(out)
    assert (document["ok"], document["exit_code"]) == (False, 2)
    assert document["error"]["type"] == "NotInContainerError"


def test_unreachable_is_exit_3(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Bound and never listening: every connection to it is refused, and no one else can take it.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env.setenv(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{port}/v2/credentials/x"
        )
        code, out, err = run(["--timeout", "1"], capsys)
        assert code == 3
        assert out == ""
        assert "refused" in err
        code, out, _ = run(["--json", "--timeout", "1"], capsys)
        assert code == 3
        assert json.loads(out)["error"]["type"] == "EndpointUnreachableError"


@pytest.mark.parametrize(
    ("status", "error_type"), [(429, "ThrottledError"), (500, "EndpointHTTPError")]
)
def test_http_errors_are_exit_4(
    status: int,
    error_type: str,
    canary: AgentServer,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_at(env, canary)
    canary.faults.update(fail_first=100, fail_status=status)
    code, out, err = run(["--timeout", "0.5"], capsys, canary)
    assert code == 4
    assert out == ""
    assert f"HTTP {status}" in err
    code, out, _ = run(["--json", "--timeout", "0.5"], capsys, canary)
    assert code == 4
    error = json.loads(out)["error"]
    assert (error["type"], error["status"]) == (error_type, status)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps({"AccessKeyId": KEY_ID, "SecretAccessKey": CANARY_SECRET}).encode(),
        json.dumps(
            {
                "AccessKeyId": KEY_ID,
                "SecretAccessKey": CANARY_SECRET,
                "Token": CANARY_TOKEN,
                "Expiration": "tomorrow",
            }
        ).encode(),
    ],
    ids=["not-json", "no-token", "bad-expiration"],
)
def test_malformed_is_exit_5(
    body: bytes, canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(env, canary)
    canary.faults.update(body_override=body)
    code, out, err = run([], capsys, canary)
    assert code == 5
    assert out == ""
    assert err.startswith("taskcreds: error: ")
    code, out, _ = run(["--json"], capsys, canary)
    assert code == 5
    assert json.loads(out)["error"]["type"] == "MalformedResponseError"


# -- usage -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["5x", "5M", "1.5h", "5 m", "", "1h30m", "+5m", "=5m", "\u0663m", "13h", "9" * 5000]
)
def test_bad_min_remaining_is_a_usage_error(
    value: str, canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(env, canary)
    for argv in ([f"--min-remaining={value}"], [f"--min-remaining={value}", "--json"]):
        code, out, err = run(argv, capsys, canary)
        assert code == 1
        assert out == ""  # a parse error is shown as argparse shows it, also with --json
        assert "taskcreds health: error: argument --min-remaining: " in err
        assert len(err) < 600  # a 5000-digit value is not echoed whole
    assert canary.request_count == 0  # refused before any fetch


def test_a_negative_min_remaining_is_refused(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(env, canary)
    code, _, err = run(["--min-remaining", "-5m"], capsys, canary)
    assert code == 1
    assert "--min-remaining" in err
    code, _, err = run(["--min-remaining=-5m"], capsys, canary)
    assert code == 1
    assert "not a duration: '-5m'" in err


def test_the_bad_value_message_says_what_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--min-remaining", "soon"]) == 1
    err = capsys.readouterr().err
    assert "not a duration: 'soon'" in err
    for form in ("90", "30s", "5m", "1h"):
        assert form in err
    assert main(["health", "--min-remaining", "13h"]) == 1
    assert "every check would fail" in capsys.readouterr().err


def test_help_has_an_example_the_options_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["health", "--help"]) == 0
    out = capsys.readouterr().out
    assert f"example:\n  {EXAMPLE}\n" in out
    assert EXAMPLE == "python -m taskcreds health --min-remaining 5m"
    assert exit_codes_help() in out
    flat = " ".join(out.split())
    for option in ("--min-remaining DURATION", "--quiet", "--json", "--timeout"):
        assert option in flat
    assert "(default 5m)" in flat
    assert "(default 3)" in flat  # shorter than the other commands' 5 s
    assert main(["--help"]) == 0
    assert "health" in capsys.readouterr().out


# -- secrets and escaping --------------------------------------------------------------------------


def test_canary_never_printed_in_any_mode(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"SecretAccessKey": CANARY_SECRET, "Token": CANARY_TOKEN}
    faults = [
        {},
        {"fail_first": 100, "fail_status": 500},
        {"fail_first": 100, "fail_status": 429},
        {"fail_first": 100, "fail_status": 503},
        {"body_override": json.dumps(body).encode()},
        {"body_override": CANARY_SECRET.encode()},
        {"drop_connection": True},
    ]
    env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "CANARYauthTOKEN")
    with serving(timedelta(hours=6)) as fine, serving(timedelta(minutes=1)) as ending:
        for server in (fine, ending):
            point_at(env, server)
            for fault in faults:
                server.faults.reset()
                server.faults.update(**fault)
                for argv in ([], ["--json"], ["-vv"], ["--json", "-vv"], ["--min-remaining", "0"]):
                    run([*argv, "--timeout", "0.5"], capsys, server)  # run() checks the output


class _HostileAgent(BaseHTTPRequestHandler):
    """Answers every request as the agent answers an unknown ID, with control characters in its
    code and message, as a compromised or broken endpoint might."""

    def do_GET(self) -> None:
        body = json.dumps(
            {"code": f"InvalidIdInRequest{HOSTILE}", "message": f"not found{HOSTILE}\nFAKE: line"}
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hostile_agent() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileAgent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/credentials/hostile-id"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_what_the_endpoint_says_is_escaped(
    hostile_agent: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", hostile_agent)
    for argv in ([], ["-vv"]):
        code, out, err = run(argv, capsys)
        assert code == 4
        assert "HTTP 400 InvalidIdInRequest\\x1b]0;owned\\x07\\x1b[2J\\u202e" in err
        assert "not found\\x1b]0;owned\\x07\\x1b[2J\\u202e" in err
        for char in "\x1b\x07\u202e":
            assert char not in out + err
        assert "\nFAKE" not in err  # one message stays on one line
    code, out, _ = run(["--json"], capsys)
    assert code == 4
    assert json.loads(out)["error"]["detail"].startswith(f"not found{HOSTILE}")
    assert "\x1b" not in out  # JSON escapes it itself


def test_a_hostile_role_arn_stays_out_of_the_terminal(
    canary: AgentServer, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "AccessKeyId": KEY_ID,
        "SecretAccessKey": CANARY_SECRET,
        "Token": CANARY_TOKEN,
        "Expiration": format_timestamp(datetime.now(timezone.utc) + timedelta(minutes=2)),
        "RoleArn": f"{ROLE}{HOSTILE}",
    }
    canary.faults.update(body_override=json.dumps(body).encode())
    point_at(env, canary)
    for argv in ([], ["--min-remaining", "0"], ["-vv"]):
        _, out, err = run(argv, capsys, canary)
        for char in "\x1b\x07\u202e":
            assert char not in out + err
    code, out, _ = run(["--json"], capsys, canary)
    assert code == 6
    assert json.loads(out)["role_arn"] == f"{ROLE}{HOSTILE}"
    assert "\x1b" not in out


# -- cheap enough for a HEALTHCHECK every 30 s -----------------------------------------------------


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This environment without AWS settings or proxies, plus ``extra``: the child reaches only
    the 127.0.0.1 server it is given, and boto3 (if it were imported) no metadata service."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_")
        and name.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    return {**kept, "AWS_EC2_METADATA_DISABLED": "true", **extra}


#: Runs ``python -m taskcreds ARGS`` as the interpreter runs it, then prints which boto3,
#: botocore or s3transfer modules were loaded, and whether the command's own module was.
_RUN_AND_LIST = """
import json, runpy, sys
command = sys.argv[1]
sys.argv = ["taskcreds", *sys.argv[1:]]
try:
    runpy.run_module("taskcreds", run_name="__main__", alter_sys=True)
finally:
    print(json.dumps({
        "aws": sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "s3transfer")),
        "ran": "taskcreds.cli." + command in sys.modules,
    }))
"""


@pytest.mark.parametrize("command", ["health", "show"])
def test_the_command_never_imports_boto3(command: str, canary: AgentServer) -> None:
    # The real entry point in a fresh interpreter, through a whole successful run: an import
    # made lazily inside run() counts too.
    result = subprocess.run(
        [sys.executable, "-c", _RUN_AND_LIST, command, "--quiet"],
        env=child_environment({"AWS_CONTAINER_CREDENTIALS_FULL_URI": canary.full_uri}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    assert json.loads(result.stdout) == {"aws": [], "ran": True}
    assert canary.request_count == 1
