"""The ``taskcreds`` command line: ``main(argv) -> exit code``.

Results go to stdout and every warning or log line to stderr, so ``--json`` output always parses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from taskcreds._version import __version__

__all__ = ["main"]

EXIT_OK = 0
EXIT_USAGE = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskcreds",
        description="Task-role credentials inside ECS tasks and EKS pods.",
    )
    parser.add_argument("--version", action="version", version=f"taskcreds {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run the whole story against a local S3 + STS and a local credentials endpoint",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors; ours is 1
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    if args.command == "demo":
        print(
            "taskcreds demo arrives with the local emulator (S3 + STS + credentials endpoint);"
            " for now, `make test` runs every check.",
            file=sys.stderr,
        )
        return EXIT_OK
    parser.print_help(sys.stderr)
    return EXIT_USAGE
