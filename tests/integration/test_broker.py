"""The broker against a real agent-compatible server, all on 127.0.0.1: guard, shape, outage,
serving from cache, per-client statistics, the Unix socket, and SDK peers through it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import taskcreds
from taskcreds.broker import Broker
from taskcreds.local import AgentServer, Faults, RotatingSource
from taskcreds_demo.seaweed import SeaweedFS
from tests.conftest import in_ci, unavailable

from ._broker_client import get
from .conftest import ROLE_ARN

REPO = Path(__file__).resolve().parents[2]


def token_of(broker: Broker) -> str:
    return Path(broker.token_file).read_text()


def clean_env(**extra: str) -> dict[str, str]:
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    environ.update(extra)
    return environ


# -- the guard ---------------------------------------------------------------------------------


def test_token_file_is_private_and_removed_on_close(upstream: AgentServer) -> None:
    with Broker(environ=upstream.environment()) as broker:
        token_file = Path(broker.token_file)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        assert len(token_file.read_text()) >= 43  # 32 random bytes, base64url
        assert broker.environment() == {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": broker.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        }
    assert not token_file.parent.exists()


def test_missing_wrong_and_stale_tokens_get_nothing(upstream: AgentServer) -> None:
    with Broker(environ=upstream.environment()) as old:
        stale = token_of(old)
    with Broker(environ=upstream.environment()) as broker:
        secret = upstream.source.fetch().secret_access_key  # type: ignore[union-attr]
        for token, status, code in [
            (None, 401, "MissingAuthorizationToken"),
            ("", 401, "MissingAuthorizationToken"),
            ("wrong", 403, "InvalidAuthorizationToken"),
            (stale, 403, "InvalidAuthorizationToken"),
            (token_of(broker) + "x", 403, "InvalidAuthorizationToken"),
        ]:
            answer = get(broker.url, token=token)
            assert answer.status == status
            assert answer.json() == {
                "code": code,
                "message": answer.json()["message"],
                "HTTPErrorCode": status,
            }
            assert secret.encode() not in answer.body
            assert b"SecretAccessKey" not in answer.body
        for path in ("/stats",):
            assert get(broker.url, token="wrong", path=path).status == 403
        assert get(broker.url, token=token_of(broker)).status == 200


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:{port}",
        "attacker.example",
        "127.0.0.1:1",
        "localhost:1",
        "10.0.0.1:{port}",
    ],
)
def test_host_mismatch_is_refused(broker: Broker, host: str) -> None:
    answer = get(broker.url, token=token_of(broker), host=host.format(port=broker.port))
    assert answer.status == 421
    assert answer.json()["code"] == "MisdirectedRequest"
    assert b"AccessKeyId" not in answer.body


def test_raw_socket_with_attacker_host_gets_no_credentials(broker: Broker) -> None:
    request = (
        f"GET /v1/credentials HTTP/1.1\r\nHost: attacker.example:{broker.port}\r\n"
        f"Authorization: {token_of(broker)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw:
        raw.sendall(request)
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 421 ")
    assert b"AccessKeyId" not in received


def test_localhost_with_the_port_is_accepted(broker: Broker) -> None:
    answer = get(broker.url, token=token_of(broker), host=f"localhost:{broker.port}")
    assert answer.status == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com"])
def test_non_loopback_bind_is_refused(host: str) -> None:
    with pytest.raises(taskcreds.ConfigError, match="loopback"):
        Broker(
            taskcreds.CredentialProvider(
                {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/x"}, prefetch=True
            ),
            host=host,
        )


def test_non_loopback_bind_when_forced_warns(caplog: pytest.LogCaptureFixture) -> None:
    provider = taskcreds.CredentialProvider(
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/x"}, prefetch=True
    )
    with caplog.at_level(logging.WARNING, "taskcreds.broker"):
        Broker(provider, host="0.0.0.0", allow_non_loopback=True)
    assert "not loopback" in caplog.text


def test_a_provider_that_does_not_refresh_itself_is_refused() -> None:
    # The broker answers from cache: a provider without a prefetch thread would never refresh.
    provider = taskcreds.CredentialProvider(
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/x"}
    )
    with pytest.raises(taskcreds.ConfigError, match="refreshes itself") as caught:
        Broker(provider)
    assert "prefetch=True" in (caught.value.hint or "")


# -- what it serves ----------------------------------------------------------------------------


def test_document_shape_matches_the_agent(upstream: AgentServer, broker: Broker) -> None:
    ours = get(broker.url, token=token_of(broker))
    agents = get(upstream.full_uri)
    assert ours.status == agents.status == 200
    assert ours.content_type == agents.content_type == "application/json"
    served, original = ours.json(), agents.json()
    assert list(served) == [
        "RoleArn",
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "AccountId",
        "Expiration",
    ]
    assert {k: v for k, v in served.items() if k != "AccountId"} == original
    assert served["AccountId"] == "123456789012"
    assert served["Expiration"].endswith("Z")
    expiry = datetime.strptime(served["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    assert expiry > datetime.now(timezone.utc)


def test_unknown_path_and_method(broker: Broker) -> None:
    token = token_of(broker)
    missing = get(broker.url, token=token, path="/v2/credentials/x")
    assert (missing.status, missing.body) == (404, b"404 page not found\n")
    assert get(broker.url, token=token, method="POST").status == 405


def test_first_fetch_failure_raises_and_cleans_up(upstream: AgentServer) -> None:
    upstream.faults.update(fail_first=100, fail_status=500)
    broker = Broker(environ=upstream.environment())
    with pytest.raises(taskcreds.EndpointHTTPError):
        broker.start()
    assert broker._token_dir is None


# -- serving from cache; outages ---------------------------------------------------------------


def test_many_requests_cost_one_upstream_fetch(upstream: AgentServer, broker: Broker) -> None:
    token = token_of(broker)
    for _ in range(50):
        assert get(broker.url, token=token).status == 200
    assert upstream.request_count == 1
    assert broker.stats().upstream.fetches == 1


def test_a_hanging_upstream_does_not_delay_clients(upstream: AgentServer, broker: Broker) -> None:
    token = token_of(broker)
    upstream.faults.update(hang=True)
    refreshing = threading.Thread(target=lambda: _swallow(broker.provider.refresh), daemon=True)
    refreshing.start()
    assert upstream.wait_for_requests(2)  # the refresh is in flight, hanging
    began = time.monotonic()
    for _ in range(20):
        assert get(broker.url, token=token).status == 200
    assert time.monotonic() - began < 1.0
    upstream.faults.update(hang=False)
    upstream.stop()  # releases the hanging handler
    refreshing.join(10)


def _swallow(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except taskcreds.TaskCredsError:
        pass


def test_outage_serves_cached_set_until_expiry_then_agent_503() -> None:
    source = RotatingSource(role_arn=ROLE_ARN, lifetime=4)
    with (
        AgentServer(source, faults=Faults()) as upstream,
        Broker(environ=upstream.environment()) as broker,
    ):
        token = token_of(broker)
        first = get(broker.url, token=token).json()
        upstream.faults.update(fail_first=10_000, fail_status=503)
        expiry = datetime.strptime(first["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=timezone.utc
        )
        # Until it expires, the cached set, whatever upstream says.
        while (expiry - datetime.now(timezone.utc)).total_seconds() > 0.3:
            answer = get(broker.url, token=token)
            assert answer.status == 200
            assert answer.json()["AccessKeyId"] == first["AccessKeyId"]
            time.sleep(0.1)
        while datetime.now(timezone.utc) < expiry:
            time.sleep(0.05)
        time.sleep(0.1)
        down = get(broker.url, token=token)
        assert down.status == 503
        assert down.json() == {
            "code": "CredentialsUninitialized",
            "message": down.json()["message"],
            "HTTPErrorCode": 503,
        }
        assert b"AccessKeyId" not in down.body
        stats = broker.stats()
        assert stats.upstream.failures >= 1
        assert "CredentialsUninitialized" in (stats.upstream.last_error or "")
        failed_so_far = upstream.request_count
        for _ in range(20):  # an outage does not multiply upstream load
            assert get(broker.url, token=token).status == 503
        assert upstream.request_count - failed_so_far <= 3
        # Upstream back: a fresh set.
        upstream.faults.reset()
        deadline = time.monotonic() + 10
        while (answer := get(broker.url, token=token)).status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert answer.json()["AccessKeyId"] != first["AccessKeyId"]
        assert datetime.strptime(answer.json()["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=timezone.utc
        ) > datetime.now(timezone.utc)


def test_refreshes_about_once_per_lifetime_while_clients_hammer() -> None:
    # 4 s sets arrive with 3-4 s left (whole-second Expiration); the broker refreshes 1 s before
    # expiry, so every 2-3 s, however often clients ask.
    source = RotatingSource(role_arn=ROLE_ARN, lifetime=4)
    with (
        AgentServer(source, faults=Faults()) as upstream,
        Broker(environ=upstream.environment()) as broker,
    ):
        token = token_of(broker)
        keys = set()
        asked = 0
        end = time.monotonic() + 8  # two lifetimes
        while time.monotonic() < end:
            answer = get(broker.url, token=token)
            assert answer.status == 200
            keys.add(answer.json()["AccessKeyId"])
            asked += 1
        fetches = upstream.request_count
        assert asked > 100
        assert fetches <= 1 + 8 // 2  # the first, then at most one per 2 s
        assert fetches <= len(keys) + 1  # every refresh brought a new set
        assert len(keys) >= 3


# -- statistics --------------------------------------------------------------------------------


def test_stats_count_per_client_and_user_agent(broker: Broker) -> None:
    token = token_of(broker)
    child = (
        "import http.client, sys\n"
        "c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))\n"
        "for _ in range(3):\n"
        "    c.request('GET', '/v1/credentials', headers={'Authorization': sys.argv[2],"
        " 'User-Agent': 'child-agent/1.0'})\n"
        "    assert c.getresponse().read()\n"
        "print(__import__('os').getpid())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(broker.port), token],
        capture_output=True,
        text=True,
        check=True,
    )
    child_pid = int(done.stdout)
    assert get(broker.url, token="nope").status == 403
    stats = broker.stats()
    by_pid = {client.pid: client for client in stats.clients}
    assert by_pid[child_pid].requests == 3
    assert by_pid[child_pid].served == 3
    assert by_pid[child_pid].name == "python" or by_pid[child_pid].name
    assert by_pid[os.getpid()].refused == 1
    assert stats.user_agents["child-agent/1.0"] == 3
    assert stats.statuses == {"200": 3, "403": 1}
    assert stats.served_from_cache == 3
    assert stats.upstream.fetches == 1
    assert stats.upstream.exact
    assert stats.credentials is not None
    assert 0 < stats.credentials.seconds_left <= 3600
    # GET /stats: the same, as JSON, and never a secret
    answer = get(broker.url, token=token, path="/stats")
    assert answer.status == 200
    document = answer.json()
    assert document["user_agents"]["child-agent/1.0"] == 3
    secret = broker.provider.peek()
    assert secret is not None
    for value in (secret.secret_access_key, secret.token, secret.access_key_id, token):
        assert value not in answer.body.decode()
        assert value not in json.dumps(stats.to_dict())


def test_unix_socket_names_the_peer_by_so_peercred(upstream: AgentServer) -> None:
    # AF_UNIX paths are short: use a short private directory.
    directory = Path(f"/tmp/tcb-{os.getpid()}")
    directory.mkdir(mode=0o700)
    try:
        path = str(directory / "broker.sock")
        with Broker(environ=upstream.environment(), unix_socket=path) as broker:
            assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0
            with socket.socket(socket.AF_UNIX) as raw:
                raw.connect(path)
                raw.sendall(
                    b"GET /v1/credentials HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                    + f"Authorization: {token_of(broker)}\r\n\r\n".encode()
                )
                received = b""
                while chunk := raw.recv(65536):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 200 ")
            (client,) = broker.stats().clients
            assert client.pid == os.getpid()
            assert client.address == "unix"
            with pytest.raises(taskcreds.ConfigError):
                broker.environment()
        assert not os.path.exists(path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- SDK peers through the broker --------------------------------------------------------------

BOTOCORE_PEER = """
import botocore.session
frozen = botocore.session.Session().get_credentials().get_frozen_credentials()
print(frozen.access_key, frozen.secret_key, frozen.token)
"""


def test_plain_botocore_gets_the_brokers_keys(broker: Broker) -> None:
    peer = subprocess.run(
        [sys.executable, "-c", BOTOCORE_PEER],
        env=clean_env(**broker.environment()),
        capture_output=True,
        text=True,
        check=True,
    )
    served = broker.provider.peek()
    assert served is not None
    assert peer.stdout.split() == [served.access_key_id, served.secret_access_key, served.token]
    (client,) = [c for c in broker.stats().clients if c.served]
    assert client.pid is not None
    # botocore's container fetcher sends urllib3's own User-Agent
    assert any(agent.startswith("python-urllib3/") for agent in broker.stats().user_agents)


def aws(
    args: list[str], env: dict[str, str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("aws")), *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_aws_cli_signs_with_the_roles_sts_credentials(seaweed: SeaweedFS) -> None:
    with (
        AgentServer(lambda: seaweed.assume_role("AppA")) as upstream,
        Broker(environ=upstream.environment()) as broker,
    ):
        env = clean_env(**seaweed.environment(), **broker.environment())
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        args = ["--endpoint-url", seaweed.s3_endpoint, "--region", seaweed.region]
        written = aws(["s3", "cp", "-", "s3://app-a/broker/hello.txt", *args], env, b"hi broker\n")
        assert written.returncode == 0, written.stderr
        read = aws(["s3", "cp", "s3://app-a/broker/hello.txt", "-", *args], env)
        assert read.stdout == b"hi broker\n", read.stderr
        denied = aws(["s3", "cp", "-", "s3://app-b/broker/nope.txt", *args], env, b"x")
        assert denied.returncode != 0
        assert b"AccessDenied" in denied.stderr
        assert upstream.request_count == 1  # three aws processes, one upstream fetch
        served_pids = {c.pid for c in broker.stats().clients if c.served}
        assert len(served_pids) == 3
        assert None not in served_pids


JS_PEER = """
const { fromHttp } = require("@aws-sdk/credential-provider-http");
fromHttp({})().then(
  (c) => { console.log(JSON.stringify({ key: c.accessKeyId, token: c.sessionToken,
                                         expiration: c.expiration.toISOString() })); },
  (e) => { console.error(String(e)); process.exit(1); });
"""


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """``@aws-sdk/credential-provider-http`` installed under .venv/js (once; npm's cache)."""
    prefix = REPO / ".venv" / "js"
    module = prefix / "node_modules" / "@aws-sdk" / "credential-provider-http"
    if module.is_dir():
        return prefix
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        unavailable("node and npm are needed for the JS SDK peer")
    prefix.mkdir(parents=True, exist_ok=True)
    installed = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "@aws-sdk/credential-provider-http",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0 or not module.is_dir():
        message = f"npm install @aws-sdk/credential-provider-http failed: {installed.stderr[-500:]}"
        if in_ci():
            pytest.fail(message)
        unavailable(message)
    return prefix


def test_js_sdk_from_http_gets_the_brokers_keys(js_sdk: Path, broker: Broker) -> None:
    node = shutil.which("node")
    assert node is not None
    peer = subprocess.run(
        [node, "-e", JS_PEER],
        env=clean_env(**broker.environment(), NODE_PATH=str(js_sdk / "node_modules")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=js_sdk,
    )
    assert peer.returncode == 0, peer.stderr
    got = json.loads(peer.stdout)
    served = broker.provider.peek()
    assert served is not None
    assert (got["key"], got["token"]) == (served.access_key_id, served.token)


def test_a_closed_provider_is_refused_at_start(upstream: AgentServer) -> None:
    provider = taskcreds.CredentialProvider(upstream.environment(), prefetch=True)
    broker = Broker(provider)
    provider.close()
    with pytest.raises(taskcreds.ConfigError, match="no longer refreshes"):
        broker.start()


def test_requests_refresh_a_provider_closed_while_serving(upstream: AgentServer) -> None:
    # Nothing would refresh it otherwise: answers come from peek(), which never fetches.
    provider = taskcreds.CredentialProvider(upstream.environment(), prefetch=True)
    with Broker(provider) as broker:
        assert get(broker.url, token=token_of(broker)).status == 200
        provider.close()
        before = upstream.request_count
        provider._fast = (provider._fast[0], -1.0)  # a refresh is due (as at the advisory point)
        assert get(broker.url, token=token_of(broker)).status == 200
        assert upstream.request_count == before + 1  # the request refreshed it
