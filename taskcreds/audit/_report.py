"""What a summary reports: per task, failures by client, the totals, and the too-often flag."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskcreds.audit._agents import UserAgent
from taskcreds.credentials import format_timestamp

__all__ = [
    "FREQUENT_MIN_REQUESTS",
    "FREQUENT_PER_MINUTE",
    "AuditReport",
    "ClientProblem",
    "TaskActivity",
    "UnparsedLine",
]

#: A task is flagged when it averages more than this many requests per minute over its active
#: span. The agent vends sets that live for hours and every SDK caches them until shortly before
#: expiry, so a healthy process fetches a handful of times a day: once a minute is already
#: hundreds of times too often, and usually means a new client (and a new fetch) per request.
FREQUENT_PER_MINUTE = 1.0
#: ...and when it made at least this many requests: a task whose few processes each fetch once
#: at start-up (gunicorn workers, a sidecar) makes several requests in its first minute, which is
#: normal.
FREQUENT_MIN_REQUESTS = 10

#: Why a line is unparsed, unless a more precise reason is known.
NOT_A_LINE = "not an audit line"


@dataclass(frozen=True)
class UnparsedLine:
    """A line that is not an audit record: where it is, how it starts, and why."""

    source: str
    line_number: int
    text: str
    reason: str = NOT_A_LINE


def _span(first: datetime, last: datetime) -> dict[str, str]:
    return {"first": format_timestamp(first), "last": format_timestamp(last)}


@dataclass(frozen=True)
class TaskActivity:
    """Everything one task fetched in the selected time range."""

    task_arn: str
    requests: int
    first: datetime
    last: datetime
    event_types: Mapping[str, int]
    statuses: Mapping[int, int]
    user_agents: Mapping[UserAgent, int]
    clusters: tuple[str, ...]
    container_instances: tuple[str, ...]
    clients: tuple[str, ...]

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]

    @property
    def span_minutes(self) -> float:
        return (self.last - self.first).total_seconds() / 60

    @property
    def per_minute(self) -> float:
        """Requests per minute over the active span (a span under a minute counts as one)."""
        return self.requests / max(self.span_minutes, 1.0)

    @property
    def fetches_too_often(self) -> bool:
        return self.requests >= FREQUENT_MIN_REQUESTS and self.per_minute > FREQUENT_PER_MINUTE

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_arn": self.task_arn,
            "task_id": self.task_id,
            "requests": self.requests,
            **_span(self.first, self.last),
            "span_minutes": round(self.span_minutes, 1),
            "per_minute": round(self.per_minute, 2),
            "fetches_too_often": self.fetches_too_often,
            "event_types": dict(self.event_types),
            "statuses": {str(status): count for status, count in self.statuses.items()},
            "user_agents": [
                {"sdk": agent.family, "version": agent.version, "requests": count}
                for agent, count in self.user_agents.items()
            ],
            "clusters": list(self.clusters),
            "container_instances": list(self.container_instances),
            "clients": list(self.clients),
        }


@dataclass(frozen=True)
class ClientProblem:
    """Failed requests (one status) from one client address.

    ``tasks`` are the task ARNs written on those lines or, when the lines have ``-`` (as errors
    and 429s do), the tasks whose successful requests came from the same address.
    """

    status: int
    client: str
    count: int
    first: datetime
    last: datetime
    tasks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "client": self.client,
            "count": self.count,
            **_span(self.first, self.last),
            "tasks": list(self.tasks),
        }


@dataclass(frozen=True)
class AuditReport:
    """The summary of every file read: per task, failures by client, and the totals."""

    tasks: tuple[TaskActivity, ...]
    errors: tuple[ClientProblem, ...]
    throttled: tuple[ClientProblem, ...]
    files: tuple[str, ...]
    lines: int
    parsed: int
    unparsed: int
    in_range: int
    unparsed_examples: tuple[UnparsedLine, ...]
    file_errors: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    task_filter: str | None = None

    @property
    def frequent(self) -> tuple[TaskActivity, ...]:
        """Tasks that fetch more than once a minute: usually an SDK that does not cache."""
        return tuple(task for task in self.tasks if task.fetches_too_often)

    def to_dict(self) -> dict[str, Any]:
        return {
            "filters": {
                "since": None if self.since is None else format_timestamp(self.since),
                "until": None if self.until is None else format_timestamp(self.until),
                "task": self.task_filter,
            },
            "totals": {
                "files": len(self.files),
                "lines": self.lines,
                "parsed": self.parsed,
                "unparsed": self.unparsed,
                "in_range": self.in_range,
                "tasks": len(self.tasks),
                "errors": sum(problem.count for problem in self.errors),
                "throttled": sum(problem.count for problem in self.throttled),
            },
            "tasks": [task.to_dict() for task in self.tasks],
            "errors": [problem.to_dict() for problem in self.errors],
            "throttled": [problem.to_dict() for problem in self.throttled],
            "fetches_too_often": [
                {
                    "task_arn": task.task_arn,
                    "requests": task.requests,
                    "span_minutes": round(task.span_minutes, 1),
                    "per_minute": round(task.per_minute, 2),
                }
                for task in self.frequent
            ],
            "unparsed_lines": [
                {
                    "file": line.source,
                    "line": line.line_number,
                    "text": line.text,
                    "reason": line.reason,
                }
                for line in self.unparsed_examples
            ],
            "file_errors": list(self.file_errors),
            "files": list(self.files),
        }
