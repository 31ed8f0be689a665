"""``taskcreds health``: exit 0 while this container's credentials stay valid for the margin.

Made for a container health check run every 30 s: one fetch with a short deadline, no cache, and
the imports of ``show`` (requests, never boto3). Exit 6 when the set the endpoint serves is
expired or expires within ``--min-remaining``; a fetch that fails exits with its error's code
(2 configuration, 3 unreachable, 4 HTTP error incl. 429, 5 malformed), as every command does.
Never prints a secret: the access key ID is masked as ``show`` masks it.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta
from typing import Any

from taskcreds._time import utc_now
from taskcreds.cli._common import EXIT_OK, Output, error_document, exit_code_for, fetch_once
from taskcreds.cli._inspect import describe, ensure_unexpired, format_duration
from taskcreds.cli._options import add_timeout, duration, format_short_duration
from taskcreds.credentials import Credentials, format_timestamp
from taskcreds.endpoint import resolve_endpoint
from taskcreds.errors import CredentialsExpiredError

EXAMPLE = "python -m taskcreds health --min-remaining 5m"

#: ``--min-remaining``'s default. Below the SDK's own refresh lead (botocore's and taskcreds'
#: mandatory window is 10 minutes, the advisory one 15): a set with less left than that should
#: already have been replaced, so an app whose refreshes work never fails this check.
DEFAULT_MIN_REMAINING = timedelta(minutes=5)
#: No set lives longer: an IAM role's maximum session duration is 12 hours. A longer margin
#: would fail every check, so it is refused as a usage error.
MAX_MIN_REMAINING = timedelta(hours=12)
#: ``--timeout``'s default, shorter than the other commands' 5 s: the agent answers on the
#: host in milliseconds, and the interpreter's start plus this deadline must stay inside the
#: health check's own timeout (ECS's default is 5 s). Retries of a brief 503 still fit in it.
DEFAULT_HEALTH_TIMEOUT = 3.0

#: The fields of the ``--json`` document taken from what ``show`` reports (no secret among them).
_FACTS = ("expires_in_seconds", "expires_in", "expiration", "role_arn", "access_key_id")


def min_remaining(text: str) -> timedelta:
    """``--min-remaining``: a :func:`~taskcreds.cli._options.duration` of at most 12 hours."""
    margin = duration(text)
    if margin > MAX_MIN_REMAINING:
        raise argparse.ArgumentTypeError(
            f"{text} is longer than any credentials live (at most "
            f"{format_short_duration(MAX_MIN_REMAINING)}): every check would fail"
        )
    return margin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-remaining",
        type=min_remaining,
        default=DEFAULT_MIN_REMAINING,
        metavar="DURATION",
        help="exit 6 unless the credentials stay valid this long: 90 (seconds), 30s, 5m, 1h "
        f"(default {format_short_duration(DEFAULT_MIN_REMAINING)})",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing; exit code only (for HEALTHCHECK)"
    )
    add_timeout(parser, default=DEFAULT_HEALTH_TIMEOUT)


def ensure_remaining(credentials: Credentials, now: datetime, margin: timedelta) -> None:
    """Raise :class:`CredentialsExpiredError` unless ``credentials`` are valid for ``margin``
    after ``now``: expired (as :func:`ensure_unexpired` says it), or expiring within it."""
    ensure_unexpired(credentials, now)
    left = credentials.time_left(now)
    if left < margin:
        raise CredentialsExpiredError(
            f"the credentials expire in {format_duration(left)}, within the "
            f"{format_short_duration(margin)} margin ({format_timestamp(credentials.expiration)})",
            hint="the agent replaces a set well before it expires: is it stuck, or the task "
            "stopping? Keep --min-remaining below the SDK's refresh lead of 10 minutes",
        )


def run(args: argparse.Namespace, output: Output) -> int:
    margin: timedelta = args.min_remaining
    endpoint = resolve_endpoint(os.environ)
    result = fetch_once(args.timeout, endpoint=endpoint)
    now = utc_now()
    shown = describe(endpoint, result, now)
    facts: dict[str, Any] = {
        **{key: shown[key] for key in _FACTS},
        "min_remaining_seconds": int(margin.total_seconds()),
    }
    try:
        ensure_remaining(result.credentials, now, margin)
    except CredentialsExpiredError as error:
        if not output.json_mode:
            raise  # shown as every error is: the reason and its hint, on stderr
        code = exit_code_for(error)
        output.document({"ok": False, "exit_code": code, **facts, "error": error_document(error)})
        return code
    if output.json_mode:
        output.document({"ok": True, **facts})
    else:
        output.line(
            f"ok: credentials valid for {shown['expires_in']} "
            f"(margin {format_short_duration(margin)})"
        )
    return EXIT_OK
