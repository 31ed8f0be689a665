"""Integration fixtures: a real agent-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskcreds.local import AgentServer, Faults, RotatingSource

ROLE_ARN = "arn:aws:iam::123456789012:role/AppA"


@pytest.fixture
def agent() -> Iterator[AgentServer]:
    server = AgentServer(RotatingSource(role_arn=ROLE_ARN, lifetime=3600), faults=Faults())
    with server:
        yield server


def full_uri_environ(url: str) -> dict[str, str]:
    return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": url}
