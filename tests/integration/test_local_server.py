"""The local agent-compatible server, over real HTTP on 127.0.0.1: paths, errors, faults, lifecycle."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.client import HTTPConnection, IncompleteRead
from pathlib import Path

import pytest
import requests

from taskcreds.credentials import Credentials, parse_credentials
from taskcreds.errors import MalformedResponseError
from taskcreds.local import (
    AGENT_RPS_BURST,
    AGENT_RPS_LIMIT,
    THROTTLE_MESSAGE,
    AgentServer,
    Faults,
    RateLimiter,
    RotatingSource,
    StaticSource,
    credentials_document,
)
from taskcreds.local._answers import HostPolicy

ROLE_ARN = "arn:aws:iam::123456789012:role/app-a"
CREDENTIALS = Credentials(
    access_key_id="ASIAEXAMPLEEXAMPLE00",
    secret_access_key="s" * 40,
    token="token-value",
    expiration=datetime(2026, 11, 29, 23, 4, 5, tzinfo=timezone.utc),
    role_arn=ROLE_ARN,
    account_id="123456789012",
)
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
ECS_FIELDS = ["RoleArn", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
EKS_FIELDS = ["AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"]


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def server(faults: Faults) -> Iterator[AgentServer]:
    with AgentServer(StaticSource(CREDENTIALS), faults=faults) as running:
        yield running


@pytest.fixture
def compat_server(faults: Faults) -> Iterator[AgentServer]:
    """A server that also answers amazon-ecs-local-container-endpoints' ID-less paths."""
    with AgentServer(StaticSource(CREDENTIALS), faults=faults, compat_paths=True) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # no proxy may see these requests
    with session:
        yield session


def get(
    http: requests.Session, url: str, headers: dict[str, str] | None = None
) -> requests.Response:
    """A GET whose body is read in full and whose connection goes back to the pool."""
    response = http.get(url, headers=headers, timeout=2)
    response.close()
    return response


def agent_error(code: str, message: str, status: int) -> dict[str, object]:
    return {"code": code, "message": message, "HTTPErrorCode": status}


def raw_get(port: int, path: str, headers: list[str]) -> tuple[int, bytes, bytes]:
    """A hand-written HTTP/1.1 GET to 127.0.0.1, exactly these header lines: status, head, body."""
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in headers)
    request += "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request.encode("latin-1"))
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def assert_no_credentials(*parts: bytes) -> None:
    for part in parts:
        for secret in (CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key, CREDENTIALS.token):
            assert secret.encode() not in part


# --- answers ---------------------------------------------------------------------------------


def test_v2_answers_the_agent_document_in_the_agent_order(
    server: AgentServer, http: requests.Session
) -> None:
    response = get(http, server.full_uri)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON
    assert response.headers["Content-Length"] == str(len(response.content))
    assert "Date" in response.headers
    document = json.loads(response.content)
    assert list(document) == ECS_FIELDS
    assert document["Expiration"] == "2026-11-29T23:04:05Z"
    assert parse_credentials(response.content) == CREDENTIALS


def test_addresses(server: AgentServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.relative_uri == f"/v2/credentials/{server.credentials_id}"
    assert server.full_uri == server.base_url + server.relative_uri
    assert server.environment() == {"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.full_uri}


def test_the_legacy_path_answers_credentials(server: AgentServer, http: requests.Session) -> None:
    response = get(http, f"{server.base_url}/v1/credentials?id={server.credentials_id}")

    assert response.status_code == 200
    assert list(json.loads(response.content)) == ECS_FIELDS


@pytest.mark.parametrize("path", ["/creds", "/role/app-a"])
def test_emulator_paths_answer_credentials_only_when_asked_for(
    server: AgentServer, compat_server: AgentServer, http: requests.Session, path: str
) -> None:
    # They carry no capability: by default they are unknown paths, as on the ECS agent.
    refused = get(http, server.base_url + path)
    response = get(http, compat_server.base_url + path)

    assert (refused.status_code, refused.content) == (404, b"404 page not found\n")
    assert response.status_code == 200
    assert list(json.loads(response.content)) == ECS_FIELDS


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        (
            "/v2/credentials/not-the-id",
            400,
            agent_error("InvalidIdInRequest", "CredentialsV2Request: Credentials not found", 400),
        ),
        (
            "/v2/credentials",
            400,
            agent_error(
                "NoIdInRequest", "CredentialsV2Request: No Credential ID in the request", 400
            ),
        ),
        (
            "/v2/credentials/",
            400,
            agent_error(
                "NoIdInRequest", "CredentialsV2Request: No Credential ID in the request", 400
            ),
        ),
        (
            "/v1/credentials",
            400,
            agent_error(
                "NoIdInRequest", "CredentialsV1Request: No Credential ID in the request", 400
            ),
        ),
        (
            "/v1/credentials?id=not-the-id",
            400,
            agent_error("InvalidIdInRequest", "CredentialsV1Request: Credentials not found", 400),
        ),
    ],
)
def test_agent_errors_are_json(
    server: AgentServer, http: requests.Session, path: str, status: int, body: dict[str, object]
) -> None:
    response = get(http, server.base_url + path)

    assert response.status_code == status
    assert response.headers["Content-Type"] == JSON
    assert response.headers["Content-Length"] == str(len(response.content))
    assert json.loads(response.content) == body


@pytest.mark.parametrize("path", ["/", "/latest/meta-data/", "/role/", "/v3/credentials/x"])
def test_unknown_paths_get_go_404(
    compat_server: AgentServer, http: requests.Session, path: str
) -> None:
    response = get(http, compat_server.base_url + path)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == TEXT
    assert response.content == b"404 page not found\n"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_only_get_is_allowed(server: AgentServer, http: requests.Session, method: str) -> None:
    response = http.request(method, server.full_uri, timeout=2)
    response.close()

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.headers["Connection"] == "close"  # a request body is never read


def test_a_failing_source_is_an_internal_server_error(http: requests.Session) -> None:
    def broken() -> Credentials:
        raise RuntimeError("no credentials today")

    with AgentServer(broken) as server:
        response = get(http, server.full_uri)

    assert response.status_code == 500
    assert json.loads(response.content) == agent_error(
        "InternalServerError", "Internal server error", 500
    )


def test_requests_are_recorded_with_authorization(
    server: AgentServer, http: requests.Session
) -> None:
    get(http, server.full_uri, headers={"Authorization": "secret-token"})
    get(http, server.base_url + "/nope")

    first, second = server.requests
    assert server.request_count == 2
    assert (first.method, first.path, first.status) == ("GET", server.relative_uri, 200)
    assert first.headers["Authorization"] == "secret-token"
    assert first.client[0] == "127.0.0.1"
    assert (second.path, second.status) == ("/nope", 404)
    server.clear_requests()
    assert server.request_count == 0


# --- Host check: a web page that rebinds its name to 127.0.0.1 must get nothing -------------


@pytest.mark.parametrize(
    "host_lines",
    [
        ["Host: attacker.example:51679"],
        ["Host: attacker.example"],
        ["Host: 127.0.0.1.attacker.example"],
        ["Host: localhost.attacker.example:51679"],
        [],  # HTTP/1.1 requires Host: a request without one is refused too
        ["Host: 127.0.0.1", "Host: attacker.example"],
        ["Host: 127.0.0.1:port"],
        ["Host: "],
    ],
)
@pytest.mark.parametrize("path", ["/v2/credentials/{id}", "/v1/credentials?id={id}"])
def test_a_foreign_host_is_refused_with_nothing_worth_having(
    server: AgentServer, host_lines: list[str], path: str
) -> None:
    # The credentials ID is right: only the Host is wrong.
    target = path.format(id=server.credentials_id)

    status, head, body = raw_get(server.port, target, host_lines)

    assert status == 421
    assert body == b"Misdirected Request\n"
    assert_no_credentials(head, body)
    assert server.requests[-1].status == 421


@pytest.mark.parametrize("path", ["/creds", "/role/app-a"])
def test_a_foreign_host_is_refused_on_the_emulator_paths_too(
    compat_server: AgentServer, path: str
) -> None:
    status, head, body = raw_get(compat_server.port, path, ["Host: attacker.example:51679"])

    assert (status, body) == (421, b"Misdirected Request\n")
    assert_no_credentials(head, body)


def test_a_foreign_host_is_refused_before_any_fault(server: AgentServer, faults: Faults) -> None:
    faults.update(fail_first=1, latency=30.0)  # a wait this long would fail the test

    status, _, _ = raw_get(server.port, server.relative_uri, ["Host: attacker.example"])

    assert status == 421
    assert faults.fail_first == 1


def test_a_refused_host_is_logged_once(
    server: AgentServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="taskcreds.local"):
        for _ in range(2):
            raw_get(server.port, server.relative_uri, ["Host: attacker.example:51679"])

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'attacker.example:51679'" in warnings[0]
    assert server.credentials_id not in caplog.text


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:{port}",
        "127.0.0.1:",
        "localhost",
        "LOCALHOST:{port}",
        "localhost:8080",
    ],
)
def test_own_address_and_localhost_are_answered(server: AgentServer, host: str) -> None:
    line = "Host: " + host.format(port=server.port)

    status, _, body = raw_get(server.port, server.relative_uri, [line])

    assert status == 200
    assert parse_credentials(body) == CREDENTIALS


def test_allowed_hosts_are_answered(http: requests.Session) -> None:
    names = ["Credentials", "10.0.0.7", "[fd00::7]"]
    with AgentServer(StaticSource(CREDENTIALS), allowed_hosts=names) as server:
        for host in ("credentials:51679", "CREDENTIALS", "10.0.0.7:80", "[fd00::7]:51679"):
            status, _, _ = raw_get(server.port, server.relative_uri, [f"Host: {host}"])
            assert status == 200, host
        status, _, _ = raw_get(server.port, server.relative_uri, ["Host: other:51679"])
        assert status == 421
        # What requests sends on its own (Host: 127.0.0.1:PORT) is still answered.
        assert get(http, server.full_uri).status_code == 200


@pytest.mark.parametrize("name", ["credentials:51679", "*.example", "http://x", "", "a b"])
def test_allowed_hosts_must_be_names_or_addresses(name: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        AgentServer(StaticSource(CREDENTIALS), allowed_hosts=[name])


@pytest.mark.parametrize(
    ("bound", "header", "local", "allowed"),
    [
        # Bound to one address: that address (IPv6 in brackets), localhost, nothing else.
        ("127.0.0.1", "127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", "127.0.0.1", False),
        ("127.0.0.1", "[::ffff:127.0.0.1]:80", "127.0.0.1", True),
        ("::1", "[::1]:51679", "::1", True),
        ("::1", "[0:0::1]", "::1", True),
        ("::1", "::1", "::1", False),  # unbracketed IPv6 is not a valid Host
        ("::1", "[::1", "::1", False),
        ("169.254.170.2", "169.254.170.2", "169.254.170.2", True),  # what SDKs send on port 80
        ("169.254.170.2", "169.254.170.2:80", "169.254.170.2", True),
        ("169.254.170.2", "127.0.0.1", "169.254.170.2", False),
        ("fd00:ec2::23", "[fd00:ec2::23]", "fd00:ec2::23", True),
        ("localhost", "localhost", "127.0.0.1", True),
        # Bound to a wildcard: clients come through loopback or through the address they used.
        ("0.0.0.0", "127.0.0.1:51679", "127.0.0.1", True),
        ("0.0.0.0", "0.0.0.0:51679", "127.0.0.1", True),  # what base_url says
        ("0.0.0.0", "127.0.0.5", "127.0.0.1", True),
        ("0.0.0.0", "[::1]", "::1", True),
        ("0.0.0.0", "172.18.0.2:51679", "172.18.0.2", True),
        ("::", "172.18.0.2", "::ffff:172.18.0.2", True),
        ("0.0.0.0", "172.18.0.3", "172.18.0.2", False),
        ("0.0.0.0", "credentials:51679", "172.18.0.2", False),
        ("0.0.0.0", "attacker.example", "127.0.0.1", False),
    ],
)
def test_host_policy(bound: str, header: str, local: str, allowed: bool) -> None:
    assert HostPolicy.for_server(bound).allows([header], local) is allowed


# --- EKS Pod Identity ------------------------------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "eks-pod-identity-token"
    path.write_text("token-one\n")  # one trailing newline is not part of the token
    return path


@pytest.fixture
def pod_server(token_file: Path) -> Iterator[AgentServer]:
    server = AgentServer(
        StaticSource(CREDENTIALS),
        pod_identity_token_file=str(token_file),
        include_role_arn=False,
        include_account_id=True,
    )
    with server:
        yield server


def test_pod_identity_answers_with_account_id(
    pod_server: AgentServer, http: requests.Session, token_file: Path
) -> None:
    url = pod_server.environment()["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert url == pod_server.base_url + "/v1/credentials"
    assert pod_server.environment()["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(token_file)

    response = get(http, url, headers={"Authorization": "token-one"})

    assert response.status_code == 200
    assert list(json.loads(response.content)) == EKS_FIELDS


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        ({}, 400, b"Service account token cannot be empty\n"),
        ({"Authorization": ""}, 400, b"Service account token cannot be empty\n"),
        ({"Authorization": "token-two"}, 403, b"Service account token is not valid\n"),
    ],
)
def test_pod_identity_refusals_are_plain_text(
    pod_server: AgentServer,
    http: requests.Session,
    headers: dict[str, str],
    status: int,
    body: bytes,
) -> None:
    response = get(http, pod_server.base_url + "/v1/credentials", headers=headers)

    assert response.status_code == status
    assert response.headers["Content-Type"] == TEXT
    assert response.content == body


def test_pod_identity_follows_token_rotation(
    pod_server: AgentServer, http: requests.Session, token_file: Path
) -> None:
    url = pod_server.base_url + "/v1/credentials"
    token_file.write_text("token-two")

    assert get(http, url, headers={"Authorization": "token-one"}).status_code == 403
    assert get(http, url, headers={"Authorization": "token-two"}).status_code == 200


@pytest.fixture
def compat_pod_server(token_file: Path) -> Iterator[AgentServer]:
    server = AgentServer(
        StaticSource(CREDENTIALS),
        pod_identity_token_file=str(token_file),
        include_role_arn=False,
        include_account_id=True,
        compat_paths=True,
    )
    with server:
        yield server


@pytest.mark.parametrize("path", ["/v2/credentials/{id}", "/creds", "/role/app-a"])
def test_pod_identity_wants_the_token_on_every_credentials_path(
    compat_pod_server: AgentServer, http: requests.Session, path: str
) -> None:
    url = compat_pod_server.base_url + path.format(id=compat_pod_server.credentials_id)

    missing = get(http, url)
    wrong = get(http, url, headers={"Authorization": "token-two"})
    right = get(http, url, headers={"Authorization": "token-one"})

    assert (missing.status_code, missing.content) == (
        400,
        b"Service account token cannot be empty\n",
    )
    assert (wrong.status_code, wrong.content) == (403, b"Service account token is not valid\n")
    for refused in (missing, wrong):
        assert_no_credentials(refused.content)
    assert right.status_code == 200
    assert list(json.loads(right.content)) == EKS_FIELDS


def test_pod_identity_v2_wants_the_id_too(pod_server: AgentServer, http: requests.Session) -> None:
    response = get(
        http, pod_server.base_url + "/v2/credentials/wrong", headers={"Authorization": "token-one"}
    )

    assert response.status_code == 400
    assert json.loads(response.content)["code"] == "InvalidIdInRequest"


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fail_status", "content_type", "body"),
    [
        (
            503,
            JSON,
            b'{"code":"CredentialsUninitialized","message":"CredentialsV2Request: '
            b'Credentials uninitialized for ID","HTTPErrorCode":503}',
        ),
        (
            500,
            JSON,
            b'{"code":"InternalServerError","message":"Internal server error","HTTPErrorCode":500}',
        ),
        (
            400,
            JSON,
            b'{"code":"InvalidIdInRequest","message":"CredentialsV2Request: '
            b'Credentials not found","HTTPErrorCode":400}',
        ),
        (429, TEXT, THROTTLE_MESSAGE.encode()),
        (502, TEXT, b"Bad Gateway\n"),
    ],
)
def test_fail_first_then_succeed(
    server: AgentServer,
    faults: Faults,
    http: requests.Session,
    fail_status: int,
    content_type: str,
    body: bytes,
) -> None:
    faults.update(fail_first=2, fail_status=fail_status)

    failures = [get(http, server.full_uri) for _ in range(2)]
    success = get(http, server.full_uri)

    for failure in failures:
        assert failure.status_code == fail_status
        assert failure.headers["Content-Type"] == content_type
        assert failure.content == body
    assert success.status_code == 200
    assert faults.fail_first == 0  # it counts down


def test_fail_first_on_emulator_path_is_plain_text(
    compat_server: AgentServer, faults: Faults, http: requests.Session
) -> None:
    faults.fail_first = 1

    response = get(http, compat_server.base_url + "/creds")

    assert response.status_code == 503
    assert response.headers["Content-Type"] == TEXT
    assert response.content == b"Service Unavailable\n"


def test_fail_first_does_not_hide_a_wrong_id(
    server: AgentServer, faults: Faults, http: requests.Session
) -> None:
    faults.fail_first = 1

    assert get(http, server.base_url + "/v2/credentials/wrong").status_code == 400
    assert faults.fail_first == 1


def test_throttle_answers_429_after_the_burst(
    server: AgentServer, faults: Faults, http: requests.Session
) -> None:
    faults.update(throttle_rps=AGENT_RPS_LIMIT, throttle_burst=AGENT_RPS_BURST)

    statuses: list[int] = []
    throttled: requests.Response | None = None
    # Sequential requests take well under a millisecond each: far above 40/s, so the bucket
    # empties after its 60 and a few refills.
    for _ in range(400):
        response = get(http, server.full_uri)
        statuses.append(response.status_code)
        if response.status_code == 429:
            throttled = response
            break

    assert throttled is not None
    assert statuses.count(200) >= AGENT_RPS_BURST
    assert throttled.headers["Content-Type"] == TEXT
    assert throttled.content == THROTTLE_MESSAGE.encode()


def test_rate_limiter_refills_per_client() -> None:
    now = [0.0]
    limiter = RateLimiter(monotonic=lambda: now[0])

    assert all(limiter.allow("10.0.0.1", 40, 60) for _ in range(60))
    assert not limiter.allow("10.0.0.1", 40, 60)
    assert limiter.allow("10.0.0.2", 40, 60)  # another client has its own bucket
    now[0] += 0.05  # two tokens back at 40/s
    assert limiter.allow("10.0.0.1", 40, 60)
    assert limiter.allow("10.0.0.1", 40, 60)
    assert not limiter.allow("10.0.0.1", 40, 60)


def test_latency_delays_the_answer(
    server: AgentServer, faults: Faults, http: requests.Session
) -> None:
    faults.latency = 0.2
    started = time.monotonic()

    response = get(http, server.full_uri)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_hang_times_the_client_out_and_does_not_delay_stop(http: requests.Session) -> None:
    server = AgentServer(StaticSource(CREDENTIALS), faults=Faults(hang=True)).start()
    try:
        with pytest.raises(requests.Timeout):
            http.get(server.full_uri, timeout=0.5)
        assert server.wait_for_requests(1, timeout=1)
        assert server.requests[0].status is None
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 1.0


def test_drop_connection_closes_without_an_answer(
    server: AgentServer, faults: Faults, http: requests.Session
) -> None:
    faults.drop_connection = True

    with pytest.raises(requests.ConnectionError):
        http.get(server.full_uri, timeout=2)

    faults.drop_connection = False
    assert get(http, server.full_uri).status_code == 200


def test_body_override_is_sent_as_a_200(
    server: AgentServer, faults: Faults, http: requests.Session
) -> None:
    document = credentials_document(CREDENTIALS)
    del document["Token"]
    faults.body_override = json.dumps(document).encode()

    response = get(http, server.full_uri)

    assert response.status_code == 200
    with pytest.raises(MalformedResponseError) as caught:
        parse_credentials(response.content)
    assert caught.value.field == "Token"


def test_huge_body_is_streamed_and_a_client_may_hang_up(
    faults: Faults, http: requests.Session, capfd: pytest.CaptureFixture[str]
) -> None:
    size = 50 * 1024 * 1024
    faults.huge_body_bytes = size
    server = AgentServer(StaticSource(CREDENTIALS), faults=faults).start()
    try:
        with http.get(server.full_uri, timeout=2, stream=True) as response:
            assert response.headers["Content-Length"] == str(size)
            assert len(response.raw.read(64 * 1024)) == 64 * 1024
        faults.huge_body_bytes = None
        assert get(http, server.full_uri).status_code == 200
    finally:
        server.stop()  # joins the handler threads: anything they printed is printed by now
    assert capfd.readouterr().err == ""


def test_trickle_sends_the_body_byte_by_byte(
    server: AgentServer, faults: Faults, http: requests.Session
) -> None:
    faults.update(trickle=0.01, body_override=b'{"AccessKeyId":"x"}')  # 19 bytes
    started = time.monotonic()

    response = get(http, server.full_uri)

    assert response.content == b'{"AccessKeyId":"x"}'
    assert time.monotonic() - started >= 18 * 0.01


def test_the_write_timeout_cuts_a_slow_answer(
    server: AgentServer, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("taskcreds.local.server.IO_TIMEOUT", 0.3)  # the agent's is 5 s
    faults.trickle = 0.05
    connection = HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        connection.request("GET", server.relative_uri)
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises(IncompleteRead):
            response.read()
    finally:
        connection.close()


def test_a_latency_past_the_write_timeout_closes_without_an_answer(
    server: AgentServer, faults: Faults, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("taskcreds.local.server.IO_TIMEOUT", 0.1)
    faults.latency = 0.2

    with pytest.raises(requests.ConnectionError):
        http.get(server.full_uri, timeout=2)
    assert server.requests[-1].status is None


def test_faults_reject_unknown_and_invalid_values() -> None:
    faults = Faults()
    with pytest.raises(TypeError):
        faults.update(lag=1)
    with pytest.raises(ValueError, match="fail_status"):
        faults.update(fail_first=1, fail_status=42)
    assert (faults.fail_first, faults.fail_status) == (0, 503)  # nothing changed
    faults.update(hang=True, fail_first=3)
    faults.reset()
    assert faults == Faults()


# --- lifecycle -------------------------------------------------------------------------------


def test_stop_is_prompt_with_a_keep_alive_connection_and_frees_the_port(
    http: requests.Session,
) -> None:
    server = AgentServer(StaticSource(CREDENTIALS)).start()
    port = server.port
    assert get(http, server.full_uri).status_code == 200  # the session keeps the connection

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 0.5
    server.stop()  # twice is harmless

    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    with AgentServer(StaticSource(CREDENTIALS), port=port) as again:
        assert again.port == port


def test_a_server_starts_only_once() -> None:
    server = AgentServer(StaticSource(CREDENTIALS))
    with pytest.raises(RuntimeError):
        _ = server.port
    with server, pytest.raises(RuntimeError):
        server.start()


# --- sources ---------------------------------------------------------------------------------


def test_rotating_source_mints_a_new_set_after_half_its_lifetime() -> None:
    now = [datetime(2026, 11, 29, 12, 0, 0, 500_000, tzinfo=timezone.utc)]
    source = RotatingSource(role_arn=ROLE_ARN, lifetime=900, clock=lambda: now[0])

    first = source()
    now[0] += timedelta(seconds=449)
    assert source() is first
    now[0] += timedelta(seconds=1)
    second = source()

    assert second != first
    assert source.minted == 2
    assert second.expiration == datetime(2026, 11, 29, 12, 22, 30, tzinfo=timezone.utc)
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", second.access_key_id)
    assert len(second.secret_access_key) == 40
    assert second.role_arn == ROLE_ARN
    assert second.account_id == "123456789012"
    assert source.rotate() != second


def test_rotating_source_through_the_server(http: requests.Session) -> None:
    source = RotatingSource(role_arn=ROLE_ARN, lifetime=3600)
    with AgentServer(source) as server:
        served = parse_credentials(get(http, server.full_uri).content)

    assert served.access_key_id == source().access_key_id
    assert served.role_arn == ROLE_ARN
