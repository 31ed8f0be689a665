"""Fetching from a real HTTP server that answers exactly as the ECS agent does."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from taskcreds import (
    CredentialProvider,
    EndpointHTTPError,
    EndpointUnreachableError,
    MalformedResponseError,
    ThrottledError,
    resolve_endpoint,
)
from taskcreds.fetch import Fetcher
from taskcreds.local import AgentServer

from .conftest import ROLE_ARN, full_uri_environ


def no_sleep(seconds: float) -> None:
    """Backoff sleeps are skipped; the deadline still runs on the real monotonic clock."""


def fetcher(deadline: float = 5.0, **kwargs: float) -> Fetcher:
    return Fetcher(deadline=deadline, sleep=no_sleep, **kwargs)  # type: ignore[arg-type]


def endpoint_for(url: str):  # type: ignore[no-untyped-def]
    return resolve_endpoint(full_uri_environ(url))


def test_success(agent: AgentServer) -> None:
    result = fetcher().fetch(endpoint_for(agent.full_uri))
    creds = result.credentials
    assert creds.role_arn == ROLE_ARN
    assert creds.account_id == "123456789012"
    assert creds.access_key_id.startswith("ASIA")
    assert creds.expiration.tzinfo is not None
    assert result.attempts == 1
    assert result.server_date is not None


def test_provider_against_server(agent: AgentServer) -> None:
    with CredentialProvider(full_uri_environ(agent.full_uri)) as provider:
        first = provider.get()
        for _ in range(1000):
            assert provider.get() is first
    assert agent.request_count == 1


def test_legacy_and_emulator_paths(agent: AgentServer) -> None:
    for path in (f"/v1/credentials?id={agent.credentials_id}", "/creds", "/role/AppA"):
        creds = fetcher().fetch(endpoint_for(agent.base_url + path)).credentials
        assert creds.access_key_id.startswith("ASIA")


def test_invalid_id_is_retried_then_reported(agent: AgentServer) -> None:
    with pytest.raises(EndpointHTTPError) as info:
        fetcher().fetch(endpoint_for(agent.base_url + "/v2/credentials/not-the-id"))
    error = info.value
    assert error.status == 400
    assert error.code == "InvalidIdInRequest"
    assert error.detail == "CredentialsV2Request: Credentials not found"
    assert error.retryable
    assert agent.request_count == 4  # older agents send this while restarting: retried
    assert "gave up after 4 attempts" in str(error)
    assert "not-the-id" not in str(error)  # the credentials ID is hidden, as in the agent's log


def test_no_id_is_not_retried(agent: AgentServer) -> None:
    with pytest.raises(EndpointHTTPError) as info:
        fetcher().fetch(endpoint_for(agent.base_url + "/v2/credentials/"))
    assert info.value.code == "NoIdInRequest"
    assert not info.value.retryable
    assert agent.request_count == 1


def test_unknown_path_plain_text_404(agent: AgentServer) -> None:
    with pytest.raises(EndpointHTTPError) as info:
        fetcher().fetch(endpoint_for(agent.base_url + "/nope"))
    assert info.value.status == 404
    assert info.value.code is None
    assert info.value.detail == "404 page not found"
    assert agent.request_count == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "CredentialsUninitialized"), (500, "InternalServerError"), (400, "InvalidIdInRequest")],
)
def test_transient_errors_then_success(agent: AgentServer, status: int, code: str) -> None:
    agent.faults.update(fail_first=2, fail_status=status)
    result = fetcher().fetch(endpoint_for(agent.full_uri))
    assert result.attempts == 3
    assert result.credentials.role_arn == ROLE_ARN


def test_429_then_success(agent: AgentServer) -> None:
    agent.faults.update(fail_first=1, fail_status=429)
    assert fetcher().fetch(endpoint_for(agent.full_uri)).attempts == 2


def test_429_exhausted_is_throttled_error(agent: AgentServer) -> None:
    agent.faults.update(fail_first=100, fail_status=429)
    with pytest.raises(ThrottledError) as info:
        fetcher().fetch(endpoint_for(agent.full_uri))
    assert info.value.status == 429
    assert info.value.detail == "You have reached maximum request limit."
    assert info.value.hint is not None
    assert "get_credentials" in info.value.hint


def test_burst_over_agent_limit_one_provider_one_request(agent: AgentServer) -> None:
    # The agent's limit is a token bucket per client (40 req/s, burst 60). A client per call runs
    # into it; a process that shares one provider makes one request however many callers it has.
    # A low limit (2 req/s, burst 6) keeps the test independent of how loaded the machine is.
    agent.faults.update(throttle_rps=2, throttle_burst=6)
    statuses = []
    for _ in range(20):
        try:
            Fetcher(deadline=0.5, max_attempts=1).fetch(endpoint_for(agent.full_uri))
            statuses.append(200)
        except ThrottledError:
            statuses.append(429)
    assert statuses.count(429) >= 5
    time.sleep(1.0)  # the bucket refills two tokens
    with CredentialProvider(full_uri_environ(agent.full_uri)) as provider:
        before = agent.request_count
        for _ in range(500):
            provider.get()
        assert agent.request_count - before == 1


def test_hang_times_out_within_deadline(agent: AgentServer) -> None:
    agent.faults.update(hang=True)
    started = time.monotonic()
    with pytest.raises(EndpointUnreachableError) as info:
        fetcher(deadline=1.0).fetch(endpoint_for(agent.full_uri))
    elapsed = time.monotonic() - started
    assert info.value.reason == "timeout"
    assert elapsed < 1.5


def test_trickling_body_is_cut_at_deadline(agent: AgentServer) -> None:
    agent.faults.update(trickle=0.2)
    started = time.monotonic()
    with pytest.raises(EndpointUnreachableError) as info:
        fetcher(deadline=1.0).fetch(endpoint_for(agent.full_uri))
    assert info.value.reason == "timeout"
    assert time.monotonic() - started < 1.6


def test_50_mb_body_is_refused_without_reading_it(agent: AgentServer) -> None:
    agent.faults.update(huge_body_bytes=50 * 1024 * 1024)
    started = time.monotonic()
    with pytest.raises(MalformedResponseError, match="larger than 64 KiB"):
        fetcher().fetch(endpoint_for(agent.full_uri))
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            b'{"AccessKeyId":"ASIAX","SecretAccessKey":"CANARYSECRET","Expiration":"2030-01-01T00:00:00Z"}',
            "Token",
        ),
        (b"<html>captive portal</html>", None),
    ],
)
def test_malformed_200(agent: AgentServer, body: bytes, field: str | None) -> None:
    agent.faults.update(body_override=body)
    with pytest.raises(MalformedResponseError) as info:
        fetcher().fetch(endpoint_for(agent.full_uri))
    assert info.value.field == field
    assert "CANARYSECRET" not in str(info.value)
    assert agent.request_count == 1  # not retried


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EndpointUnreachableError) as info:
        fetcher(deadline=1.0).fetch(endpoint_for(f"http://127.0.0.1:{port}/creds"))
    assert info.value.reason == "refused"
    assert info.value.hint is not None


def test_dropped_connection(agent: AgentServer) -> None:
    agent.faults.update(drop_connection=True)
    with pytest.raises(EndpointUnreachableError) as info:
        fetcher(deadline=1.0).fetch(endpoint_for(agent.full_uri))
    assert info.value.reason in ("reset", "other")


def test_proxy_variables_are_ignored(agent: AgentServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy must never see a credentials request (trust_env=False).
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert fetcher().fetch(endpoint_for(agent.full_uri)).attempts == 1


def test_user_agent_names_taskcreds(agent: AgentServer) -> None:
    fetcher().fetch(endpoint_for(agent.full_uri))
    assert agent.requests[0].headers["User-Agent"].startswith("taskcreds/")


def test_pod_identity_token_file_reread_each_fetch(tmp_path: Path) -> None:
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("token-one\n")
    from taskcreds.local import RotatingSource

    server = AgentServer(
        RotatingSource(role_arn=ROLE_ARN),
        pod_identity_token_file=str(token_file),
        include_role_arn=False,
        include_account_id=True,
    )
    with server:
        environ = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.base_url + "/v1/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        }
        with CredentialProvider(environ) as provider:
            first = provider.get()
            assert first.role_arn is None
            assert first.account_id == "123456789012"
            token_file.write_text("token-two\n")  # EKS rotates the file
            provider.refresh()
        sent = [request.headers.get("Authorization") for request in server.requests]
        assert sent == ["token-one", "token-two"]


def test_pod_identity_without_token_is_plain_text_400(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("expected")
    from taskcreds.local import RotatingSource

    with (
        AgentServer(
            RotatingSource(role_arn=ROLE_ARN), pod_identity_token_file=str(token_file)
        ) as server,
        pytest.raises(EndpointHTTPError) as info,
    ):
        fetcher().fetch(endpoint_for(server.base_url + "/v1/credentials"))
    assert info.value.status == 400
    assert info.value.detail == "Service account token cannot be empty"


def test_trickling_headers_are_cut_at_deadline() -> None:
    # Each byte arrives well within the read timeout, so only the overall deadline can end this.
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(EndpointUnreachableError) as info:
            fetcher(deadline=1.0).fetch(
                endpoint_for(f"http://127.0.0.1:{listener.getsockname()[1]}/creds")
            )
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert info.value.reason == "timeout"
    assert elapsed < 1.5
