"""Parse and summarise the ECS agent's credential audit log. Pure: no printing, no CLI.

The agent writes one line per credentials request to ``/var/log/ecs/audit.log`` on the container
instance (format in docs/agent-contract.md, "The ECS agent's audit log")::

    <time> <status> <ip:port> "<path>" "<user agent>" <task ARN> <event type> <version>
        <cluster> <container instance ARN>      (all on one line)

Empty fields are ``-``; on errors and 429s the task ARN is ``-`` and the trailing fields may be
missing. :func:`parse_line` turns one line into an :class:`AuditRecord` (or ``None``), and
:class:`AuditSummary` streams files through it, keeping only counters: memory depends on the number
of distinct tasks, clients and user agents, never on the number of lines.

Speed matters (a busy host writes millions of lines), so the parser splits on ``"`` and ``" "``
instead of using a regular expression, and never builds a ``datetime`` per line: timestamps are
kept as normalised RFC 3339 strings (``YYYY-MM-DDTHH:MM:SSZ``), which sort in time order, so
``--since``/``--until`` and first/last are string comparisons. Only the per-task first and last
times become ``datetime`` objects, at the end.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, NamedTuple

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

#: Event type of a request for the task role's credentials (what the app's SDK asks for).
EVENT_TASK_ROLE = "GetCredentials"
#: Event type of a request for the task execution role's credentials.
EVENT_EXECUTION_ROLE = "GetCredentialsExecutionRole"

#: A task is flagged when it averages more than this many requests per minute over its active
#: span. The agent vends sets that live for hours and every SDK caches them until shortly before
#: expiry, so a healthy process fetches a handful of times a day: once a minute is already
#: hundreds of times too often, and usually means a new client (and a new fetch) per request.
FREQUENT_PER_MINUTE = 1.0
#: ...and when it made at least this many requests: a task whose few processes each fetch once
#: at start-up (gunicorn workers, a sidecar) makes several requests in its first minute, which is
#: normal.
FREQUENT_MIN_REQUESTS = 10
#: How many unparsed lines a report keeps (with file and line number); the rest are only counted.
MAX_UNPARSED_SHOWN = 5
#: The longest line :meth:`AuditSummary.add_file` reads whole, newline included, in characters
#: (64 KiB; the agent's lines are a few hundred). A longer one is unparsed: its start is kept and
#: the rest is read in chunks of this size and dropped, so one huge line (2 GiB of junk inside a
#: 2 MiB ``.gz``) cannot exhaust memory.
MAX_LINE_LENGTH = 64 * 1024

_EMPTY = "-"
_UTC = timezone.utc
_TIME_LENGTH = 20  # YYYY-MM-DDTHH:MM:SSZ
_STATUSES = {str(code): code for code in range(100, 600)}
_SECONDS = frozenset(f"{second:02d}" for second in range(60))
_MINUTE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:", re.ASCII)
_good_minutes: set[str] = set()  # "YYYY-MM-DDTHH:MM:" prefixes known to be real times
_MAX_CACHED_MINUTES = 4096
_NOT_A_LINE = "not an audit line"
_INCOMPLETE = "no newline at the end: cut off while being written or copied"
_TOO_LONG = f"longer than {MAX_LINE_LENGTH // 1024} KiB: not an audit line; the rest was skipped"


class AuditRecord(NamedTuple):
    """One parsed audit line. ``-`` fields are ``None``.

    ``time`` is normalised to ``YYYY-MM-DDTHH:MM:SSZ`` (fractional seconds dropped), so records
    compare in time order as strings; :attr:`timestamp` is the aware ``datetime``.
    """

    time: str
    status: int
    client: str | None
    path: str | None
    user_agent: str | None
    task_arn: str | None
    event_type: str | None
    version: str | None
    cluster: str | None
    container_instance: str | None

    @property
    def timestamp(self) -> datetime:
        return _to_datetime(self.time)

    @property
    def client_ip(self) -> str | None:
        """The client address without the port (``[...]`` kept for IPv6)."""
        return None if self.client is None else _ip(self.client)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# tuple.__new__ directly: a NamedTuple's generated __new__ is Python code, and slower.
_new_record: Callable[[tuple[Any, ...]], AuditRecord] = functools.partial(
    tuple.__new__, AuditRecord
)


def _ip(client: str) -> str:
    return client.rpartition(":")[0] or client


def _valid_minute(prefix: str) -> bool:
    """Whether ``YYYY-MM-DDTHH:MM:`` is a real date and time (good ones are cached: logs are in
    time order, so nearly every line hits the cache)."""
    if prefix in _good_minutes:
        return True
    if _MINUTE_SHAPE.fullmatch(prefix) is None:
        return False
    try:
        datetime.fromisoformat(prefix[:16])
    except ValueError:
        return False
    if len(_good_minutes) >= _MAX_CACHED_MINUTES:
        _good_minutes.clear()
    _good_minutes.add(prefix)
    return True


def _normal_time(text: str) -> str | None:
    """``text`` as ``YYYY-MM-DDTHH:MM:SSZ`` if it is an RFC 3339 UTC time, else ``None``."""
    if len(text) == _TIME_LENGTH:
        if text[19] != "Z":
            return None
    elif (
        len(text) > 21
        and text[19] == "."
        and text[-1] == "Z"
        and text[20:-1].isascii()
        and text[20:-1].isdigit()
    ):
        text = text[:19] + "Z"
    else:
        return None
    if text[17:19] in _SECONDS and _valid_minute(text[:17]):
        return text
    return None


def parse_line(line: str) -> AuditRecord | None:
    """One audit line as a record, or ``None`` if it is not one. Never raises.

    Successful (2xx) lines must have every field. Other statuses may stop after any field from
    the user agent on, as the agent writes them for errors and 429s.
    """
    parts = line.split('"')
    if len(parts) == 5:
        head, path, gap, agent, tail = parts
    elif len(parts) > 5:  # a '"' inside the user agent
        head, path, gap, tail = parts[0], parts[1], parts[2], parts[-1]
        agent = '"'.join(parts[3:-1])
    elif len(parts) == 3:  # an error line that ends after the path
        head, path, tail = parts
        gap = " "
        agent = _EMPTY
        if tail.strip():
            return None
    else:
        return None
    words = head.split(" ")
    if len(words) != 4 or words[3] or gap != " ":
        return None
    status = _STATUSES.get(words[1])
    written = words[0]
    time = (
        written
        if len(written) == _TIME_LENGTH
        and written[19] == "Z"
        and written[17:19] in _SECONDS
        and written[:17] in _good_minutes
        else _normal_time(written)
    )
    client = words[2]
    if status is None or time is None or not client or (tail and tail[0] not in " \r\n"):
        return None
    rest = tail.split()
    if len(rest) != 5:
        if len(rest) > 5 or 200 <= status < 300:
            return None
        rest += [_EMPTY] * (5 - len(rest))
    task, event, version, cluster, instance = rest
    e = _EMPTY
    return _new_record(
        (
            time,
            status,
            None if client == e else client,
            None if path == e else path,
            None if agent == e else agent,
            None if task == e else task,
            None if event == e else event,
            None if version == e else version,
            None if cluster == e else cluster,
            None if instance == e else instance,
        )
    )


# -- user agents ---------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class UserAgent:
    """The SDK behind a user agent: a known family and its version, or the raw product token."""

    family: str
    version: str | None = None

    def __str__(self) -> str:
        return self.family if self.version is None else f"{self.family} {self.version}"


# Product names (lower case) of the AWS SDKs and tools, and the family each belongs to.
_FAMILIES = {
    "boto3": "boto3",
    "botocore": "botocore",
    "aws-cli": "aws-cli",
    "aws-sdk-go-v2": "aws-sdk-go-v2",
    "aws-sdk-go": "aws-sdk-go",
    "aws-sdk-java": "aws-sdk-java",
    "aws-sdk-js": "aws-sdk-js",
    "aws-sdk-nodejs": "aws-sdk-js",
    "aws-sdk-rust": "aws-sdk-rust",
    "aws-sdk-dotnet-coreclr": "aws-sdk-dotnet",
    "aws-sdk-dotnet-45": "aws-sdk-dotnet",
    "aws-sdk-dotnet": "aws-sdk-dotnet",
    "aws-sdk-php": "aws-sdk-php",
    "aws-sdk-ruby3": "aws-sdk-ruby",
    "aws-sdk-ruby2": "aws-sdk-ruby",
    "aws-sdk-ruby": "aws-sdk-ruby",
    "aws-sdk-cpp": "aws-sdk-cpp",
    "aws-sdk-kotlin": "aws-sdk-kotlin",
    "aws-sdk-swift": "aws-sdk-swift",
    "taskcreds": "taskcreds",
}


def parse_user_agent(user_agent: str | None) -> UserAgent:
    """The SDK family and version, from the first ``name/version`` token naming a known SDK.

    ``Boto3/1.43.11 md/Botocore#1.43.11 ...`` is ``boto3 1.43.11``; an unknown agent is its first
    product token (``curl/8.5.0``) with no version; a missing one is ``-``.
    """
    if not user_agent or user_agent == _EMPTY:
        return UserAgent(_EMPTY)
    tokens = user_agent.split()
    if not tokens:
        return UserAgent(_EMPTY)
    for token in tokens:
        name, slash, version = token.partition("/")
        family = _FAMILIES.get(name.lower())
        if family is not None and slash and version:
            return UserAgent(family, version)
    return UserAgent(tokens[0])


# -- time ----------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"(\d+)([smhdw])", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _to_datetime(normal: str) -> datetime:
    return datetime.fromisoformat(normal[:19]).replace(tzinfo=_UTC)


def format_time(moment: datetime) -> str:
    """``moment`` as RFC 3339 UTC, whole seconds: ``2026-11-29T21:04:05Z``.

    Always four digits of year (``strftime("%Y")`` writes the year 999 as ``999`` on glibc,
    which would sort after 2026), so the result compares with the log's times as a string.
    """
    return moment.astimezone(_UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def parse_time_bound(text: str, now: datetime) -> datetime:
    """An RFC 3339 time (``2026-11-29T21:00:00Z``, any offset) or a duration before ``now``.

    Durations are a number and a unit: ``90s``, ``30m``, ``2h``, ``1d``, ``1w``.
    Raises ``ValueError`` with a message fit for the user.
    """
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount, unit = relative.groups()
        try:
            return now.astimezone(_UTC) - timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
        except (OverflowError, ValueError) as exc:  # ValueError: over 4300 digits
            raise ValueError(f"{_shown(text)} reaches back before the year 1") from exc
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "Zz" else value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"{_shown(text)} is neither an RFC 3339 time with a zone (2026-11-29T21:00:00Z) "
            "nor a duration (30m, 2h, 1d)"
        )
    try:
        return moment.astimezone(_UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is in the year 0 in UTC
        raise ValueError(
            f"{_shown(text)} is outside the years 1 to 9999 once converted to UTC"
        ) from exc


def _shown(text: str, limit: int = 80) -> str:
    """``repr(text)``, cut short: it goes into an error message."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


# -- files ---------------------------------------------------------------------------------------

_LOG_NAME = re.compile(
    r"audit\.log(?:\.(?:(?P<hourly>\d{4}-\d{2}-\d{2}-\d{2})|(?P<compact>\d{10})|(?P<n>\d{1,4})))?"
    r"(?:\.gz)?",
    re.ASCII,
)


def _order(path: Path) -> tuple[int, int]:
    """Sort key, oldest first: hourly files by hour, then ``.N`` from high to low, live last."""
    match = _LOG_NAME.fullmatch(path.name)
    assert match is not None
    if match["hourly"] or match["compact"]:
        return (0, int((match["hourly"] or match["compact"]).replace("-", "")))
    if match["n"]:
        return (1, -int(match["n"]))
    return (2, 0)


def is_audit_log_name(name: str) -> bool:
    """``audit.log``, ``audit.log.N``, ``audit.log.YYYY-MM-DD-HH``, ``audit.log.YYYYMMDDHH``, each
    optionally ``.gz``."""
    return _LOG_NAME.fullmatch(name) is not None


def find_log_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files to read: each file as given; each directory's audit logs, oldest first.

    Raises ``FileNotFoundError`` for a path that does not exist and for a directory without any
    audit log.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            logs = [p for p in path.iterdir() if is_audit_log_name(p.name) and p.is_file()]
            found.extend(sorted(logs, key=lambda p: (_order(p), p.name)))
            if not logs:
                raise FileNotFoundError(f"no audit.log files in directory {os.fspath(given)}")
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {os.fspath(given)}")
    return list(dict.fromkeys(found))


def open_log(path: str | os.PathLike[str]) -> IO[str]:
    """``path`` as text, gunzipped if it is gzip (by content, not name); bad bytes become U+FFFD."""
    with open(path, "rb") as raw:
        magic = raw.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


# -- the summary ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnparsedLine:
    """A line that is not an audit record: where it is, how it starts, and why."""

    source: str
    line_number: int
    text: str
    reason: str = _NOT_A_LINE


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
            "first": format_time(self.first),
            "last": format_time(self.last),
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
            "first": format_time(self.first),
            "last": format_time(self.last),
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
                "since": None if self.since is None else format_time(self.since),
                "until": None if self.until is None else format_time(self.until),
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
        self._since = None if since is None else format_time(since)
        self._until = None if until is None else format_time(until)
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
                chunks = iter(functools.partial(stream.readline, MAX_LINE_LENGTH), "")
                self.add_lines(chunks, source, complete=True, max_length=MAX_LINE_LENGTH)
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
        parse, statuses, seconds, minutes = parse_line, _STATUSES, _SECONDS, _good_minutes
        empty = _EMPTY
        number = parsed = in_range = 0
        pieces = iter(lines)
        try:
            for number, line in enumerate(pieces, 1):
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
                            and len(time) == _TIME_LENGTH
                            and time[19] == "Z"
                            and time[17:19] in seconds
                            and time[:17] in minutes
                        )
                        task, event, _, cluster, instance = rest
                if not fast:
                    if max_length is not None and len(line) >= max_length and line[-1] != "\n":
                        piece = line  # the start of a longer line: drop the rest, piece by piece
                        while len(piece) >= max_length and piece[-1] != "\n":
                            piece = next(pieces, "")
                        self._unparsed(source, number, line, _TOO_LONG)
                        continue
                    record = parse(line)
                    cut = complete and not line.endswith("\n")
                    if record is None or cut:
                        self._unparsed(source, number, line, _INCOMPLETE if cut else _NOT_A_LINE)
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
        if task != _EMPTY:
            entry[3].add(task)

    def report(self) -> AuditReport:
        tasks = self._tasks()
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
                _to_datetime(first),
                _to_datetime(last),
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

    def _tasks(self) -> tuple[TaskActivity, ...]:
        grouped: dict[str, list[tuple[_Key, list[Any]]]] = {}
        for key, entry in self._counts.items():
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
                    first=_to_datetime(min(entry[1] for _, entry in entries)),
                    last=_to_datetime(max(entry[2] for _, entry in entries)),
                    event_types=_by_count(events),
                    statuses=dict(sorted(statuses.items())),
                    user_agents=_by_count(by_agent),
                    clusters=tuple(sorted(clusters - {_EMPTY})),
                    container_instances=tuple(sorted(instances - {_EMPTY})),
                    clients=tuple(sorted(clients - {_EMPTY})),
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
