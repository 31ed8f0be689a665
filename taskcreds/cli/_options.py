"""Options and argument types shared by the commands: each defined once.

An argument type raises :class:`argparse.ArgumentTypeError`; the CLI's parser turns that into a
:class:`~taskcreds.cli._common.UsageError` (exit code 1), shown as argparse shows it.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

__all__ = [
    "DEFAULT_TIMEOUT",
    "add_timeout",
    "allowed_host",
    "credentials_id",
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


def add_timeout(parser: argparse.ArgumentParser) -> None:
    """``--timeout SECONDS``: the deadline of the whole fetch (``show``, ``doctor``, ``export``)."""
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds for the whole fetch (default {DEFAULT_TIMEOUT:g})",
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
