"""Stream audit lines into counters, and turn the counters into an :class:`AuditReport`.

Memory depends on the number of distinct tasks, clients and user agents, never on the number of
lines. Only the per-task first and last times become ``datetime`` objects, at the end.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from taskcreds.audit._agents import UserAgent, parse_user_agent
from taskcreds.audit._files import (
    MAX_LINE_LENGTH,
    TOO_LONG,
    drop_rest_of_line,
    find_log_files,
    is_cut_short,
    open_log,
    pieces,
)
from taskcreds.audit._parse import (
    EMPTY,
    GOOD_MINUTES,
    SECONDS,
    STATUSES,
    TIME_LENGTH,
    parse_line,
    to_datetime,
)
from taskcreds.audit._report import (
    NOT_A_LINE,
    AuditReport,
    ClientProblem,
    TaskActivity,
    UnparsedLine,
)
from taskcreds.credentials import format_timestamp

__all__ = ["MAX_UNPARSED_SHOWN", "AuditSummary", "summarise"]

#: How many unparsed lines a report keeps (with file and line number); the rest are only counted.
MAX_UNPARSED_SHOWN = 5

_INCOMPLETE = "no newline at the end: cut off while being written or copied"

# (task, event type, status, user agent, cluster, container instance, client ip), each as written
# ("-" when empty) -> [requests, first time, last time]
_Key = tuple[str, str, int, str, str, str, str]


class AuditSummary:
    """Streams audit lines into counters; :meth:`report` turns them into an :class:`AuditReport`.

    ``since`` is inclusive and ``until`` exclusive, both to the second. ``task`` is a full task
    ARN or its last part (the task ID).
    """

    def __init__(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        task: str | None = None,
        max_unparsed: int = MAX_UNPARSED_SHOWN,
    ) -> None:
        self._since_dt = since
        self._until_dt = until
        self._since = None if since is None else format_timestamp(since)
        self._until = None if until is None else format_timestamp(until)
        self._task = task
        self._max_unparsed = max_unparsed
        self._counts: dict[_Key, list[Any]] = {}
        # (status, client ip) -> [count, first, last, task ARNs on those lines]
        self._problems: dict[tuple[int, str], list[Any]] = {}
        self._files: list[str] = []
        self._file_errors: list[str] = []
        self._unparsed_examples: list[UnparsedLine] = []
        self.lines = 0
        self.parsed = 0
        self.unparsed = 0
        self.in_range = 0

    def _wanted(self, task: str) -> bool:
        want = self._task
        return want is None or task == want or task.endswith("/" + want)

    def add_file(self, path: str | os.PathLike[str]) -> None:
        """Read one file (plain or gzip) line by line. A read error (a truncated ``.gz``, say)
        ends that file and is reported in ``file_errors``; the lines before it count. A line
        longer than :data:`MAX_LINE_LENGTH` is unparsed, and only its start is kept in memory."""
        source = os.fspath(path)
        self._files.append(source)
        try:
            with open_log(path) as stream:
                self.add_lines(pieces(stream), source, complete=True, max_length=MAX_LINE_LENGTH)
        except (OSError, EOFError, zlib.error) as exc:
            self._file_errors.append(f"{source}: {exc}")

    def add_lines(  # noqa: PLR0912, PLR0915 (the hot loop is inlined on purpose)
        self,
        lines: Iterable[str],
        source: str = "<lines>",
        *,
        complete: bool = False,
        max_length: int | None = None,
    ) -> None:
        """Count ``lines``, one audit line each; ``source`` names them in unparsed lines.

        With ``complete`` (as for a file), a line must end in a newline: the agent writes one
        after every line, so a last line without it was cut off while being written or copied,
        and its last field may be cut short. It is counted as unparsed.

        ``max_length`` says that ``lines`` were read with ``readline(max_length)``, as
        :meth:`add_file` reads (with :data:`MAX_LINE_LENGTH`): a piece of that length without a
        newline is the start of a longer line, which is counted as unparsed, and the pieces
        after it up to its newline are dropped. Without it, lines are taken as they come.
        """
        since, until, want = self._since, self._until, self._task
        suffix = "/" + (want or "")
        counts = self._counts
        parse, statuses, seconds, minutes = parse_line, STATUSES, SECONDS, GOOD_MINUTES
        empty = EMPTY
        number = parsed = in_range = 0
        rest_of = iter(lines)
        try:
            for number, line in enumerate(rest_of, 1):
                # Fast path: a complete line in the usual shape, without a function call or a
                # record. Anything else goes to parse_line, which accepts a superset of these.
                fast = False
                parts = line.split('"')
                if len(parts) == 5:
                    head, _, gap, agent, tail = parts
                    words = head.split(" ")
                    rest = tail.split()
                    if (
                        len(words) == 4
                        and len(rest) == 5
                        and gap == " "
                        and not words[3]
                        and tail[0] == " "
                        and tail[-1] == "\n"
                    ):
                        time, status_text, client, _ = words
                        status = statuses.get(status_text, 0)
                        fast = (
                            status != 0
                            and client != ""
                            and len(time) == TIME_LENGTH
                            and time[19] == "Z"
                            and time[17:19] in seconds
                            and time[:17] in minutes
                        )
                        task, event, _, cluster, instance = rest
                if not fast:
                    if max_length is not None and is_cut_short(line, max_length):
                        drop_rest_of_line(line, rest_of, max_length)
                        self._unparsed(source, number, line, TOO_LONG)
                        continue
                    record = parse(line)
                    cut = complete and not line.endswith("\n")
                    if record is None or cut:
                        self._unparsed(source, number, line, _INCOMPLETE if cut else NOT_A_LINE)
                        continue
                    time, status = record.time, record.status
                    client = record.client or empty
                    agent = record.user_agent or empty
                    task = record.task_arn or empty
                    event = record.event_type or empty
                    cluster = record.cluster or empty
                    instance = record.container_instance or empty
                parsed += 1
                if (since is not None and time < since) or (until is not None and time >= until):
                    continue
                in_range += 1
                ip = client.rpartition(":")[0] or client
                if status >= 300 or status < 200 or task == empty:
                    self._problem(status, ip, time, task)
                    if task == empty:
                        continue
                if want is not None and task != want and not task.endswith(suffix):
                    continue
                key = (task, event, status, agent, cluster, instance, ip)
                entry = counts.get(key)
                if entry is None:
                    counts[key] = [1, time, time]
                else:
                    entry[0] += 1
                    if time > entry[2]:
                        entry[2] = time
                    elif time < entry[1]:
                        entry[1] = time
        finally:
            self.lines += number
            self.parsed += parsed
            self.in_range += in_range

    def _unparsed(self, source: str, number: int, line: str, reason: str) -> None:
        self.unparsed += 1
        if len(self._unparsed_examples) < self._max_unparsed:
            text = line.rstrip("\r\n")
            if len(text) > 160:
                text = text[:160] + "…"
            self._unparsed_examples.append(UnparsedLine(source, number, text, reason))

    def _problem(self, status: int, ip: str, time: str, task: str) -> None:
        entry = self._problems.get((status, ip))
        if entry is None:
            entry = self._problems[(status, ip)] = [0, time, time, set()]
        entry[0] += 1
        entry[1] = min(entry[1], time)
        entry[2] = max(entry[2], time)
        if task != EMPTY:
            entry[3].add(task)

    def report(self) -> AuditReport:
        tasks = _activities(self._counts)
        ips: dict[str, set[str]] = {}
        for task in tasks:
            for ip in task.clients:
                ips.setdefault(ip, set()).add(task.task_arn)
        errors: list[ClientProblem] = []
        throttled: list[ClientProblem] = []
        for (status, ip), (count, first, last, on_lines) in self._problems.items():
            named = {task for task in on_lines if self._wanted(task)}
            # With a task filter, keep the failures that name the task, or name none and come
            # from an address the task used.
            if self._task is not None and not (named or (not on_lines and ip in ips)):
                continue
            problem = ClientProblem(
                status,
                ip,
                count,
                to_datetime(first),
                to_datetime(last),
                tuple(sorted(named or ips.get(ip, set()))),
            )
            (throttled if status == 429 else errors).append(problem)
        order = lambda problem: (-problem.count, problem.status, problem.client)  # noqa: E731
        return AuditReport(
            tasks=tasks,
            errors=tuple(sorted(errors, key=order)),
            throttled=tuple(sorted(throttled, key=order)),
            files=tuple(self._files),
            lines=self.lines,
            parsed=self.parsed,
            unparsed=self.unparsed,
            in_range=self.in_range,
            unparsed_examples=tuple(self._unparsed_examples),
            file_errors=tuple(self._file_errors),
            since=self._since_dt,
            until=self._until_dt,
            task_filter=self._task,
        )


def _activities(counts: dict[_Key, list[Any]]) -> tuple[TaskActivity, ...]:
    """The counters grouped by task, busiest first."""
    grouped: dict[str, list[tuple[_Key, list[Any]]]] = {}
    for key, entry in counts.items():
        grouped.setdefault(key[0], []).append((key, entry))
    agents: dict[str, UserAgent] = {}
    activities = []
    for task, entries in grouped.items():
        events: dict[str, int] = {}
        statuses: dict[int, int] = {}
        by_agent: dict[UserAgent, int] = {}
        clusters: set[str] = set()
        instances: set[str] = set()
        clients: set[str] = set()
        for (_, event, status, agent, cluster, instance, ip), (count, _, _) in entries:
            events[event] = events.get(event, 0) + count
            statuses[status] = statuses.get(status, 0) + count
            if agent not in agents:
                agents[agent] = parse_user_agent(agent)
            sdk = agents[agent]
            by_agent[sdk] = by_agent.get(sdk, 0) + count
            clusters.add(cluster)
            instances.add(instance)
            clients.add(ip)
        activities.append(
            TaskActivity(
                task_arn=task,
                requests=sum(entry[0] for _, entry in entries),
                first=to_datetime(min(entry[1] for _, entry in entries)),
                last=to_datetime(max(entry[2] for _, entry in entries)),
                event_types=_by_count(events),
                statuses=dict(sorted(statuses.items())),
                user_agents=_by_count(by_agent),
                clusters=tuple(sorted(clusters - {EMPTY})),
                container_instances=tuple(sorted(instances - {EMPTY})),
                clients=tuple(sorted(clients - {EMPTY})),
            )
        )
    activities.sort(key=lambda task: (-task.requests, task.task_arn))
    return tuple(activities)


def _by_count(counts: dict[Any, int]) -> dict[Any, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))))


def summarise(
    paths: Sequence[str | os.PathLike[str]],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    task: str | None = None,
) -> AuditReport:
    """Summarise audit logs: files as given, directories' audit logs oldest first.

    Raises ``FileNotFoundError`` (before reading anything) if a path does not exist.
    """
    summary = AuditSummary(since=since, until=until, task=task)
    for path in find_log_files(paths):
        summary.add_file(path)
    return summary.report()
