"""``taskcreds doctor``: walk the chain step by step and stop at the first failure.

environment → endpoint allowed → (with a token) authorization token → TCP connect → HTTP →
response shape → expiry and clock → (``--sts`` or ``--bucket``) region → (``--sts``) STS
GetCallerIdentity → (``--bucket``) a write probe. Each step says what it saw; a failed one says
the likely cause and the fix. Never prints a secret.

The write probe puts ``PREFIX.taskcreds-doctor-<32 hex digits>`` with ``If-None-Match: *`` and
then deletes it; a least-privilege role may not ``s3:DeleteObject``, and then the object stays at
that key (a warning names it, the check still passes).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict

from taskcreds import environment as env
from taskcreds.cli._common import EXIT_OK, Output
from taskcreds.cli._doctor_aws import PROBE_NAME, AwsChecks
from taskcreds.cli._doctor_steps import EndpointChecks, Step, Stop
from taskcreds.cli._options import add_timeout
from taskcreds.upload.keys import normalize_prefix

EXAMPLE = "python -m taskcreds doctor --sts --bucket my-app-bucket --prefix uploads/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sts", action="store_true", help="also call STS GetCallerIdentity with the credentials"
    )
    parser.add_argument(
        "--bucket",
        help=f"also probe writing to this bucket: puts PREFIX{PROBE_NAME}<32 hex digits> "
        "with If-None-Match: * (the step prints the key), then deletes it if the role may "
        "s3:DeleteObject; a least-privilege role may not, and the object stays at that key "
        "(a warning says so)",
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help="key prefix for the write probe (default: TASKCREDS_PREFIX or none)",
    )
    add_timeout(parser)


def run(args: argparse.Namespace, output: Output) -> int:
    doctor = _Doctor(os.environ, args.timeout)
    code: int = EXIT_OK
    try:
        endpoint = doctor.check_environment()
        doctor.check_endpoint_allowed()
        doctor.check_token()
        doctor.check_tcp(endpoint)
        result = doctor.check_http(endpoint)
        doctor.check_shape(result)
        doctor.check_expiry(result)
        bucket = args.bucket
        region: str | None = None
        if args.sts or bucket:
            region = doctor.check_region()
        if args.sts:
            doctor.check_sts(result.credentials, region)
        if bucket:
            prefix = args.prefix if args.prefix is not None else os.environ.get(env.PREFIX, "")
            # The same prefix the uploader and `policy` use: "app" means "app/".
            doctor.check_write(
                result.credentials, bucket, normalize_prefix(prefix, bucket=bucket), region
            )
    except Stop as stop:
        code = stop.code
    _report(doctor.steps, code, output)
    return code


def _report(steps: list[Step], code: int, output: Output) -> None:
    if output.json_mode:
        output.document(
            {"ok": code == EXIT_OK, "exit_code": code, "steps": [asdict(s) for s in steps]}
        )
        return
    width = max(len(step.name) for step in steps)
    for step in steps:
        output.line(f"{'✓' if step.ok else '✗'} {step.name:<{width}}  {step.detail}")
        for warning in step.warnings:
            output.line(f"    ! {warning}")
        if step.cause:
            output.line(f"    cause: {step.cause}")
        if step.fix:
            output.line(f"    fix:   {step.fix}")
    if code == EXIT_OK:
        output.line("all checks passed")


class _Doctor(EndpointChecks, AwsChecks):
    """Every step, in the order :func:`run` calls them; they share one list of steps."""
