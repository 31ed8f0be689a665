"""The broker's accounting: requests by client process and by User-Agent, upstream fetches.

Everything here is safe to show: no secret, no token, no credentials ID. An access key ID is
masked (``ASIA…WXYZ``). Counters are bounded, since clients choose their User-Agent and an
attacker on loopback could send a new one with every request: at most :data:`MAX_CLIENTS`
clients and :data:`MAX_USER_AGENTS` User-Agents are told apart (the rest are counted under
``"other"``), a User-Agent is cut to :data:`MAX_USER_AGENT_CHARS` characters, and at most
:data:`MAX_CLIENT_USER_AGENTS` (client, User-Agent) pairs are counted apart (a client's further
ones under its ``"other"``).

The upstream numbers come from the provider's own :meth:`~taskcreds.CredentialProvider.stats`,
so they count every fetch whoever made the provider; the broker adds the times of the fetches
it sees (all of them when it made the provider, see :attr:`UpstreamStats.exact`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskcreds._time import utc_now
from taskcreds.credentials import Credentials, format_timestamp, mask_key_id
from taskcreds.errors import TaskCredsError
from taskcreds.telemetry import ProviderStats

__all__ = [
    "MAX_CLIENTS",
    "MAX_CLIENT_USER_AGENTS",
    "MAX_USER_AGENTS",
    "MAX_USER_AGENT_CHARS",
    "BrokerStats",
    "ClientStats",
    "CredentialsStats",
    "Ledger",
    "UpstreamStats",
]

MAX_CLIENTS = 256
MAX_USER_AGENTS = 64
MAX_USER_AGENT_CHARS = 256
#: (client, User-Agent) pairs counted apart, over all clients: the series of
#: ``taskcreds_broker_requests_total`` are at most this many plus one ``"other"`` per client.
MAX_CLIENT_USER_AGENTS = 256
OTHER = "other"


@dataclass(frozen=True)
class ClientStats:
    """One client: a process (by PID, when the kernel told) or else an address."""

    #: How the client is named: ``pid 1234`` or the address (``127.0.0.1``, ``unix``).
    client: str
    pid: int | None
    #: The process name (``/proc/<pid>/comm``), when known.
    name: str | None
    #: The address of its latest connection (``127.0.0.1:51234``, or ``unix``).
    address: str
    requests: int
    #: Of those, answered with credentials.
    served: int
    #: Refused: 401, 403, 421 (and 404/405).
    refused: int
    last_seen: str
    #: This client's requests by User-Agent (cut and folded as :attr:`BrokerStats.user_agents`;
    #: once :data:`MAX_CLIENT_USER_AGENTS` pairs are known, new ones count under ``"other"``).
    user_agents: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamStats:
    """The fetches from the endpoint the broker caches (the ECS agent, Pod Identity...).

    ``fetches``, ``failures``, ``throttled``, ``retries``, ``last_error`` and ``last_error_at``
    are the provider's own counts (:meth:`~taskcreds.CredentialProvider.stats`, since it was
    made): exact for any provider. ``consecutive_failures``, ``last_fetch_at`` and
    ``last_success_at`` are the broker's, exact when :attr:`exact` is true.
    """

    #: Where from (the endpoint's display URL: never the credentials ID), or the source's repr.
    source: str
    #: Fetches made (failed ones included).
    fetches: int
    #: Fetches that failed (throttled ones included).
    failures: int
    #: Failures since the last success.
    consecutive_failures: int
    last_fetch_at: str | None
    last_success_at: str | None
    #: The latest failure as taskcreds words it (message and hint; no secret), kept after later
    #: successes (compare ``last_error_at``).
    last_error: str | None
    #: True when the broker sees every fetch (it made the provider and wraps its source), so
    #: that ``consecutive_failures`` and the times are exact; False for a provider passed in,
    #: whose own prefetch thread the broker cannot see (only the fetches its requests caused).
    exact: bool
    #: Of ``failures``, those that failed on HTTP 429 (the agent's rate limit).
    throttled: int = 0
    #: Attempts retried within fetches.
    retries: int = 0
    #: When ``last_error`` happened (RFC 3339 UTC).
    last_error_at: str | None = None


@dataclass(frozen=True)
class CredentialsStats:
    """The set being served."""

    access_key_id: str  # masked
    role_arn: str | None
    account_id: str | None
    expiration: str
    seconds_left: float


@dataclass(frozen=True)
class BrokerStats:
    """What :meth:`taskcreds.Broker.stats` and ``GET /stats`` return (``to_dict()`` for JSON)."""

    url: str
    started_at: str
    uptime_seconds: float
    #: Every request answered, whatever its status.
    requests: int
    #: Requests by status code (as strings, as JSON keys must be).
    statuses: dict[str, int]
    #: Credential requests answered from the cache without waiting for upstream ...
    served_from_cache: int
    #: ... and those that had to wait for an upstream fetch (nothing valid was cached).
    waited_for_upstream: int
    #: Credential requests answered 503 (nothing valid cached and upstream failing).
    unavailable: int
    #: Distinct sets handed out so far.
    sets_served: int
    clients: tuple[ClientStats, ...]
    user_agents: dict[str, int]
    upstream: UpstreamStats
    credentials: CredentialsStats | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Client:
    pid: int | None
    name: str | None
    address: str
    requests: int = 0
    served: int = 0
    refused: int = 0
    last_seen: float = 0.0
    agents: dict[str, int] = field(default_factory=dict)


@dataclass
class Ledger:
    """The mutable counters behind :class:`BrokerStats`; every method is thread-safe."""

    exact_upstream: bool
    started_at: datetime = field(default_factory=utc_now)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started_monotonic: float = field(default_factory=time.monotonic)
    _statuses: dict[int, int] = field(default_factory=dict)
    _clients: dict[str, _Client] = field(default_factory=dict)
    _agents: dict[str, int] = field(default_factory=dict)
    _requests: int = 0
    _from_cache: int = 0
    _waited: int = 0
    _unavailable: int = 0
    _keys_served: set[str] = field(default_factory=set)
    _pairs: int = 0  # (client, User-Agent) pairs counted apart, "other" ones not included
    _consecutive: int = 0
    _last_fetch: datetime | None = None
    _last_success: datetime | None = None

    def request(
        self,
        *,
        client: str,
        pid: int | None,
        name: str | None,
        address: str,
        user_agent: str | None,
        status: int,
        credentials: Credentials | None = None,
        waited: bool = False,
    ) -> None:
        agent = (user_agent or "-")[:MAX_USER_AGENT_CHARS]
        now = time.time()
        with self._lock:
            self._requests += 1
            self._statuses[status] = self._statuses.get(status, 0) + 1
            entry = self._clients.get(client)
            if entry is None:
                if len(self._clients) >= MAX_CLIENTS:
                    client, pid, name, address = OTHER, None, None, OTHER
                    entry = self._clients.get(OTHER)
                if entry is None:
                    entry = self._clients[client] = _Client(pid, name, address)
            entry.address = address
            entry.requests += 1
            entry.last_seen = now
            if agent not in self._agents and len(self._agents) >= MAX_USER_AGENTS:
                agent = OTHER
            self._agents[agent] = self._agents.get(agent, 0) + 1
            agents = entry.agents
            if agent not in agents and agent != OTHER:
                if self._pairs >= MAX_CLIENT_USER_AGENTS:
                    agent = OTHER
                else:
                    self._pairs += 1
            agents[agent] = agents.get(agent, 0) + 1
            if credentials is not None:
                entry.served += 1
                self._keys_served.add(credentials.access_key_id)
                if waited:
                    self._waited += 1
                else:
                    self._from_cache += 1
            elif status == 503:
                self._unavailable += 1
            elif status in (401, 403, 404, 405, 421):
                entry.refused += 1

    def fetched(self, error: TaskCredsError | None) -> None:
        """A fetch the broker saw ended (its counts are the provider's: only times here)."""
        now = utc_now()
        with self._lock:
            self._last_fetch = now
            if error is None:
                self._consecutive = 0
                self._last_success = now
            else:
                self._consecutive += 1

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._consecutive

    def snapshot(
        self,
        url: str,
        source: str,
        credentials: Credentials | None,
        provider: ProviderStats,
    ) -> BrokerStats:
        now = utc_now()
        with self._lock:
            clients = tuple(
                ClientStats(
                    client=key,
                    pid=entry.pid,
                    name=entry.name,
                    address=entry.address,
                    requests=entry.requests,
                    served=entry.served,
                    refused=entry.refused,
                    last_seen=format_timestamp(datetime.fromtimestamp(entry.last_seen, now.tzinfo)),
                    user_agents=_by_count(entry.agents),
                )
                for key, entry in sorted(
                    self._clients.items(), key=lambda item: (-item[1].requests, item[0])
                )
            )
            failures = provider.fetches_failed + provider.fetches_throttled
            upstream = UpstreamStats(
                source=source,
                fetches=provider.fetches_ok + failures,
                failures=failures,
                consecutive_failures=self._consecutive,
                last_fetch_at=_stamp(self._last_fetch),
                last_success_at=_stamp(self._last_success),
                last_error=provider.last_error,
                exact=self.exact_upstream,
                throttled=provider.fetches_throttled,
                retries=provider.retries,
                last_error_at=_stamp(provider.last_error_at),
            )
            served = (
                CredentialsStats(
                    access_key_id=mask_key_id(credentials.access_key_id),
                    role_arn=credentials.role_arn,
                    account_id=credentials.account_id,
                    expiration=format_timestamp(credentials.expiration),
                    seconds_left=round((credentials.expiration - now).total_seconds(), 3),
                )
                if credentials is not None
                else None
            )
            return BrokerStats(
                url=url,
                started_at=format_timestamp(self.started_at),
                uptime_seconds=round(time.monotonic() - self._started_monotonic, 3),
                requests=self._requests,
                statuses={str(code): n for code, n in sorted(self._statuses.items())},
                served_from_cache=self._from_cache,
                waited_for_upstream=self._waited,
                unavailable=self._unavailable,
                sets_served=len(self._keys_served),
                clients=clients,
                user_agents=_by_count(self._agents),
                upstream=upstream,
                credentials=served,
            )


def _stamp(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: -item[1]))
