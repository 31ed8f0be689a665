"""Telemetry against a real HTTP server that answers as the ECS agent does (taskcreds.local)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from taskcreds import CredentialProvider, ThrottledError, telemetry
from taskcreds.credentials import mask_key_id
from taskcreds.local import AgentServer
from taskcreds.telemetry import (
    CredentialEvent,
    FetchEvent,
    RefreshEvent,
    RetryEvent,
    ThrottleEvent,
)

from .conftest import ROLE_ARN, full_uri_environ


def no_sleep(seconds: float) -> None:
    """Backoff sleeps are skipped; the deadline still runs on the real monotonic clock."""


class Watched:
    def __init__(self, agent: AgentServer) -> None:
        self.received: list[CredentialEvent] = []
        self.provider = CredentialProvider(
            full_uri_environ(agent.full_uri), sleep=no_sleep, on_event=self.received.append
        )

    def events(self) -> list[CredentialEvent]:
        assert telemetry.flush(10)
        return list(self.received)


@pytest.fixture
def watched(agent: AgentServer) -> Iterator[Watched]:
    made = Watched(agent)
    with made.provider:
        yield made


def test_a_fetch_from_the_agent(
    agent: AgentServer, watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="taskcreds"):
        credentials = watched.provider.get()
        for _ in range(100):
            watched.provider.get()
    fetch, refresh = watched.events()
    assert isinstance(fetch, FetchEvent)
    assert (fetch.outcome, fetch.attempts, fetch.status) == ("ok", 1, 200)
    assert fetch.role_arn == ROLE_ARN
    assert fetch.access_key_id == mask_key_id(credentials.access_key_id)
    assert fetch.expiration == credentials.expiration
    assert 0 < fetch.duration < 5
    assert fetch.source == watched.provider.endpoint.display_url
    assert agent.credentials_id not in fetch.source
    assert isinstance(refresh, RefreshEvent)
    assert (refresh.kind, refresh.outcome) == ("mandatory", "ok")
    assert refresh.expires_in is not None
    assert 3500 < refresh.expires_in <= 3600
    stats = watched.provider.stats()
    assert (stats.fetches_ok, stats.retries, stats.refreshes["mandatory"]) == (1, 0, 1)
    assert agent.request_count == 1
    [record] = [r for r in caplog.records if r.name == "taskcreds"]
    assert record.levelno == logging.INFO
    assert record.taskcreds_role_arn == ROLE_ARN  # type: ignore[attr-defined]
    assert record.taskcreds_status == 200  # type: ignore[attr-defined]
    text = repr(watched.events()) + repr(stats) + caplog.text
    for secret in (credentials.secret_access_key, credentials.token, agent.credentials_id):
        assert secret not in text


def test_a_429_is_a_throttle_and_a_retry(agent: AgentServer, watched: Watched) -> None:
    agent.faults.update(fail_first=1, fail_status=429)
    watched.provider.get()
    events = watched.events()
    assert [type(e).__name__ for e in events] == [
        "ThrottleEvent",
        "RetryEvent",
        "FetchEvent",
        "RefreshEvent",
    ]
    throttle, retry, fetch, _ = events
    assert isinstance(throttle, ThrottleEvent)
    assert throttle.attempt == 1
    assert isinstance(retry, RetryEvent)
    assert (retry.attempt, retry.status, retry.error_type) == (1, 429, "ThrottledError")
    assert throttle.delay == retry.delay
    assert isinstance(fetch, FetchEvent)
    assert (fetch.outcome, fetch.attempts) == ("ok", 2)
    stats = watched.provider.stats()
    assert (stats.fetches_ok, stats.fetches_throttled, stats.retries) == (1, 0, 1)
    assert agent.request_count == 2


def test_a_throttle_that_lasts_is_a_throttled_fetch(agent: AgentServer, watched: Watched) -> None:
    agent.faults.update(fail_first=100, fail_status=429)
    with pytest.raises(ThrottledError):
        watched.provider.get()
    events = watched.events()
    [fetch] = [e for e in events if isinstance(e, FetchEvent)]
    assert (fetch.outcome, fetch.status, fetch.attempts) == ("throttled", 429, agent.request_count)
    throttles = [e for e in events if isinstance(e, ThrottleEvent)]
    assert len(throttles) == agent.request_count  # one per 429 answer
    assert throttles[-1].delay is None  # the last one was given up on
    stats = watched.provider.stats()
    assert (stats.fetches_throttled, stats.fetches_failed) == (1, 0)
    assert stats.retries == agent.request_count - 1
    assert stats.last_error is not None
    assert "429" in stats.last_error


def test_a_500_then_success_is_one_retry_and_one_fetch(
    agent: AgentServer, watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    agent.faults.update(fail_first=1, fail_status=500)
    with caplog.at_level(logging.INFO, logger="taskcreds"):
        watched.provider.get()
    events = watched.events()
    [retry] = [e for e in events if isinstance(e, RetryEvent)]
    assert (retry.attempt, retry.status, retry.code) == (1, 500, "InternalServerError")
    assert not [e for e in events if isinstance(e, ThrottleEvent)]
    [fetch] = [e for e in events if isinstance(e, FetchEvent)]
    assert (fetch.outcome, fetch.attempts, fetch.status) == ("ok", 2, 200)
    stats = watched.provider.stats()
    assert (stats.fetches_ok, stats.fetches_failed, stats.retries) == (1, 0, 1)
    assert stats.last_error is None  # the fetch succeeded: a retried attempt is not an error
    [record] = [r for r in caplog.records if r.name == "taskcreds"]  # the retry is DEBUG
    assert "after 2 attempts" in record.getMessage()
