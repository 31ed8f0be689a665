"""``taskcreds export``: the credentials for a shell, ``credential_process`` or a program.

The only command that prints secrets: that is its job.
"""

from __future__ import annotations

import argparse
import json
import shlex
from datetime import datetime, timezone

from taskcreds.cli._common import EXIT_OK, Output, fetch_once
from taskcreds.cli._inspect import ensure_unexpired
from taskcreds.cli._options import add_timeout
from taskcreds.credentials import Credentials, format_timestamp

EXAMPLE = 'eval "$(python -m taskcreds export --format env)"'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("env", "process", "json"),
        default="env",
        help="env: shell export lines; process: credential_process JSON; json: with role "
        "and account (default env)",
    )
    add_timeout(parser)


def run(args: argparse.Namespace, output: Output) -> int:
    credentials = fetch_once(args.timeout).credentials
    ensure_unexpired(credentials, datetime.now(timezone.utc))
    fmt = "json" if args.json else args.format
    text = {"env": as_env, "process": as_process, "json": as_json}[fmt](credentials)
    output.out.write(text)
    return EXIT_OK


def as_env(credentials: Credentials) -> str:
    values = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.token,
        "AWS_CREDENTIAL_EXPIRATION": format_timestamp(credentials.expiration),
    }
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def as_process(credentials: Credentials) -> str:
    """The ``credential_process`` document the AWS SDKs and CLI read."""
    document = {
        "Version": 1,
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.token,
        "Expiration": format_timestamp(credentials.expiration),
    }
    return json.dumps(document) + "\n"


def as_json(credentials: Credentials) -> str:
    document = {
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.token,
        "Expiration": format_timestamp(credentials.expiration),
        "RoleArn": credentials.role_arn,
        "AccountId": credentials.account_id,
    }
    return json.dumps(document, indent=2) + "\n"
