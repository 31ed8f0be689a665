"""``taskcreds exec -- CMD ...``: run a command whose processes all share one credentials cache.

Starts the broker in this process, makes the first upstream fetch (if it fails, the command is
never started and the exit code is the error's, per the CLI table), then runs CMD as a child
with the environment rewritten: ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` and
``AWS_CONTAINER_AUTHORIZATION_TOKEN`` removed, ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` set to the broker. SIGTERM, SIGINT and SIGHUP are
forwarded to the child (SIGINT only when it did not come from the terminal, which sends it to
the child itself); the exit status is the child's, 128+N when a signal N ended it.

Exit codes: the child's; 1 usage (no command); 2 configuration; 3 upstream unreachable; 4
upstream HTTP error (incl. 429); 5 malformed response; 6 credentials expired; 126 the command
cannot be run; 127 the command was not found.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from types import FrameType

from taskcreds.cli._common import EXIT_USAGE, Output
from taskcreds.cli.broker import add_listen_arguments

NAME = "exec"
HELP = "run a command with every process of it sharing one credentials broker"
EXAMPLE = "python -m taskcreds exec -- gunicorn app:app -w 8"

EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser)
    parser.add_argument(
        "child_argv",
        nargs=argparse.REMAINDER,
        metavar="-- CMD ...",
        help="the command to run",
    )


def run(args: argparse.Namespace, output: Output) -> int:
    command = list(args.child_argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        output.error("no command to run", "python -m taskcreds exec -- CMD [ARG ...]")
        return EXIT_USAGE
    from taskcreds.broker import Broker

    host, port = args.listen
    broker = Broker(
        host=host, port=port, allow_non_loopback=args.allow_non_loopback, token_dir=args.token_dir
    )
    broker.start()  # a failed first fetch raises: the command is never started
    try:
        return run_child(command, broker.client_environment(os.environ), output)
    finally:
        broker.close()


def _from_terminal() -> bool:
    """Whether this process is in the foreground of a terminal: a SIGINT then came from it (and
    reached the child, which is in the same process group, already)."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            if stream is not None and os.isatty(stream.fileno()):
                return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError):
            continue
    return False


def run_child(command: list[str], env: dict[str, str], output: Output) -> int:
    """Run ``command`` with ``env``, forwarding signals; the exit status as a shell reports it."""
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if child is None:
            pending.append(signum)
            return
        if signum == signal.SIGINT and _from_terminal():
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        try:
            child = subprocess.Popen(command, env=env)  # noqa: S603 - running it is the point
        except FileNotFoundError:
            output.error(f"command not found: {command[0]}")
            return EXIT_NOT_FOUND
        except PermissionError as exc:
            output.error(f"cannot run {command[0]}: {exc.strerror or exc}")
            return EXIT_CANNOT_RUN
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code
