"""botocore as a peer: clients from taskcreds.session() sign with the provider's current set."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import taskcreds
from taskcreds import CredentialProvider
from taskcreds.local import AgentServer

from .conftest import full_uri_environ

LIST_BUCKETS = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Owner><ID>x</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>"
)


class Recorder(BaseHTTPRequestHandler):
    """A stand-in S3 that records the signature headers of each request."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(LIST_BUCKETS)))
        self.end_headers()
        self.wfile.write(LIST_BUCKETS)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def s3_recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def signed_key_id(headers: dict[str, str]) -> str:
    match = re.search(r"Credential=([A-Z0-9]+)/", headers["Authorization"])
    assert match is not None
    return match.group(1)


def test_client_signs_with_provider_key_and_follows_rotation(
    agent: AgentServer, s3_recorder: ThreadingHTTPServer
) -> None:
    with CredentialProvider(full_uri_environ(agent.full_uri)) as provider:
        session = taskcreds.session(provider=provider, region_name="us-east-1")
        s3 = session.client("s3", endpoint_url=f"http://127.0.0.1:{s3_recorder.server_address[1]}")
        s3.list_buckets()
        first = provider.get()
        agent.source.rotate()  # type: ignore[attr-defined]
        rotated = provider.refresh()
        s3.list_buckets()
    seen = s3_recorder.seen  # type: ignore[attr-defined]
    assert signed_key_id(seen[0]) == first.access_key_id
    assert seen[0]["X-Amz-Security-Token"] == first.token
    assert signed_key_id(seen[1]) == rotated.access_key_id
    assert seen[1]["X-Amz-Security-Token"] == rotated.token
    assert rotated.access_key_id != first.access_key_id


def test_session_fails_closed_over_static_keys(
    agent: AgentServer,
    s3_recorder: ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASTATICSTATIC0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "static-secret")
    with CredentialProvider(full_uri_environ(agent.full_uri)) as provider:
        with caplog.at_level(logging.WARNING, logger="taskcreds"):
            session = taskcreds.session(provider=provider, region_name="us-east-1")
        assert "AWS_ACCESS_KEY_ID is set but ignored" in caplog.text
        assert "static-secret" not in caplog.text
        credentials = session.get_credentials()
        assert credentials is not None
        assert credentials.method == "taskcreds-container-role"
        s3 = session.client("s3", endpoint_url=f"http://127.0.0.1:{s3_recorder.server_address[1]}")
        s3.list_buckets()
        assert signed_key_id(s3_recorder.seen[0]) == provider.get().access_key_id  # type: ignore[attr-defined]


def test_default_session_uses_process_wide_provider(
    agent: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import taskcreds.provider as provider_module

    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.full_uri)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.setattr(provider_module, "_default_provider", None)
    first = taskcreds.get_credentials()
    assert taskcreds.get_credentials() is first
    frozen = taskcreds.session(region_name="us-east-1").get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    assert frozen.access_key == first.access_key_id
    assert agent.request_count == 1
    provider_module._default_provider.close()  # type: ignore[union-attr]


def test_missing_account_id_is_none_for_botocore(agent: AgentServer) -> None:
    # "" would count as a configured account id and break account-based endpoint resolution.
    from datetime import datetime, timedelta, timezone

    from taskcreds.credentials import Credentials
    from taskcreds.local import StaticSource

    creds = Credentials(
        "ASIANOACCOUNT0000001", "s", "t", datetime.now(timezone.utc) + timedelta(hours=1)
    )
    with (
        AgentServer(StaticSource(creds)) as server,
        CredentialProvider(full_uri_environ(server.full_uri)) as provider,
    ):
        botocore_creds = taskcreds.session(
            provider=provider, region_name="us-east-1"
        ).get_credentials()
        assert botocore_creds is not None
        assert botocore_creds.account_id is None
        assert botocore_creds.get_frozen_credentials().account_id is None
