"""``taskcreds exec`` and ``taskcreds broker`` as subprocesses, against a real agent-compatible
server on 127.0.0.1: the child's environment, exit statuses, signals, failing fast, env files,
and ``--stats``."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskcreds.local import AgentServer, Faults, RotatingSource

from .conftest import ROLE_ARN

TASKCREDS = [sys.executable, "-m", "taskcreds"]

SHOW_ENV = """
import json, os, urllib.request
aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
token = open(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read()
request = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                                 headers={"Authorization": token})
document = json.load(urllib.request.urlopen(request, timeout=5))
print(json.dumps({"env": aws, "key": document["AccessKeyId"], "other": os.environ.get("KEEP")}))
"""


@pytest.fixture
def upstream() -> Iterator[AgentServer]:
    with AgentServer(RotatingSource(role_arn=ROLE_ARN), faults=Faults()) as server:
        yield server


def env_for(upstream: AgentServer, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_EC2_METADATA_DISABLED": "true",
        **upstream.environment(),
        **extra,
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TASKCREDS, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_exec_rewrites_the_environment_exactly(upstream: AgentServer) -> None:
    env = env_for(upstream, AWS_CONTAINER_AUTHORIZATION_TOKEN="for-upstream", KEEP="kept")
    done = run(["exec", "--", sys.executable, "-c", SHOW_ENV], env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    child_env = seen["env"]
    assert set(child_env) == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_DISABLED",
    }
    assert child_env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
    assert child_env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith("/v1/credentials")
    assert seen["other"] == "kept"
    assert seen["key"].startswith("ASIA")
    assert not Path(child_env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).exists()  # removed
    assert upstream.request_count == 1


def test_exec_removes_relative_uri(upstream: AgentServer) -> None:
    # RELATIVE_URI would mean 169.254.170.2; the broker's own upstream is FULL_URI here, so only
    # the child's view is checked: it must not see RELATIVE_URI at all. (An ECS task's view,
    # RELATIVE_URI and nothing else, is the e2e test's.)
    code = "import os; print(os.environ.get('AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'))"
    done = run(["exec", "--", sys.executable, "-c", code], env_for(upstream))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


@pytest.mark.parametrize(
    ("code", "status"),
    [("raise SystemExit(3)", 3), ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137)],
)
def test_exec_passes_the_exit_status_through(upstream: AgentServer, code: str, status: int) -> None:
    assert run(["exec", "--", sys.executable, "-c", code], env_for(upstream)).returncode == status


def test_exec_command_not_found(upstream: AgentServer) -> None:
    done = run(["exec", "--", "/nonexistent/command"], env_for(upstream))
    assert done.returncode == 127
    assert "not found" in done.stderr


def test_exec_without_a_command_is_usage(upstream: AgentServer) -> None:
    assert run(["exec"], env_for(upstream)).returncode == 1


WAIT_FOR_SIGNAL = r"""
import os, signal, time
def stop(signum, frame):
    os.write(1, f"got {signum}\n".encode())  # no print(): it may be mid-write of "ready"
    os._exit(42)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_exec_forwards_signals(upstream: AgentServer, sig: signal.Signals) -> None:
    process = subprocess.Popen(
        [*TASKCREDS, "exec", "--", sys.executable, "-c", WAIT_FOR_SIGNAL],
        env=env_for(upstream),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"  # the child's handlers are in place
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 42, err
    assert out.strip() == f"got {int(sig)}"


@pytest.mark.parametrize(("fail_status", "code"), [(500, 4), (429, 4)])
def test_exec_upstream_failure_never_starts_the_child(
    upstream: AgentServer, tmp_path: Path, fail_status: int, code: int
) -> None:
    upstream.faults.update(fail_first=1000, fail_status=fail_status)
    marker = tmp_path / "started"
    done = run(["exec", "--", "touch", str(marker)], env_for(upstream))
    assert done.returncode == code, done.stderr
    assert not marker.exists()


def test_exec_upstream_refused_never_starts_the_child(tmp_path: Path) -> None:
    with AgentServer(RotatingSource()) as gone:
        environ = env_for(gone)
    marker = tmp_path / "started"
    done = run(["exec", "--", "touch", str(marker)], environ)
    assert done.returncode == 3, done.stderr
    assert not marker.exists()


def test_exec_refuses_a_non_loopback_listen(upstream: AgentServer, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    done = run(["exec", "--listen", "0.0.0.0:0", "--", "touch", str(marker)], env_for(upstream))
    assert done.returncode == 2
    assert "loopback" in done.stderr
    assert not marker.exists()


# -- taskcreds broker --------------------------------------------------------------------------


def _read_document(process: subprocess.Popen[str]) -> dict[str, object]:
    assert process.stdout is not None
    text = ""
    while True:
        line = process.stdout.readline()
        assert line, (
            f"the broker printed no JSON; stderr: {process.stderr and process.stderr.read()}"
        )
        text += line
        try:
            document: dict[str, object] = json.loads(text)
            return document
        except ValueError:
            continue


def test_broker_command_env_file_stats_and_sigterm(upstream: AgentServer, tmp_path: Path) -> None:
    env_file = tmp_path / "broker.env"
    process = subprocess.Popen(
        [*TASKCREDS, "broker", "--json", "--env-file", str(env_file)],
        env=env_for(upstream),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = _read_document(process)
        variables = ready["environment"]
        assert isinstance(variables, dict)
        assert set(variables) == {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        }
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        sourced = subprocess.run(
            ["sh", "-c", f". {env_file} && echo $AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert sourced.stdout.strip() == variables["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        client = {**env_for(upstream), **variables}
        del client["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        fetched = run(["exec", "--", sys.executable, "-c", SHOW_ENV], {**client, **variables})
        assert fetched.returncode == 0, fetched.stderr
        url = str(variables["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
        as_json = run(["broker", "--stats", url, "--json"], {**client, **variables})
        assert as_json.returncode == 0, as_json.stderr
        stats = json.loads(as_json.stdout)
        assert stats["upstream"]["fetches"] == 1
        assert stats["requests"] >= 1
        as_text = run(["broker", "--stats", url], {**client, **variables})
        assert as_text.returncode == 0, as_text.stderr
        assert "CLIENT" in as_text.stdout
        assert "upstream" in as_text.stdout
        token = Path(str(variables["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])).read_text()
        for secret in (token,):
            assert secret not in as_text.stdout + as_json.stdout
        wrong = tmp_path / "wrong-token"
        wrong.write_text("nope")
        refused = run(["broker", "--stats", url, "--token-file", str(wrong)], client)
        assert refused.returncode == 2
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert not env_file.exists()
    assert not Path(str(variables["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])).exists()


def test_broker_command_text_output_is_shell(upstream: AgentServer) -> None:
    process = subprocess.Popen(
        [*TASKCREDS, "broker"],
        env=env_for(upstream),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(2)]
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert lines[0].startswith("export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:")
    assert lines[1].startswith("export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=")
    assert process.returncode == 0


def test_broker_stats_unreachable_is_3(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("x")
    with AgentServer(RotatingSource()) as gone:
        port = gone.port
    done = run(
        [
            "broker",
            "--stats",
            f"http://127.0.0.1:{port}/v1/credentials",
            "--token-file",
            str(token),
        ],
        {"PATH": os.environ.get("PATH", "")},
    )
    assert done.returncode == 3


def test_broker_stats_refuses_a_remote_url(tmp_path: Path) -> None:
    done = run(
        [
            "broker",
            "--stats",
            "http://192.0.2.1/v1/credentials",
            "--token-file",
            str(tmp_path / "t"),
        ],
        {"PATH": os.environ.get("PATH", "")},
    )
    assert done.returncode == 2
