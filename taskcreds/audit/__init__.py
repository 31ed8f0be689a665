"""Parse and summarise the ECS agent's credential audit log. Pure: no printing, no CLI.

The agent writes one line per credentials request to ``/var/log/ecs/audit.log`` on the container
instance (format in docs/agent-contract.md, "The ECS agent's audit log")::

    <time> <status> <ip:port> "<path>" "<user agent>" <task ARN> <event type> <version>
        <cluster> <container instance ARN>      (all on one line)

:func:`parse_line` turns one line into an :class:`AuditRecord` (or ``None``), and
:class:`AuditSummary` streams files through it, keeping only counters.

The parts, each one job:

- ``_parse``: one line: the record type, the line grammar, times and ``--since``/``--until``
  bounds;
- ``_agents``: the SDK family and version behind a user agent;
- ``_files``: which files to read (rotated names, oldest first), gzip, the 64 KiB line limit;
- ``_report``: what a summary reports (per task, failures by client, the too-often flag);
- ``_summary``: :class:`AuditSummary`, which counts lines into a report.
"""

from __future__ import annotations

from taskcreds.audit._agents import UserAgent, parse_user_agent
from taskcreds.audit._files import MAX_LINE_LENGTH, find_log_files, is_audit_log_name, open_log
from taskcreds.audit._parse import (
    EVENT_EXECUTION_ROLE,
    EVENT_TASK_ROLE,
    AuditRecord,
    parse_line,
    parse_time_bound,
)
from taskcreds.audit._report import (
    FREQUENT_MIN_REQUESTS,
    FREQUENT_PER_MINUTE,
    AuditReport,
    ClientProblem,
    TaskActivity,
    UnparsedLine,
)
from taskcreds.audit._summary import MAX_UNPARSED_SHOWN, AuditSummary, summarise
from taskcreds.credentials import format_timestamp

#: The same function as :func:`taskcreds.credentials.format_timestamp` (RFC 3339 UTC, whole
#: seconds, four-digit years), under the name this module has always offered.
format_time = format_timestamp

__all__ = [
    "EVENT_EXECUTION_ROLE",
    "EVENT_TASK_ROLE",
    "FREQUENT_MIN_REQUESTS",
    "FREQUENT_PER_MINUTE",
    "MAX_LINE_LENGTH",
    "MAX_UNPARSED_SHOWN",
    "AuditRecord",
    "AuditReport",
    "AuditSummary",
    "ClientProblem",
    "TaskActivity",
    "UnparsedLine",
    "UserAgent",
    "find_log_files",
    "format_time",
    "is_audit_log_name",
    "open_log",
    "parse_line",
    "parse_time_bound",
    "parse_user_agent",
    "summarise",
]
