"""Which files to read and how: rotated names, oldest first, gzip by content, the line limit."""

from __future__ import annotations

import functools
import gzip
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["MAX_LINE_LENGTH", "find_log_files", "is_audit_log_name", "open_log"]

#: The longest line :meth:`~taskcreds.audit.AuditSummary.add_file` reads whole, newline
#: included, in characters (64 KiB; the agent's lines are a few hundred). A longer one is
#: unparsed: its start is kept and the rest is read in chunks of this size and dropped, so one
#: huge line (2 GiB of junk inside a 2 MiB ``.gz``) cannot exhaust memory.
MAX_LINE_LENGTH = 64 * 1024
#: Why a line longer than the limit is unparsed.
TOO_LONG = f"longer than {MAX_LINE_LENGTH // 1024} KiB: not an audit line; the rest was skipped"

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


def pieces(stream: IO[str]) -> Iterator[str]:
    """``stream``'s lines, each cut at :data:`MAX_LINE_LENGTH` (``readline(MAX_LINE_LENGTH)``)."""
    return iter(functools.partial(stream.readline, MAX_LINE_LENGTH), "")


def is_cut_short(piece: str, max_length: int) -> bool:
    """Whether ``piece``, read with ``readline(max_length)``, is the start of a longer line."""
    return len(piece) >= max_length and piece[-1] != "\n"


def drop_rest_of_line(start: str, rest: Iterator[str], max_length: int) -> None:
    """Read and drop the pieces of a long line after ``start``, up to and with its newline."""
    piece = start
    while is_cut_short(piece, max_length):
        piece = next(rest, "")
