"""``taskcreds audit``: who fetched which role from the ECS agent, how often, and what failed.

Reads the agent's credential audit log (``/var/log/ecs/audit.log`` on the container instance,
rotated and gzipped copies too) with :mod:`taskcreds.audit`. Needs no credentials and no network.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from taskcreds.audit import (
    EVENT_EXECUTION_ROLE,
    EVENT_TASK_ROLE,
    FREQUENT_MIN_REQUESTS,
    AuditReport,
    ClientProblem,
    TaskActivity,
    UnparsedLine,
    format_time,
    summarise,
)
from taskcreds.cli._common import EXIT_OK, Output, UsageError, printable
from taskcreds.cli._options import time_bound

EXAMPLE = (
    "python -m taskcreds audit /var/log/ecs/ --since 2h --task 0f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

_ROLES = {EVENT_TASK_ROLE: "task role", EVENT_EXECUTION_ROLE: "execution role"}
_ADVICE = (
    "The agent's credentials last for hours and every AWS SDK caches them, so a process needs a "
    "few fetches a day. Fetching more than once a minute usually means a new SDK client, session "
    "or credential provider per request (or per thread), each fetching afresh; it also invites "
    "429s from the agent. Create one provider per process and reuse it: taskcreds.session() or "
    "taskcreds.get_credentials(), or one boto3 Session per process."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="FILE|DIR",
        help="audit log files (plain or .gz) or directories (their audit.log* files, oldest first)",
    )
    parser.add_argument(
        "--since",
        type=time_bound,
        metavar="T",
        help="only requests at or after T: RFC 3339 (2026-11-29T21:00:00Z) or ago (30m, 2h, 1d)",
    )
    parser.add_argument(
        "--until",
        type=time_bound,
        metavar="T",
        help="only requests before T (same forms as --since)",
    )
    parser.add_argument(
        "--task", metavar="ARN", help="only this task: its full ARN or the task ID at its end"
    )


def run(args: argparse.Namespace, output: Output) -> int:
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise UsageError(
            f"--since {format_time(args.since)} is not before --until {format_time(args.until)}",
            hint="--since is inclusive and --until exclusive, so --since must be the earlier",
        )
    try:
        report = summarise(args.paths, since=args.since, until=args.until, task=args.task)
    except FileNotFoundError as exc:
        raise UsageError(
            str(exc),
            hint="the audit log is on the container instance (EC2 launch type) at "
            "/var/log/ecs/audit.log, not inside the task; copy it from there",
        ) from exc
    for problem in report.file_errors:
        output.warn(f"stopped reading {problem}")
    if output.json_mode:
        output.document({"ok": True, **report.to_dict()})
    else:
        for line in render(report):
            output.line(line)
    return EXIT_OK


# -- text output ---------------------------------------------------------------------------------


def render(report: AuditReport) -> list[str]:
    """The human-readable report, one string per line.

    Everything in it that comes from the log (task ARNs, user agents, clients, unparsed lines,
    file names) may hold control characters: :class:`Output` escapes each line as it prints it.
    """
    lines: list[str] = []
    if not report.tasks:
        lines += ["no credential requests from a task in the selected range", ""]
    for task in report.tasks:
        lines += _task_block(task)
        lines.append("")
    lines += _problems("errors (non-2xx responses other than 429)", report.errors)
    lines += _problems(
        "throttled (429: over 40 requests/s from one client address)", report.throttled
    )
    frequent = report.frequent
    if frequent:
        lines.append(
            "fetches too often (more than once a minute on average, "
            f"at least {FREQUENT_MIN_REQUESTS} requests)"
        )
        for task in frequent:
            lines.append(f"  {_short(task.task_arn)}  {_rate(task)}")
        lines += _wrap(_ADVICE, "  ")
        lines.append("")
    if report.unparsed:
        shown = len(report.unparsed_examples)
        lines.append(f"unparsed lines (first {shown} of {report.unparsed:,})")
        for line in report.unparsed_examples:
            lines.append(f"  {line.source}:{line.line_number}: {line.text}")
            if line.reason != UnparsedLine.reason:
                lines.append(f"    ({line.reason})")
        lines.append("")
    lines.append(_totals(report))
    return lines


def _task_block(task: TaskActivity) -> list[str]:
    flag = "  << fetches too often" if task.fetches_too_often else ""
    rows = [
        ("requests", f"{_rate(task)}{flag}"),
        ("first", format_time(task.first)),
        ("last", format_time(task.last)),
        ("roles", _counts({_ROLES.get(event, event): n for event, n in task.event_types.items()})),
        ("status", _counts(task.statuses)),
        ("sdk", _counts({str(agent): n for agent, n in task.user_agents.items()})),
        ("cluster", ", ".join(task.clusters) or "-"),
        ("instance", ", ".join(task.container_instances) or "-"),
        ("client", ", ".join(task.clients) or "-"),
    ]
    return [f"task {task.task_arn}", *(f"  {label:<9} {value}" for label, value in rows)]


def _problems(title: str, problems: Iterable[ClientProblem]) -> list[str]:
    problems = list(problems)
    if not problems:
        return []
    table = [("STATUS", "CLIENT", "COUNT", "FIRST", "LAST", "TASK")]
    table += [
        (
            str(problem.status),
            printable(problem.client),  # from the log: escaped before the widths are taken
            f"{problem.count:,}",
            format_time(problem.first),
            format_time(problem.last),
            printable(_tasks(problem.tasks)),
        )
        for problem in problems
    ]
    widths = [max(len(row[column]) for row in table) for column in range(5)]
    lines = [title]
    for row in table:
        cells = [
            cell.rjust(width) if column == 2 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row[:5], widths, strict=True))
        ]
        lines.append("  " + "  ".join([*cells, row[5]]))
    return [*lines, ""]


def _tasks(tasks: tuple[str, ...], limit: int = 2) -> str:
    """The tasks behind a failure; with host networking many tasks share one address."""
    shown = ", ".join(_short(task) for task in tasks[:limit]) or "-"
    return f"{shown} and {len(tasks) - limit} more" if len(tasks) > limit else shown


def _totals(report: AuditReport) -> str:
    parts = [
        _plural(len(report.files), "file"),
        _plural(report.lines, "line"),
        f"{report.parsed:,} parsed",
        f"{report.unparsed:,} unparsed",
    ]
    if report.since or report.until:
        parts.append(f"{report.in_range:,} in the time range")
    parts += [
        _plural(len(report.tasks), "task"),
        _plural(sum(p.count for p in report.errors), "error"),
        f"{sum(p.count for p in report.throttled):,} throttled",
    ]
    return "totals: " + ", ".join(parts)


def _rate(task: TaskActivity) -> str:
    """``91 in 30m: 3.03 a minute`` (a span under a minute counts as a minute)."""
    return f"{task.requests:,} in {_duration(task.span_minutes)}: {task.per_minute:.2f} a minute"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _counts(counts: Mapping[Any, int]) -> str:
    return ", ".join(f"{name} ×{count:,}" for name, count in counts.items()) or "-"


def _short(task_arn: str) -> str:
    """``cluster/task-id`` from a task ARN (the part after ``:task/``)."""
    return task_arn.partition(":task/")[2] or task_arn


def _duration(minutes: float) -> str:
    seconds = round(minutes * 60)
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds // 60, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {rest}m" if hours else f"{rest}m"


def _wrap(text: str, indent: str, width: int = 100) -> list[str]:
    lines: list[str] = []
    current = indent
    for word in text.split():
        if len(current) + len(word) + 1 > width and current.strip():
            lines.append(current.rstrip())
            current = indent
        current += word + " "
    if current.strip():
        lines.append(current.rstrip())
    return lines
