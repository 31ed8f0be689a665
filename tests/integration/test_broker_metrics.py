"""The broker's ``GET /metrics`` against a real broker and agent-compatible server on 127.0.0.1:
Prometheus text parsed with ``prometheus_client.parser``, the token guard, the 501 answer without
``prometheus_client``, hostile User-Agents, and the upstream numbers taken from
``CredentialProvider.stats()``."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample

import taskcreds
from taskcreds.broker import METRICS_PATH, Broker
from taskcreds.broker._metrics import MAX_LABEL_CHARS, MISSING_PROMETHEUS, _Collector, families
from taskcreds.broker._stats import (
    MAX_CLIENT_USER_AGENTS,
    MAX_CLIENTS,
    MAX_USER_AGENT_CHARS,
    MAX_USER_AGENTS,
    Ledger,
)
from taskcreds.local import AgentServer
from taskcreds.telemetry import REFRESH_KINDS, ProviderStats

from ._broker_client import get
from .conftest import ROLE_ARN
from .test_broker import token_of

REPO = Path(__file__).resolve().parents[2]

#: Every family /metrics exposes (parser names: counters without ``_total``), with its type.
FAMILIES = {
    "taskcreds_fetches": "counter",
    "taskcreds_refreshes": "counter",
    "taskcreds_fetch_retries": "counter",
    "taskcreds_stale_serves": "counter",
    "taskcreds_expirations": "counter",
    "taskcreds_events_dropped": "counter",
    "taskcreds_credentials_expires_in_seconds": "gauge",
    "taskcreds_last_error_timestamp_seconds": "gauge",
    "taskcreds_broker_responses": "counter",
    "taskcreds_broker_credentials_served": "counter",
    "taskcreds_broker_requests": "counter",
    "taskcreds_broker_uptime_seconds": "gauge",
}


def ask(broker: Broker, path: str, *, token: str | None, user_agent: str | bytes) -> int:
    """One request with this User-Agent (bytes go on the wire as they are)."""
    connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=5)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        if token is not None:
            connection.putheader("Authorization", token)
        connection.putheader("User-Agent", user_agent)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


class Scrape:
    """One parsed /metrics answer."""

    def __init__(self, body: bytes) -> None:
        self.text = body.decode("utf-8")
        self.families = {
            family.name: family for family in text_string_to_metric_families(self.text)
        }

    def samples(self, family: str) -> list[Sample]:
        return list(self.families[family].samples)

    def value(self, family: str, **labels: str) -> float:
        (sample,) = [s for s in self.samples(family) if s.labels == labels]
        return float(sample.value)

    def by(self, family: str, label: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in self.samples(family)}


def scrape(broker: Broker, *, user_agent: str = "prometheus-test/1.0") -> Scrape:
    connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=10)
    try:
        connection.request(
            "GET",
            METRICS_PATH,
            headers={"Authorization": token_of(broker), "User-Agent": user_agent},
        )
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body
        assert response.getheader("Content-Type") == CONTENT_TYPE_LATEST
        assert response.getheader("Cache-Control") == "no-store"
        return Scrape(body)
    finally:
        connection.close()


CHILD = """\
import http.client, os, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))
for _ in range(3):
    c.request('GET', '/v1/credentials', headers={'Authorization': sys.argv[2], 'User-Agent': 'client-a/1.0'})
    assert c.getresponse().read()
print(os.getpid())
"""


# -- names, types, labels and values after known activity ---------------------------------------


def test_metrics_after_requests_from_two_clients(upstream: AgentServer, broker: Broker) -> None:
    token = token_of(broker)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(broker.port), token],
        capture_output=True,
        text=True,
        check=True,
    )
    child = done.stdout.strip()
    me = str(os.getpid())
    for _ in range(2):
        assert ask(broker, "/v1/credentials", token=token, user_agent="client-b/2.0") == 200
    assert ask(broker, "/v1/credentials", token="wrong", user_agent="client-b/2.0") == 403

    first = scrape(broker)
    assert {name: family.type for name, family in first.families.items()} == FAMILIES
    # Each counter is exposed as its _total sample, with the documented labels.
    assert {s.name for s in first.samples("taskcreds_fetches")} == {"taskcreds_fetches_total"}
    assert first.by("taskcreds_fetches", "outcome") == {"ok": 1, "failed": 0, "throttled": 0}
    assert first.by("taskcreds_refreshes", "kind") == {
        "advisory": 0,
        "mandatory": 1,
        "prefetch": 0,
        "forced": 0,
    }
    for name in ("fetch_retries", "stale_serves", "expirations", "events_dropped"):
        assert first.value(f"taskcreds_{name}") == 0
    assert 3590 < first.value("taskcreds_credentials_expires_in_seconds") <= 3600
    assert first.samples("taskcreds_last_error_timestamp_seconds") == []  # none failed yet
    # The scrape is counted after its own answer: five served, one refused.
    assert first.by("taskcreds_broker_responses", "status_class") == {"2xx": 5, "4xx": 1, "5xx": 0}
    assert first.by("taskcreds_broker_credentials_served", "served_from") == {
        "cache": 5,
        "upstream": 0,
    }
    requests = {
        (s.labels["client_pid"], s.labels["user_agent"]): s
        for s in first.samples("taskcreds_broker_requests")
    }
    assert {key: s.value for key, s in requests.items()} == {
        (child, "client-a/1.0"): 3,
        (me, "client-b/2.0"): 3,
    }
    assert set(requests[(me, "client-b/2.0")].labels) == {"client_pid", "process", "user_agent"}
    assert requests[(child, "client-a/1.0")].labels["process"]  # /proc/<pid>/comm
    assert 0 < first.value("taskcreds_broker_uptime_seconds") < 600

    # The first scrape shows in the second, under the scraper's own User-Agent.
    second = scrape(broker)
    assert second.by("taskcreds_broker_responses", "status_class")["2xx"] == 6
    assert (
        second.value(
            "taskcreds_broker_requests",
            client_pid=me,
            process=requests[(me, "client-b/2.0")].labels["process"],
            user_agent="prometheus-test/1.0",
        )
        == 1
    )
    assert second.by("taskcreds_fetches", "outcome")["ok"] == 1  # still one upstream fetch

    # Never a secret, the token, a key ID or the credentials ID.
    served = broker.provider.peek()
    assert served is not None
    credentials_id = upstream.environment()["AWS_CONTAINER_CREDENTIALS_FULL_URI"].rsplit("/", 1)[1]
    for value in (served.secret_access_key, served.token, served.access_key_id, token):
        assert value not in second.text
    assert credentials_id not in second.text
    assert ROLE_ARN not in second.text  # nothing about the set but its time left


def test_stats_and_metrics_count_every_fetch_of_a_provider_passed_in(upstream: AgentServer) -> None:
    # Before stats() existed, the broker saw only the fetches its own requests caused.
    with (
        taskcreds.CredentialProvider(
            upstream.environment(), prefetch=True, sleep=lambda _seconds: None
        ) as provider,
        Broker(provider) as broker,
    ):
        provider.refresh()  # not through the broker
        upstream.faults.update(fail_first=4, fail_status=429)  # every attempt of one fetch
        before = time.time()
        with pytest.raises(taskcreds.ThrottledError):
            provider.refresh()
        after = time.time()
        assert upstream.faults.fail_first == 0

        upstream_stats = broker.stats().upstream
        assert not upstream_stats.exact  # the times: only what the broker saw
        assert (upstream_stats.fetches, upstream_stats.failures) == (3, 1)
        assert (upstream_stats.throttled, upstream_stats.retries) == (1, 3)
        assert upstream_stats.last_error is not None
        assert "429" in upstream_stats.last_error or "limit" in upstream_stats.last_error
        assert upstream_stats.last_error_at is not None
        document = get(broker.stats_url, token=token_of(broker)).json()["upstream"]
        assert document["fetches"] == 3
        assert document["failures"] == 1
        assert document["throttled"] == 1
        assert document["last_error_at"] == upstream_stats.last_error_at

        metrics = scrape(broker)
        assert metrics.by("taskcreds_fetches", "outcome") == {"ok": 2, "failed": 0, "throttled": 1}
        assert metrics.by("taskcreds_refreshes", "kind")["forced"] == 2
        assert metrics.value("taskcreds_fetch_retries") == 3
        failed_at = metrics.value("taskcreds_last_error_timestamp_seconds")
        assert before - 1 <= failed_at <= after + 1
        # The cached set is still served: nothing expired, nothing stale was forced on a caller.
        assert metrics.value("taskcreds_expirations") == 0
        assert metrics.value("taskcreds_credentials_expires_in_seconds") > 3500


# -- the guard ---------------------------------------------------------------------------------


def test_metrics_need_the_token_and_the_host(broker: Broker) -> None:
    for token, status, code in [
        (None, 401, "MissingAuthorizationToken"),
        ("", 401, "MissingAuthorizationToken"),
        ("wrong", 403, "InvalidAuthorizationToken"),
        (token_of(broker) + "x", 403, "InvalidAuthorizationToken"),
    ]:
        answer = get(broker.url, token=token, path=METRICS_PATH)
        assert answer.status == status
        assert answer.json()["code"] == code
        assert b"taskcreds_" not in answer.body
    misdirected = get(
        broker.url, token=token_of(broker), path=METRICS_PATH, host="attacker.example"
    )
    assert misdirected.status == 421
    assert b"taskcreds_" not in misdirected.body
    assert get(broker.url, token=token_of(broker), path=METRICS_PATH, method="POST").status == 405
    assert get(broker.url, token=token_of(broker), path=METRICS_PATH).status == 200
    assert get(broker.url, token=token_of(broker), path=METRICS_PATH + "?x=1").status == 200


def test_metrics_also_take_the_token_as_a_bearer_token(broker: Broker) -> None:
    # Prometheus's `authorization: {credentials_file: ...}` sends "Bearer <file content>", and
    # it refuses to set Authorization through http_headers: /metrics takes that form too.
    token = token_of(broker)
    for presented in (f"Bearer {token}", f"bearer {token}", f"BEARER  {token}"):
        assert get(broker.url, token=presented, path=METRICS_PATH).status == 200
    for presented, status in [
        ("Bearer wrong", 403),
        ("Bearer ", 403),
        (f"Basic {token}", 403),
        (f"Bearer {token}x", 403),
        (f"Bearer Bearer {token}", 403),
    ]:
        answer = get(broker.url, token=presented, path=METRICS_PATH)
        assert answer.status == status
        assert b"taskcreds_" not in answer.body
    # The credentials and /stats keep the agent's contract: the raw token only.
    assert get(broker.url, token=f"Bearer {token}").status == 403
    assert get(broker.url, token=f"Bearer {token}", path="/stats").status == 403


# -- without prometheus_client -----------------------------------------------------------------


def test_without_prometheus_client_metrics_is_501_and_the_rest_works(
    upstream: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes every import of it raise ImportError, as when not installed.
    for name in [
        *sorted(n for n in sys.modules if n.startswith("prometheus_client.")),
        "prometheus_client",
    ]:
        monkeypatch.setitem(sys.modules, name, None)
    with Broker(environ=upstream.environment()) as broker:
        token = token_of(broker)
        for _ in range(2):
            answer = get(broker.url, token=token, path=METRICS_PATH)
            assert answer.status == 501
            assert answer.content_type == "text/plain; charset=utf-8"
            assert answer.body.decode() == MISSING_PROMETHEUS + "\n"
            assert "pip install 'taskcreds[prometheus]'" in answer.body.decode()
        assert get(broker.url, token=token).status == 200
        assert get(broker.stats_url, token=token).json()["statuses"] == {"200": 1, "501": 2}
        # Still guarded: no token, no answer about what is installed.
        assert get(broker.url, token=None, path=METRICS_PATH).status == 401


def test_the_broker_imports_prometheus_client_only_when_scraped(upstream: AgentServer) -> None:
    code = """\
import http.client, json, sys
from pathlib import Path
from taskcreds.broker import Broker
with Broker(environ=json.loads(sys.argv[1])) as broker:
    token = Path(broker.token_file).read_text()
    c = http.client.HTTPConnection("127.0.0.1", broker.port)
    seen = []
    for path in ("/v1/credentials", "/stats", "/metrics"):
        c.request("GET", path, headers={"Authorization": token})
        seen.append((c.getresponse().read() and None, "prometheus_client" in sys.modules))
print(json.dumps([imported for _, imported in seen]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(upstream.environment())],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert json.loads(done.stdout) == [False, False, True]


# -- hostile User-Agents -----------------------------------------------------------------------


def pipelined(broker: Broker, user_agents: list[bytes], *, batch: int = 100) -> list[int]:
    """Send one credentials request per User-Agent on one keep-alive connection, ``batch`` at a
    time (reading the answers in between, so neither side's buffers fill); their statuses."""
    token = token_of(broker).encode()
    statuses: list[int] = []
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as raw:
        for start in range(0, len(user_agents), batch):
            chunk = user_agents[start : start + batch]
            raw.sendall(
                b"".join(
                    b"GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                    b"User-Agent: %s\r\n\r\n" % (broker.port, token, agent)
                    for agent in chunk
                )
            )
            received = b""
            while received.count(b"HTTP/1.1 ") < len(chunk):
                data = raw.recv(1 << 20)
                assert data, "the broker closed the connection"
                received += data
            statuses += [int(part[:3]) for part in received.split(b"HTTP/1.1 ")[1:]]
    return statuses


def test_hostile_user_agents_stay_bounded_and_parse(broker: Broker) -> None:
    nasty = {
        b'q"uote\\back{x="y"},z=1 # TYPE': 'q"uote\\back{x="y"},z=1 # TYPE',
        b'literal \\n and \\" escapes': 'literal \\n and \\" escapes',
        b"tab\there": "tab\ufffdhere",
        "caf\u00e9 \u2603".encode(): "caf\u00e9 \u2603",  # UTF-8, decoded as such
        b"bad \xff\xfe bytes": "bad \ufffd\ufffd bytes",
        b"x" * 10 * 1024: "x" * MAX_USER_AGENT_CHARS,  # 10 KiB: cut
    }
    assert set(pipelined(broker, list(nasty))) == {200}
    # A raw CR or LF cannot be inside a header value (it ends the header), nor can other control
    # characters but HTAB: llhttp answers 400 and the request is never counted.
    for broken in (b"new\nline", b"carriage\rreturn", b"nul\x00byte", b"\x7fdel", b"esc\x1b["):
        assert pipelined(broker, [broken]) == [400]

    metrics = scrape(broker)
    agents = {s.labels["user_agent"]: s.value for s in metrics.samples("taskcreds_broker_requests")}
    for expected in nasty.values():
        assert agents[expected] == 1
    assert all("\n" not in agent and "\r" not in agent for agent in agents)

    # Thousands of distinct ones: counted, never told apart beyond the bound.
    flood = [b"flood/%d" % number for number in range(3000)]
    assert set(pipelined(broker, flood)) == {200}
    metrics = scrape(broker)
    series = metrics.samples("taskcreds_broker_requests")
    assert len(series) <= MAX_USER_AGENTS + 2  # one client: its agents, "other", the scraper's
    agents = {s.labels["user_agent"]: s.value for s in series}
    assert agents["other"] >= 3000 - MAX_USER_AGENTS
    assert all(len(agent) <= MAX_LABEL_CHARS and agent.isprintable() for agent in agents)
    total = sum(s.value for s in series)
    assert total == sum(metrics.by("taskcreds_broker_responses", "status_class").values())
    assert total == len(nasty) + len(flood) + 1  # and the first scrape; 400s are not counted
    stats = broker.stats()
    assert len(stats.user_agents) <= MAX_USER_AGENTS + 1
    assert all(len(client.user_agents) <= MAX_USER_AGENTS + 1 for client in stats.clients)
    assert len(metrics.text) < 64 * 1024


def test_many_clients_and_user_agents_are_bounded_in_series() -> None:
    # Hundreds of processes, each with its own User-Agents, are more than a test should start:
    # the ledger behind the broker's stats, driven directly, then rendered as the broker does.
    ledger = Ledger(exact_upstream=True)
    clients = 2 * MAX_CLIENTS
    for pid in range(1, clients + 1):
        for agent in range(8):
            ledger.request(
                client=f"pid {pid}",
                pid=pid,
                name='evil"\nname',
                address=f"127.0.0.1:{pid}",
                user_agent=f"agent/{agent}",
                status=200,
            )
    provider = ProviderStats(
        source="test",
        fetches_ok=0,
        fetches_failed=0,
        fetches_throttled=0,
        retries=0,
        refreshes=MappingProxyType(dict.fromkeys(REFRESH_KINDS, 0)),
        stale_served=0,
        expirations=0,
        expires_in=None,
        last_error=None,
        last_error_at=None,
        events_dropped=0,
    )
    stats = ledger.snapshot("http://127.0.0.1:1/v1/credentials", "test", None, provider)
    assert len(stats.clients) == MAX_CLIENTS + 1  # and "other"
    (requests,) = [
        f for f in families(stats, provider) if f.name == "taskcreds_broker_requests_total"
    ]
    labels = [labels for labels, _ in requests.samples]
    assert len(labels) == len(set(labels))  # no series twice
    assert len(labels) <= MAX_CLIENT_USER_AGENTS + MAX_CLIENTS + 1
    assert sum(value for _, value in requests.samples) == clients * 8
    assert {process for _, process, _ in labels} == {'evil"\ufffdname', ""}
    assert {pid for pid, _, _ in labels} >= {"1", "other"}

    registry = CollectorRegistry()
    registry.register(
        _Collector(lambda: families(stats, provider), CounterMetricFamily, GaugeMetricFamily)
    )
    parsed = Scrape(generate_latest(registry))
    assert len(parsed.samples("taskcreds_broker_requests")) == len(requests.samples)
    assert parsed.samples("taskcreds_credentials_expires_in_seconds") == []
