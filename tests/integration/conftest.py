"""Integration fixtures: a real agent-compatible HTTP server on 127.0.0.1, and one serving
AppA's real STS session credentials from SeaweedFS, with a provider on it (a module may
define its own ``provider``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import taskcreds
from taskcreds.broker import Broker
from taskcreds.local import AgentServer, Faults, RotatingSource
from taskcreds_demo.seaweed import SeaweedFS
from tests.conftest import running_seaweed

ROLE_ARN = "arn:aws:iam::123456789012:role/AppA"


@pytest.fixture
def agent() -> Iterator[AgentServer]:
    server = AgentServer(RotatingSource(role_arn=ROLE_ARN, lifetime=3600), faults=Faults())
    with server:
        yield server


@pytest.fixture
def upstream() -> Iterator[AgentServer]:
    """The agent a broker takes its credentials from (a module may define its own)."""
    with AgentServer(RotatingSource(role_arn=ROLE_ARN, lifetime=3600), faults=Faults()) as server:
        yield server


@pytest.fixture
def broker(upstream: AgentServer) -> Iterator[Broker]:
    """A broker in this process, on ``upstream``."""
    with Broker(environ=upstream.environment()) as running:
        yield running


@pytest.fixture
def app_a(seaweed: SeaweedFS) -> Iterator[AgentServer]:
    """The task's agent, serving AppA's real STS session credentials."""
    with AgentServer(lambda: seaweed.assume_role("AppA")) as server:
        yield server


@pytest.fixture
def provider(app_a: AgentServer) -> Iterator[taskcreds.CredentialProvider]:
    with taskcreds.CredentialProvider(app_a.environment()) as provider:
        yield provider


def full_uri_environ(url: str) -> dict[str, str]:
    return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": url}


@pytest.fixture
def short_lived_seaweed() -> Iterator[SeaweedFS]:
    """Its own SeaweedFS whose STS sessions live 10 s; stopped (by PID) at the end."""
    with running_seaweed(token_duration="10s") as server:
        yield server
