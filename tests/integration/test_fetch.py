"""Fetching from a real HTTP server that answers exactly as the ECS agent does."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskcreds import (
    CredentialProvider,
    EndpointHTTPError,
    EndpointUnreachableError,
    MalformedResponseError,
    ThrottledError,
    TokenError,
    UnsupportedHostError,
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


def test_legacy_and_emulator_paths() -> None:
    from taskcreds.local import RotatingSource

    # The emulator's ID-less paths are answered only when asked for (compat_paths).
    with AgentServer(RotatingSource(role_arn=ROLE_ARN), compat_paths=True) as agent:
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


# -- hardening: the connection is pinned to the checked address; the deadline bounds DNS ----------


def record_connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host urllib3 opens a TCP connection to, and a tripwire on the system resolver."""
    import urllib3.util.connection

    connected: list[str] = []
    real_connect = urllib3.util.connection.create_connection

    def spy(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        connected.append(address[0])
        return real_connect(address, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo

    def no_name_lookups(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".test"):
            raise AssertionError(f"{host} was resolved by the system resolver")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", spy)
    monkeypatch.setattr(socket, "getaddrinfo", no_name_lookups)
    return connected


class Rebinding:
    """A DNS server under an attacker's control: loopback first, the metadata service after."""

    def __init__(self, first: int = 1) -> None:
        self.loopback_answers = first
        self.queries = 0

    def __call__(self, host: str) -> list[str]:
        self.queries += 1
        if self.queries <= self.loopback_answers:
            return ["127.0.0.1"]
        return ["169.254.169.254"]


def test_rebound_name_never_reaches_the_second_address(
    agent: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connected = record_connections(monkeypatch)
    resolver = Rebinding(first=1)  # the check at resolve time sees loopback, the fetch IMDS
    url = f"http://rebind.test:{agent.port}{agent.relative_uri}"
    endpoint = resolve_endpoint(full_uri_environ(url), resolver=resolver)
    with pytest.raises(UnsupportedHostError, match="instance metadata"):
        fetcher().fetch(endpoint)
    assert connected == []
    assert agent.request_count == 0


def test_connection_goes_to_the_checked_address_with_the_original_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskcreds.local import RotatingSource

    with AgentServer(RotatingSource(role_arn=ROLE_ARN), allowed_hosts=["rebind.test"]) as server:
        connected = record_connections(monkeypatch)
        resolver = Rebinding(first=2)  # the check and the fetch both see loopback
        url = f"http://rebind.test:{server.port}{server.relative_uri}"
        endpoint = resolve_endpoint(full_uri_environ(url), resolver=resolver)
        creds = fetcher().fetch(endpoint).credentials
        assert creds.access_key_id.startswith("ASIA")
        assert connected == ["127.0.0.1"]
        assert server.requests[0].headers["Host"] == f"rebind.test:{server.port}"
        # The next fetch resolves again and finds the name rebound: refused, not connected.
        with pytest.raises(UnsupportedHostError):
            fetcher().fetch(endpoint)
        assert connected == ["127.0.0.1"]
        assert server.request_count == 1


def test_every_pinned_address_is_tried_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskcreds.local import RotatingSource

    # The server listens on 127.0.0.1 only, so ::1 (the first answer) refuses the connection.
    with AgentServer(RotatingSource(role_arn=ROLE_ARN), allowed_hosts=["two.test"]) as server:
        connected = record_connections(monkeypatch)
        url = f"http://two.test:{server.port}{server.relative_uri}"
        endpoint = resolve_endpoint(
            full_uri_environ(url), resolver=lambda host: ["::1", "127.0.0.1"]
        )
        assert fetcher().fetch(endpoint).attempts == 1
        assert connected == ["::1", "127.0.0.1"]


def test_dns_that_never_answers_is_cut_by_the_deadline() -> None:
    release = threading.Event()
    answered = [0]

    def first_fast_then_silent(host: str) -> list[str]:
        answered[0] += 1
        if answered[0] == 1:
            return ["127.0.0.1"]
        release.wait(30)
        return ["127.0.0.1"]

    endpoint = resolve_endpoint(
        full_uri_environ("http://silent-dns.test:9/creds"), resolver=first_fast_then_silent
    )
    started = time.monotonic()
    try:
        with pytest.raises(EndpointUnreachableError) as info:
            fetcher(deadline=0.5).fetch(endpoint)
    finally:
        release.set()
    assert time.monotonic() - started < 3  # the resolver alone would have held it for 30 s
    assert info.value.reason == "timeout"


def test_token_file_fifo_fails_fast_inside_the_fetch(tmp_path: Path, agent: AgentServer) -> None:
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    environ = {
        **full_uri_environ(agent.full_uri),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(fifo),
    }
    with pytest.raises(TokenError, match="not a regular file"):
        fetcher(deadline=1.0).fetch(resolve_endpoint(environ))
    assert agent.request_count == 0


ECHO_TOKEN = "tok/ECHOED<secret>"


def echoing_server(answer: Callable[[bytes], bytes]) -> tuple[socket.socket, threading.Thread]:
    """A raw server that answers one request with ``answer(request bytes)``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            body = answer(request)
            conn.sendall(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def _json_escaped(text: str) -> str:
    return text.replace("/", "\\/").replace("<", "\\u003c").replace(">", "\\u003e")


@pytest.mark.parametrize("shape", ["json-token", "html-path", "json-path"])
def test_echoed_token_and_credentials_id_never_reach_an_error(shape: str) -> None:
    credentials_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

    def answer(request: bytes) -> bytes:
        path = request.split(b" ")[1].decode()
        if shape == "json-token":
            return f'{{"code":"Denied","message":"bad token {_json_escaped(ECHO_TOKEN)}"}}'.encode()
        if shape == "html-path":
            return f"<h1>No route</h1><p>{path}</p>".encode()
        return f'{{"code":"NoRoute","message":"{_json_escaped(path)}"}}'.encode()

    listener, thread = echoing_server(answer)
    port = listener.getsockname()[1]
    environ = {
        **full_uri_environ(f"http://127.0.0.1:{port}/v2/credentials/{credentials_id}"),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": ECHO_TOKEN,
    }
    try:
        with pytest.raises(EndpointHTTPError) as info:
            fetcher().fetch(resolve_endpoint(environ))
    finally:
        thread.join(5)
        listener.close()
    shown = " ".join(
        (str(info.value), repr(info.value.detail), repr(info.value.code), info.value.url)
    )
    assert "ECHOED" not in shown
    assert credentials_id not in shown
    assert "[redacted]" in shown


def test_redirect_is_not_followed() -> None:
    target = socket.create_server(("127.0.0.1", 0))  # where the redirect points: never reached
    target.settimeout(0)
    port = target.getsockname()[1]

    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:"
                + str(port).encode()
                + b"/creds\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(EndpointHTTPError) as info:
            fetcher().fetch(endpoint_for(f"http://127.0.0.1:{listener.getsockname()[1]}/creds"))
        thread.join(5)
        assert info.value.status == 302
        assert "redirect" in (info.value.hint or "")
        with pytest.raises(BlockingIOError):
            target.accept()  # nobody connected to the redirect's target
    finally:
        listener.close()
        target.close()
