"""``python -m taskcreds serve-local`` as a real process: what it prints, serves, and how it stops.

Each test runs the command with ``sys.executable`` on ``--port 0`` and reads its first JSON
document (or its text lines) from stdout. The subprocess gets a scrubbed environment: no AWS
variables but the ones a test sets, shared files pointed at nothing, instance metadata off, so
boto3 never looks beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import pytest
import requests

import taskcreds
from taskcreds.local import DEFAULT_ROLE_ARN, AgentServer, CredentialSourceError
from taskcreds_demo.seaweed import SeaweedFS

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


@dataclass
class Served:
    """One running ``serve-local`` process."""

    process: subprocess.Popen[str]
    stderr_path: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    reader: threading.Thread | None = None
    port: int = 0

    def read_line(self, timeout: float = START_TIMEOUT) -> str | None:
        """The next stdout line; None at end of output."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"serve-local printed nothing in {timeout} s; stderr:\n{self.stderr()}")

    def document(self) -> dict[str, Any]:
        """The first JSON document on stdout (``--json`` prints it indented)."""
        text = ""
        while True:
            line = self.read_line()
            if line is None:
                pytest.fail(f"stdout ended before a JSON document: {text!r}\n{self.stderr()}")
            text += line
            if line.rstrip("\n") == "}":
                parsed: dict[str, Any] = json.loads(text)
                return parsed

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, float]:
        """Send ``signum``; the exit code and how many seconds the exit took."""
        began = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(STOP_TIMEOUT)
        return code, time.monotonic() - began

    def finish(self) -> int:
        """Wait for an exit on its own (a start-up failure)."""
        return self.process.wait(START_TIMEOUT)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        url = f"http://127.0.0.1:{self.port}{path}"
        with requests.Session() as session:
            session.trust_env = False
            return session.get(url, timeout=5, **kwargs)


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def scrubbed_environment(tmp_path: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "HTTP", "http", "NO_PROXY", "no_proxy", "TASKCREDS_"))
    }
    env.update(
        {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``serve-local --port 0 ARGS``; every process is stopped and reaped afterwards."""
    started: list[Served] = []

    def start(*args: str, env: dict[str, str] | None = None, json_mode: bool = True) -> Served:
        argv = [sys.executable, "-m", "taskcreds", "serve-local", "--port", "0", *args]
        if json_mode:
            argv.append("--json")
        stderr_path = tmp_path / f"stderr-{len(started)}.txt"
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env if env is not None else scrubbed_environment(tmp_path),
            )
        served = Served(process, stderr_path)
        assert process.stdout is not None
        served.reader = threading.Thread(target=_pump, args=(process.stdout, served.lines))
        served.reader.start()
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.terminate()
            try:
                served.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                served.process.kill()
                served.process.wait()
        if served.reader is not None:
            served.reader.join(STOP_TIMEOUT)
        assert served.process.stdout is not None
        served.process.stdout.close()


def running(served: Served) -> dict[str, Any]:
    document = served.document()
    assert document["ok"] is True, document
    served.port = document["port"]
    return document


def provider_for(document: dict[str, Any]) -> taskcreds.CredentialProvider:
    return taskcreds.CredentialProvider(document["environment"])


# --- fake credentials: what it prints and serves


def test_fake_credentials_reach_the_provider(serve: Callable[..., Served]) -> None:
    served = serve("--fake")
    document = running(served)
    credentials_id = document["credentials_id"]
    url = document["environment"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert document["port"] > 0
    assert url == f"http://127.0.0.1:{document['port']}/v2/credentials/{credentials_id}"
    assert document["task_environment"] == {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": f"/v2/credentials/{credentials_id}"
    }
    assert (document["source"], document["pod_identity"]) == ("fake", False)
    with closing(provider_for(document)) as provider:
        credentials = provider.get()
    assert credentials.access_key_id.startswith("ASIA")
    assert credentials.token
    assert credentials.role_arn == DEFAULT_ROLE_ARN
    assert credentials.expiration > datetime.now(timezone.utc) + timedelta(minutes=50)
    code, seconds = served.stop(signal.SIGINT)
    assert code == 0
    assert seconds < 2
    assert "Traceback" not in served.stderr()


def test_text_mode_prints_an_env_file(serve: Callable[..., Served]) -> None:
    served = serve("--fake", "--credentials-id", "dev-1", "--lifetime", "600", json_mode=False)
    lines: list[str] = []
    while not (lines and lines[-1].startswith("# AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=")):
        line = served.read_line()
        assert line is not None, served.stderr()
        lines.append(line.rstrip("\n"))
    settings = [line for line in lines if not line.startswith("#")]
    assert len(settings) == 1
    name, _, url = settings[0].partition("=")
    assert name == "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v2/credentials/dev-1")
    assert any("169.254.170.2:80" in line for line in lines)
    assert lines[-1] == "# AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/dev-1"
    with closing(taskcreds.CredentialProvider({name: url})) as provider:
        credentials = provider.get()
    assert credentials.expiration <= datetime.now(timezone.utc) + timedelta(seconds=601)
    code, _ = served.stop(signal.SIGTERM)
    assert code == 0
    assert "serving on http://127.0.0.1:" in served.stderr()


def test_sigterm_stops_it_while_a_client_is_connected(serve: Callable[..., Served]) -> None:
    served = serve("--fake", "--latency", "3")
    document = running(served)
    path = f"/v2/credentials/{document['credentials_id']}"
    waiting = threading.Thread(target=_get_quietly, args=(served, path))
    waiting.start()
    time.sleep(0.2)  # let the request reach the latency fault
    code, seconds = served.stop(signal.SIGTERM)
    waiting.join(STOP_TIMEOUT)
    assert code == 0
    assert seconds < 2
    assert "Traceback" not in served.stderr()


def _get_quietly(served: Served, path: str) -> None:
    with contextlib.suppress(requests.RequestException):
        served.get(path).close()


# --- fault flags


def test_fail_first_then_success(serve: Callable[..., Served]) -> None:
    served = serve("--fake", "--fail-first", "2", "--fail-status", "503")
    document = running(served)
    path = f"/v2/credentials/{document['credentials_id']}"
    for _ in range(2):
        with closing(served.get(path)) as response:
            assert response.status_code == 503
            assert response.json()["code"] == "CredentialsUninitialized"
    with closing(served.get(path)) as response:
        assert response.status_code == 200
        assert response.json()["RoleArn"] == DEFAULT_ROLE_ARN


def test_fail_first_is_retried_by_the_provider(serve: Callable[..., Served]) -> None:
    served = serve("--fake", "--fail-first", "1", "--fail-status", "500")
    document = running(served)
    with closing(provider_for(document)) as provider:
        assert provider.get().role_arn == DEFAULT_ROLE_ARN


def test_throttle_answers_429_over_the_burst(serve: Callable[..., Served]) -> None:
    served = serve("--fake", "--throttle", "0.5", "--burst", "2")
    document = running(served)
    path = f"/v2/credentials/{document['credentials_id']}"
    statuses = []
    for _ in range(3):
        with closing(served.get(path)) as response:
            statuses.append(response.status_code)
            body = response.text
    assert statuses == [200, 200, 429]
    assert body == "You have reached maximum request limit."


def test_latency_delays_answers(serve: Callable[..., Served]) -> None:
    served = serve("--fake", "--latency", "0.3")
    document = running(served)
    began = time.monotonic()
    with closing(served.get(f"/v2/credentials/{document['credentials_id']}")) as response:
        assert response.status_code == 200
    assert time.monotonic() - began >= 0.3


# --- who may ask: the Host check and a capability on every credentials path


def raw_get(port: int, path: str, headers: list[str]) -> tuple[int, bytes]:
    """A hand-written HTTP/1.1 GET to 127.0.0.1 with exactly these header lines: status, response."""
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall((request + "Connection: close\r\n\r\n").encode("latin-1"))
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response.split(b" ", 2)[1]), response


def test_a_rebinding_web_page_gets_no_credentials(serve: Callable[..., Served]) -> None:
    # A page on attacker.example:51679 rebinds its name to 127.0.0.1: its requests reach the port
    # with the page's own name as Host. Even with the right ID it must get nothing.
    served = serve("--fake")
    document = running(served)
    path = f"/v2/credentials/{document['credentials_id']}"
    with closing(served.get(path)) as response:
        secrets = [response.json()[name] for name in ("AccessKeyId", "SecretAccessKey", "Token")]
    for target, headers in [
        (path, [f"Host: attacker.example:{served.port}"]),
        ("/creds", ["Host: attacker.example:51679"]),
        (path, []),  # no Host at all: refused as well
    ]:
        status, answer = raw_get(served.port, target, headers)
        assert status == 421, (target, headers)
        assert not [secret for secret in secrets if secret.encode() in answer]
    assert "refused a request for Host 'attacker.example:51679'" in served.stderr()
    # With its own Host, the ID-less emulator paths are unknown unless --compat-paths is given.
    for emulator_path in ("/creds", "/role/AppA"):
        with closing(served.get(emulator_path)) as response:
            assert (response.status_code, response.text) == (404, "404 page not found\n")
    assert (document["allowed_hosts"], document["compat_paths"]) == ([], False)
    assert served.stop()[0] == 0


def test_compat_paths_and_allowed_hosts(serve: Callable[..., Served]) -> None:
    served = serve("--fake", "--compat-paths", "--allow-host", "Credentials")
    document = running(served)
    assert (document["allowed_hosts"], document["compat_paths"]) == (["credentials"], True)
    status, answer = raw_get(served.port, "/creds", [f"Host: credentials:{served.port}"])
    assert status == 200
    assert b'"AccessKeyId":"ASIA' in answer
    with closing(served.get("/role/AppA")) as response:
        assert response.status_code == 200
    assert raw_get(served.port, "/creds", ["Host: attacker.example"])[0] == 421
    assert "warning: --compat-paths: /creds and /role/<name> answer without" in served.stderr()


# --- EKS Pod Identity mode


def test_pod_identity_mode(serve: Callable[..., Served], tmp_path: Path) -> None:
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("pod-token-1\n")
    served = serve("--fake", "--pod-identity-token-file", str(token_file))
    document = running(served)
    assert document["pod_identity"] is True
    assert document["environment"] == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{served.port}/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    with closing(provider_for(document)) as provider:
        credentials = provider.get()
    # EKS sends AccountId and no RoleArn.
    assert (credentials.role_arn, credentials.account_id) == (None, "123456789012")
    with closing(served.get("/v1/credentials")) as response:
        assert (response.status_code, response.text) == (
            400,
            "Service account token cannot be empty\n",
        )
    with closing(served.get("/v1/credentials", headers={"Authorization": "other"})) as response:
        assert response.status_code == 403


def test_pod_identity_mode_wants_the_token_on_every_path(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("pod-token-1\n")
    served = serve("--fake", "--pod-identity-token-file", str(token_file), "--compat-paths")
    document = running(served)
    for path in (f"/v2/credentials/{document['credentials_id']}", "/creds", "/role/AppA"):
        with closing(served.get(path)) as response:
            assert (response.status_code, response.text) == (
                400,
                "Service account token cannot be empty\n",
            ), path
        with closing(served.get(path, headers={"Authorization": "other"})) as response:
            assert response.status_code == 403, path
        with closing(served.get(path, headers={"Authorization": "pod-token-1"})) as response:
            assert response.status_code == 200, path
            assert response.json()["AccountId"] == "123456789012"


# --- start-up failures


def test_a_taken_port_is_a_configuration_error(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    first = serve("--fake")
    port = running(first)["port"]
    second = serve("--fake", "--port", str(port))
    document = second.document()
    assert second.finish() == 2
    assert document["ok"] is False
    assert document["error"]["message"].startswith(f"cannot listen on 127.0.0.1 port {port}")


def test_no_aws_credentials_fail_fast(serve: Callable[..., Served]) -> None:
    served = serve(json_mode=False)
    assert served.finish() == 2
    assert served.read_line() is None  # nothing on stdout
    stderr = served.stderr()
    assert "no AWS credentials found" in stderr
    assert "Traceback" not in stderr


def test_a_failing_source_is_a_500_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    def failing() -> taskcreds.Credentials:
        raise CredentialSourceError("STS AssumeRole failed: AccessDenied: no", hint="fix it")

    with AgentServer(failing) as server, requests.Session() as session:
        session.trust_env = False
        with caplog.at_level(logging.ERROR, logger="taskcreds.local"):
            response = session.get(server.full_uri, timeout=5)
    assert response.status_code == 500
    assert response.json() == {
        "code": "InternalServerError",
        "message": "Internal server error",
        "HTTPErrorCode": 500,
    }
    [record] = [r for r in caplog.records if r.name == "taskcreds.local"]
    assert record.exc_info is None  # a source that explains itself gets no traceback
    assert record.getMessage() == (
        "the credential source failed: STS AssumeRole failed: AccessDenied: no (hint: fix it)"
    )


# --- real STS (SeaweedFS)


def seaweed_environment(seaweed: SeaweedFS, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = scrubbed_environment(tmp_path)
    env.update(seaweed.environment())
    env.update(extra)
    return env


def admin_keys(seaweed: SeaweedFS) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": seaweed.admin_access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.admin_secret_key,
    }


def test_assume_role_serves_real_session_credentials(
    seaweed: SeaweedFS, serve: Callable[..., Served], tmp_path: Path
) -> None:
    from botocore.exceptions import ClientError

    role_arn = seaweed.role_arn("AppA")
    env = seaweed_environment(seaweed, tmp_path, **admin_keys(seaweed))
    served = serve("--role-arn", role_arn, "--role-session-name", "serve-local-test", env=env)
    document = running(served)
    assert document["source"] == "assume-role"
    with closing(provider_for(document)) as provider:
        credentials = provider.get()
    assert credentials.access_key_id.startswith("ASIA")
    assert (credentials.role_arn, credentials.account_id) == (role_arn, "123456789012")
    with closing(seaweed.client("s3", credentials)) as s3:
        s3.put_object(Bucket="app-a", Key="serve-local/ok.txt", Body=b"hello")
        with pytest.raises(ClientError) as denied:
            s3.put_object(Bucket="app-b", Key="serve-local/no.txt", Body=b"no")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert served.stop(signal.SIGINT)[0] == 0


def test_assume_role_denied_fails_fast(
    seaweed: SeaweedFS, serve: Callable[..., Served], tmp_path: Path
) -> None:
    env = seaweed_environment(seaweed, tmp_path, **admin_keys(seaweed))
    served = serve("--role-arn", seaweed.role_arn("NoSuchRole"), env=env)
    document = served.document()
    assert served.finish() == 2
    error = document["error"]
    assert error["type"] == "CredentialSourceError"
    assert error["code"] == "AccessDenied"
    assert error["message"].startswith("STS AssumeRole failed: AccessDenied:")
    assert "trust policy" in error["hint"]


def test_long_term_keys_need_get_session_token_which_seaweedfs_refuses(
    seaweed: SeaweedFS, serve: Callable[..., Served], tmp_path: Path
) -> None:
    # SeaweedFS 4.48 answers GetSessionToken with 403 AccessDenied "IAM write operations are
    # disabled on this server": the default source must say so, and what to use instead.
    served = serve(env=seaweed_environment(seaweed, tmp_path, **admin_keys(seaweed)))
    document = served.document()
    assert served.finish() == 2
    error = document["error"]
    assert error["message"].startswith("STS GetSessionToken failed: AccessDenied")
    assert "--role-arn" in error["hint"]
    assert seaweed.admin_secret_key not in json.dumps(document) + served.stderr()


def test_temporary_credentials_are_passed_through(
    seaweed: SeaweedFS, serve: Callable[..., Served], tmp_path: Path
) -> None:
    own = seaweed.assume_role("AppB", session_name="developer")
    env = seaweed_environment(
        seaweed,
        tmp_path,
        AWS_ACCESS_KEY_ID=own.access_key_id,
        AWS_SECRET_ACCESS_KEY=own.secret_access_key,
        AWS_SESSION_TOKEN=own.token,
    )
    served = serve(env=env)
    document = running(served)
    assert document["source"] == "session"
    with closing(provider_for(document)) as provider:
        credentials = provider.get()
    assert (credentials.access_key_id, credentials.token) == (own.access_key_id, own.token)
    # The identity SeaweedFS reports: the role's name, in its own account (000000000000).
    assert credentials.role_arn is not None
    assert credentials.role_arn.endswith(":role/AppB")
    with closing(seaweed.client("s3", credentials)) as s3:
        s3.put_object(Bucket="app-b", Key="serve-local/pass-through.txt", Body=b"hi")
