"""``taskcreds demo``: placeholder until the local S3 + STS emulator lands."""

from __future__ import annotations

import argparse
import sys

from taskcreds.cli._common import EXIT_OK, Output

EXAMPLE = "python -m taskcreds demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options yet."""


def run(args: argparse.Namespace, output: Output) -> int:
    print(
        "taskcreds demo arrives with the local emulator (S3 + STS + credentials endpoint);"
        " for now, `make test` runs every check.",
        file=sys.stderr,
    )
    return EXIT_OK
