"""``taskcreds show``: which role and credentials this container gets. Never prints secrets.

Every warning is printed once: the endpoint's own (both container variables set) are shown with
the others, and their log record, which the library writes for programs, is held back.

Starts fast: imports requests but never boto3.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from datetime import datetime, timezone

from taskcreds.cli._common import EXIT_OK, Output, fetch_once
from taskcreds.cli._inspect import (
    credential_warnings,
    describe,
    ensure_unexpired,
    environment_warnings,
    resolve_for_report,
)
from taskcreds.cli._options import add_timeout

EXAMPLE = "python -m taskcreds show --json"

_LABELS = (
    ("source", "source"),
    ("endpoint", "endpoint"),
    ("token_source", "token from"),
    ("role_arn", "role"),
    ("account_id", "account"),
    ("access_key_id", "access key"),
    ("expiration", "expires"),
    ("expires_in", "time left"),
)


def _environ() -> Mapping[str, str]:
    """The environment ``show`` reads (a seam for tests that must not set the variables)."""
    return os.environ


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing; exit code only (for HEALTHCHECK)"
    )
    add_timeout(parser)


def run(args: argparse.Namespace, output: Output) -> int:
    environ = _environ()
    # Each endpoint warning is printed once, below (or put in the JSON): not logged as well.
    endpoint = resolve_for_report(environ)
    result = fetch_once(args.timeout, endpoint=endpoint)
    now = datetime.now(timezone.utc)
    ensure_unexpired(result.credentials, now)
    facts = describe(endpoint, result, now)
    warnings = environment_warnings(environ, endpoint) + credential_warnings(
        result.credentials, now, result.server_date
    )
    if output.json_mode:
        output.document({"ok": True, **facts, "warnings": warnings})
        return EXIT_OK
    width = max(len(label) for _, label in _LABELS)
    for key, label in _LABELS:
        value = facts[key]
        if key == "source":
            value = f"{value} ({facts['kind']})"
        if value is not None:
            output.line(f"{label:<{width}}  {value}")
    for warning in warnings:
        output.warn(warning)
    return EXIT_OK
