"""Options and argument types shared by the commands: each defined once.

An argument type raises :class:`argparse.ArgumentTypeError`; the CLI's parser turns that into a
:class:`~taskcreds.cli._common.UsageError` (exit code 1), shown as argparse shows it.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

__all__ = [
    "DEFAULT_TIMEOUT",
    "add_timeout",
    "allowed_host",
    "credentials_id",
    "duration",
    "format_short_duration",
    "http_status",
    "non_negative_float",
    "non_negative_int",
    "port",
    "positive_float",
    "positive_int",
    "positive_seconds",
    "time_bound",
]

#: ``--timeout``'s default: seconds for the whole fetch, retries included.
DEFAULT_TIMEOUT = 5.0
_N = TypeVar("_N", int, float)
_CREDENTIALS_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
# ASCII digits only: \d would also take other scripts' digits, which int() reads but people don't.
_DURATION = re.compile(r"([0-9]+)([smh]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def add_timeout(parser: argparse.ArgumentParser, *, default: float = DEFAULT_TIMEOUT) -> None:
    """``--timeout SECONDS``: the deadline of the whole fetch (``show``, ``doctor``, ``export``,
    ``health``). Every command shares the wording; ``health`` has a shorter default."""
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=default,
        help=f"seconds for the whole fetch (default {default:g})",
    )


def positive_seconds(text: str) -> float:
    """A finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def duration(text: str) -> timedelta:
    """A whole number of seconds, minutes or hours: ``90`` (seconds), ``30s``, ``5m``, ``1h``.

    Zero is allowed (``0``, ``0m``). Anything else (a sign, a fraction, another unit, a space,
    several parts such as ``1h30m``) is refused with a message that shows the accepted forms.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use a whole number of seconds, or one with a unit s, m "
            "or h: 90, 30s, 5m, 1h)"
        )
    amount, unit = match.groups()
    try:
        return timedelta(seconds=int(amount) * _DURATION_UNITS[unit])
    except (OverflowError, ValueError):  # ValueError: int() refuses over 4300 digits
        raise argparse.ArgumentTypeError(f"duration too long: {text[:20]}…") from None


def format_short_duration(delta: timedelta) -> str:
    """A duration as :func:`duration` reads it, in the largest unit that keeps it whole:
    ``5m``, ``90s``, ``1h``, ``0s``. Whole seconds (a fraction is dropped)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _non_negative(text: str, convert: Callable[[str], _N], what: str, rule: str) -> _N:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {what}: {text}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{rule}: {text}")
    return value


def non_negative_int(text: str) -> int:
    return _non_negative(text, int, "whole number", "must not be negative")


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def non_negative_float(text: str) -> float:
    return _non_negative(text, float, "number", "must be a finite number, not negative")


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def port(text: str) -> int:
    """A TCP port; 0 picks a free one."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text}")
    return value


def http_status(text: str) -> int:
    value = positive_int(text)
    if not 100 <= value <= 599:
        raise argparse.ArgumentTypeError(f"not an HTTP status: {text}")
    return value


def credentials_id(text: str) -> str:
    """The ID in ``/v2/credentials/<ID>``."""
    if _CREDENTIALS_ID.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            "use 1 to 128 letters, digits, '.', '_', '~' or '-' (it goes in the URL path)"
        )
    return text


def allowed_host(text: str) -> str:
    """A host name or address, without a port, as ``Host`` headers are compared."""
    from taskcreds.local._answers import normalize_host

    try:
        return normalize_host(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a host name or IP address: {text!r} (give the name alone, without a port)"
        ) from None


def time_bound(text: str) -> datetime:
    """RFC 3339 or an age (``30m``, ``2h``, ``1d``) before now."""
    from taskcreds.audit import parse_time_bound

    try:
        return parse_time_bound(text, datetime.now(timezone.utc))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
