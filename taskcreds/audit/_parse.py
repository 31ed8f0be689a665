"""One audit line: the record type, the line grammar, and the times in and around it.

The agent writes one line per credentials request (format in docs/agent-contract.md, "The ECS
agent's audit log")::

    <time> <status> <ip:port> "<path>" "<user agent>" <task ARN> <event type> <version>
        <cluster> <container instance ARN>      (all on one line)

Empty fields are ``-``; on errors and 429s the task ARN is ``-`` and the trailing fields may be
missing. Speed matters (a busy host writes millions of lines), so :func:`parse_line` splits on
``"`` and ``" "`` instead of using a regular expression, and never builds a ``datetime`` per line:
times are kept as normalised RFC 3339 strings (``YYYY-MM-DDTHH:MM:SSZ``), which sort in time
order, so time bounds and first/last are string comparisons.

The names without a leading underscore that are not in ``__all__`` (``EMPTY``, ``STATUSES``,
``SECONDS``, ``GOOD_MINUTES``, ``TIME_LENGTH``, :func:`to_datetime`, :func:`ip_of`) are for
:mod:`taskcreds.audit._summary`, whose inlined fast path must accept exactly what this module
does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

__all__ = [
    "EVENT_EXECUTION_ROLE",
    "EVENT_TASK_ROLE",
    "AuditRecord",
    "parse_line",
    "parse_time_bound",
]

#: Event type of a request for the task role's credentials (what the app's SDK asks for).
EVENT_TASK_ROLE = "GetCredentials"
#: Event type of a request for the task execution role's credentials.
EVENT_EXECUTION_ROLE = "GetCredentialsExecutionRole"

#: How the agent writes an empty field.
EMPTY = "-"
#: The length of a normalised time: ``YYYY-MM-DDTHH:MM:SSZ``.
TIME_LENGTH = 20
#: Every status text the parser accepts, to its number.
STATUSES = {str(code): code for code in range(100, 600)}
#: The two-digit seconds ``00`` to ``59``.
SECONDS = frozenset(f"{second:02d}" for second in range(60))
#: ``YYYY-MM-DDTHH:MM:`` prefixes known to be real times (a cache, cleared when it grows large).
GOOD_MINUTES: set[str] = set()

_UTC = timezone.utc
_MINUTE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:", re.ASCII)
_MAX_CACHED_MINUTES = 4096


def to_datetime(normal: str) -> datetime:
    """A normalised time (``YYYY-MM-DDTHH:MM:SSZ``) as an aware UTC ``datetime``."""
    return datetime.fromisoformat(normal[:19]).replace(tzinfo=_UTC)


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
        return to_datetime(self.time)

    @property
    def client_ip(self) -> str | None:
        """The client address without the port (``[...]`` kept for IPv6)."""
        return None if self.client is None else ip_of(self.client)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# tuple.__new__ directly: a NamedTuple's generated __new__ is Python code, and slower.
_new_record: Callable[[tuple[Any, ...]], AuditRecord] = functools.partial(
    tuple.__new__, AuditRecord
)


def ip_of(client: str) -> str:
    """``ip:port`` without the port (``[...]`` kept for IPv6)."""
    return client.rpartition(":")[0] or client


def _valid_minute(prefix: str) -> bool:
    """Whether ``YYYY-MM-DDTHH:MM:`` is a real date and time (good ones are cached: logs are in
    time order, so nearly every line hits the cache)."""
    if prefix in GOOD_MINUTES:
        return True
    if _MINUTE_SHAPE.fullmatch(prefix) is None:
        return False
    try:
        datetime.fromisoformat(prefix[:16])
    except ValueError:
        return False
    if len(GOOD_MINUTES) >= _MAX_CACHED_MINUTES:
        GOOD_MINUTES.clear()
    GOOD_MINUTES.add(prefix)
    return True


def _normal_time(text: str) -> str | None:
    """``text`` as ``YYYY-MM-DDTHH:MM:SSZ`` if it is an RFC 3339 UTC time, else ``None``."""
    if len(text) == TIME_LENGTH:
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
    if text[17:19] in SECONDS and _valid_minute(text[:17]):
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
        agent = EMPTY
        if tail.strip():
            return None
    else:
        return None
    words = head.split(" ")
    if len(words) != 4 or words[3] or gap != " ":
        return None
    status = STATUSES.get(words[1])
    written = words[0]
    time = (
        written
        if len(written) == TIME_LENGTH
        and written[19] == "Z"
        and written[17:19] in SECONDS
        and written[:17] in GOOD_MINUTES
        else _normal_time(written)
    )
    client = words[2]
    if status is None or time is None or not client or (tail and tail[0] not in " \r\n"):
        return None
    rest = tail.split()
    if len(rest) != 5:
        if len(rest) > 5 or 200 <= status < 300:
            return None
        rest += [EMPTY] * (5 - len(rest))
    task, event, version, cluster, instance = rest
    e = EMPTY
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


# -- time bounds ---------------------------------------------------------------------------------

_RELATIVE = re.compile(r"(\d+)([smhdw])", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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
