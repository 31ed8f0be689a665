"""``GET /metrics``: the broker and its provider in the Prometheus text exposition format.

``prometheus_client`` is optional (``pip install 'taskcreds[prometheus]'``) and imported on the
first scrape only, so a broker starts and serves without it; then ``/metrics`` answers 501 with
a plain-text body naming the extra, and everything else works as before.

Each broker has its own ``CollectorRegistry`` (never ``prometheus_client.REGISTRY``, which would
mix in whatever else the process registered and outlive the broker) holding one collector that
reads :meth:`taskcreds.Broker.stats` and :meth:`taskcreds.CredentialProvider.stats` at each
scrape: nothing is counted twice, and nothing is kept between scrapes.

Names follow Prometheus's conventions: the ``taskcreds_`` prefix (``taskcreds_broker_`` for the
broker's own), base units (``_seconds``), ``_total`` on counters. :func:`families` is the one
list of them, documented in docs/observability.md.

Label values come from clients (the User-Agent, the process name) and are untrusted. The
ledger already bounds how many there are (:mod:`taskcreds.broker._stats`); here each is made
printable (a control character becomes U+FFFD, a UTF-8 User-Agent is decoded as such, anything
else undecodable becomes U+FFFD) and cut to :data:`MAX_LABEL_CHARS`; ``prometheus_client``
escapes backslashes, double quotes and newlines. Values that become equal are summed into one
series. No label or value holds a secret, a token, a key ID or a credentials ID.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from taskcreds.broker._stats import MAX_USER_AGENT_CHARS, OTHER, BrokerStats
from taskcreds.local._answers import Reply, bytes_reply, text_error
from taskcreds.telemetry import REFRESH_KINDS, ProviderStats

if TYPE_CHECKING:
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

    _Kind = type[CounterMetricFamily] | type[GaugeMetricFamily]

__all__ = [
    "MAX_LABEL_CHARS",
    "MISSING_PROMETHEUS",
    "Family",
    "MetricsEndpoint",
    "families",
    "label_value",
    "user_agent_label",
]

logger = logging.getLogger("taskcreds.broker")

#: The longest label value: a User-Agent is already cut to this many characters by the ledger.
MAX_LABEL_CHARS = MAX_USER_AGENT_CHARS

#: The body of the 501 answer when ``prometheus_client`` cannot be imported.
MISSING_PROMETHEUS = (
    "501 Not Implemented: /metrics needs prometheus_client, which is not installed; "
    "pip install 'taskcreds[prometheus]' and restart the broker"
)

_STATUS_CLASSES = ("2xx", "4xx", "5xx")  # the broker answers no 1xx or 3xx


@dataclass(frozen=True)
class Family:
    """One metric family, as exposed: ``name`` is the sample name (``..._total`` for counters)."""

    name: str
    kind: Literal["counter", "gauge"]
    documentation: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)


def label_value(text: str) -> str:
    """``text`` made safe for a label: printable (control characters become U+FFFD) and at most
    :data:`MAX_LABEL_CHARS` characters."""
    if not (text.isascii() and text.isprintable()):
        text = "".join(char if char.isprintable() else "\ufffd" for char in text)
    return text[:MAX_LABEL_CHARS]


def user_agent_label(agent: str) -> str:
    """A User-Agent as a label value. Header values are decoded as Latin-1 (one character per
    byte), so a UTF-8 User-Agent is decoded again as UTF-8 (invalid bytes become U+FFFD)."""
    if not agent.isascii():
        agent = agent.encode("latin-1", "replace").decode("utf-8", "replace")
    return label_value(agent)


def _client_pid(client: str, pid: int | None) -> str:
    if pid is not None:
        return str(pid)
    return OTHER if client == OTHER else "unknown"


def families(broker: BrokerStats, provider: ProviderStats) -> list[Family]:
    """Every metric of ``/metrics``, from one snapshot of the broker's and the provider's stats."""
    fetches = Family(
        "taskcreds_fetches_total",
        "counter",
        "Fetches from upstream by outcome: ok, failed (except on HTTP 429), throttled (HTTP 429).",
        ("outcome",),
        [
            (("ok",), provider.fetches_ok),
            (("failed",), provider.fetches_failed),
            (("throttled",), provider.fetches_throttled),
        ],
    )
    refreshes = Family(
        "taskcreds_refreshes_total",
        "counter",
        "Refreshes (one per fetch) by why the provider fetched: advisory, mandatory, prefetch, "
        "forced.",
        ("kind",),
        [((kind,), provider.refreshes.get(kind, 0)) for kind in REFRESH_KINDS],
    )
    expires_in = Family(
        "taskcreds_credentials_expires_in_seconds",
        "gauge",
        "Seconds until the cached credentials expire (0 once they have); absent before the "
        "first set.",
    )
    if provider.expires_in is not None:
        expires_in.samples.append(((), provider.expires_in))
    last_error = Family(
        "taskcreds_last_error_timestamp_seconds",
        "gauge",
        "When the latest failed fetch failed (Unix time); absent until one has failed.",
    )
    if provider.last_error_at is not None:
        last_error.samples.append(((), provider.last_error_at.timestamp()))

    by_class = dict.fromkeys(_STATUS_CLASSES, 0)
    for code, count in broker.statuses.items():
        status_class = f"{code[:1]}xx"
        by_class[status_class] = by_class.get(status_class, 0) + count
    by_client: dict[tuple[str, ...], int] = {}
    for client in broker.clients:
        pid = _client_pid(client.client, client.pid)
        process = label_value(client.name or "")
        for agent, count in client.user_agents.items():
            labels = (pid, process, user_agent_label(agent))
            by_client[labels] = by_client.get(labels, 0) + count

    return [
        fetches,
        refreshes,
        Family(
            "taskcreds_fetch_retries_total",
            "counter",
            "Attempts retried within fetches from upstream.",
            samples=[((), provider.retries)],
        ),
        Family(
            "taskcreds_stale_serves_total",
            "counter",
            "Refreshes callers waited for that failed, so that the still-valid cached set was "
            "returned.",
            samples=[((), provider.stale_served)],
        ),
        Family(
            "taskcreds_expirations_total",
            "counter",
            "Times a caller got CredentialsExpiredError: the set had expired and the refresh "
            "failed.",
            samples=[((), provider.expirations)],
        ),
        Family(
            "taskcreds_events_dropped_total",
            "counter",
            "Telemetry events of the provider dropped because the delivery queue was full.",
            samples=[((), provider.events_dropped)],
        ),
        expires_in,
        last_error,
        Family(
            "taskcreds_broker_responses_total",
            "counter",
            "Requests the broker answered, by status class (malformed HTTP is not counted).",
            ("status_class",),
            [((status_class,), count) for status_class, count in sorted(by_class.items())],
        ),
        Family(
            "taskcreds_broker_credentials_served_total",
            "counter",
            "Credential answers from the cache, and those that waited for an upstream fetch.",
            ("served_from",),
            [(("cache",), broker.served_from_cache), (("upstream",), broker.waited_for_upstream)],
        ),
        Family(
            "taskcreds_broker_requests_total",
            "counter",
            "Requests the broker answered, by client process (PID, or unknown) and User-Agent; "
            "bounded: further clients and User-Agents count under other.",
            ("client_pid", "process", "user_agent"),
            [(labels, count) for labels, count in by_client.items()],
        ),
        Family(
            "taskcreds_broker_uptime_seconds",
            "gauge",
            "Seconds since the broker was made.",
            samples=[((), broker.uptime_seconds)],
        ),
    ]


class _Collector:
    """A prometheus_client collector over :func:`families`, made on the first scrape."""

    def __init__(
        self,
        snapshot: Callable[[], list[Family]],
        counter: type[CounterMetricFamily],
        gauge: type[GaugeMetricFamily],
    ) -> None:
        self._snapshot = snapshot
        self._kinds: dict[str, _Kind] = {"counter": counter, "gauge": gauge}

    def collect(self) -> Iterator[Metric]:
        for family in self._snapshot():
            metric = self._kinds[family.kind](
                family.name, family.documentation, labels=list(family.labels)
            )
            for labels, value in family.samples:
                metric.add_metric(list(labels), value)
            yield metric


class MetricsEndpoint:
    """The answer to ``GET /metrics`` for one broker (its own registry, made on first use)."""

    def __init__(
        self,
        broker_stats: Callable[[], BrokerStats],
        provider_stats: Callable[[], ProviderStats],
    ) -> None:
        self._broker_stats = broker_stats
        self._provider_stats = provider_stats
        self._lock = threading.Lock()
        self._loaded = False
        self._render: Callable[[], bytes] | None = None
        self._content_type = ""

    def reply(self) -> Reply:
        if not self._loaded:
            self._load()
        render = self._render
        if render is None:
            return text_error(501, MISSING_PROMETHEUS)
        return bytes_reply(200, self._content_type, render())

    def families(self) -> list[Family]:
        return families(self._broker_stats(), self._provider_stats())

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            try:
                from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
                from prometheus_client.metrics_core import (
                    CounterMetricFamily,
                    GaugeMetricFamily,
                )
                from prometheus_client.registry import CollectorRegistry
            except ImportError as exc:
                logger.warning(
                    "GET /metrics answers 501: prometheus_client cannot be imported (%s); "
                    "pip install 'taskcreds[prometheus]'",
                    exc,
                )
            else:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(_Collector(self.families, CounterMetricFamily, GaugeMetricFamily))
                self._render = functools.partial(generate_latest, registry)
                self._content_type = CONTENT_TYPE_LATEST
            self._loaded = True
