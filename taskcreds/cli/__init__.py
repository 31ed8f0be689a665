"""The ``taskcreds`` command line: ``main(argv) -> exit code``.

:data:`COMMANDS` is the one table of commands (name, module, summary): ``--help`` and dispatch
both come from it. Each command lives in its own module with ``EXAMPLE``,
``add_arguments(parser)`` and ``run(args, output) -> int``; shared options are in
:mod:`taskcreds.cli._options`, exit codes, errors and output in :mod:`taskcreds.cli._common`.
Results go to stdout and every warning or log line to stderr, so ``--json`` output always
parses.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, NamedTuple, NoReturn

from taskcreds._version import __version__
from taskcreds.cli._common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Output,
    UsageError,
    discard_stdout,
    exit_codes_help,
    printable,
)
from taskcreds.errors import InternalError, TaskCredsError

__all__ = ["COMMANDS", "Command", "main"]

_log = logging.getLogger(__name__)
#: Where to report a bug (the hint of an internal error).
REPORT_TO = "the taskcreds issue tracker"
#: How much of an unexpected exception's message is shown (it is not ours, so keep it short).
_MAX_INTERNAL_MESSAGE = 200


class Command(NamedTuple):
    """One row of :data:`COMMANDS`: help and dispatch both come from it."""

    name: str
    #: Imported only when this command runs, so `show` never pays for what `upload` imports.
    module: str
    summary: str


#: Every command, in the order ``--help`` lists them. A command's module has ``EXAMPLE``,
#: ``add_arguments(parser)`` and ``run(args, output) -> int``.
COMMANDS: tuple[Command, ...] = (
    Command(
        "exec",
        "taskcreds.cli.exec_",
        "run a command whose processes all share one credentials broker (one upstream fetch)",
    ),
    Command(
        "broker",
        "taskcreds.cli.broker",
        "serve the task role's credentials to every process of the task over loopback",
    ),
    Command(
        "show",
        "taskcreds.cli.show",
        "show which role and credentials this container gets (never the secrets)",
    ),
    Command(
        "doctor",
        "taskcreds.cli.doctor",
        "check each step from the environment to the credentials, and say what to fix",
    ),
    Command(
        "export",
        "taskcreds.cli.export",
        "print the credentials for a shell, credential_process or a program (secrets!)",
    ),
    Command(
        "health",
        "taskcreds.cli.health",
        "exit 0 while the credentials stay valid for a margin: a container health check",
    ),
    Command(
        "serve-local",
        "taskcreds.cli.serve_local",
        "run a local credentials endpoint that answers as the ECS agent does",
    ),
    Command(
        "demo",
        "taskcreds.cli.demo",
        "run the whole story against a local S3 + STS and a local credentials endpoint",
    ),
    Command(
        "upload",
        "taskcreds.cli.upload",
        "upload files and directories to the app's own bucket and prefix",
    ),
    Command(
        "audit",
        "taskcreds.cli.audit",
        "summarise the ECS agent's credential audit log: who fetched which role, how often",
    ),
    Command(
        "policy",
        "taskcreds.cli.policy",
        "print the least-privilege task role policy, trust policy and task definition part",
    ),
)
_BY_NAME = {command.name: command for command in COMMANDS}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, prog=self.prog, usage=self.format_usage())


def _load(name: str) -> ModuleType:
    return importlib.import_module(_BY_NAME[name].module)


def _parser(command: str | None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="taskcreds",
        description="Task-role credentials inside ECS tasks and EKS pods.",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"taskcreds {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, _, summary in COMMANDS:
        if name != command:  # only the chosen command's module is imported
            commands.add_parser(name, help=summary, description=summary)
            continue
        module = _load(name)
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"example:\n  {module.EXAMPLE}\n\n{exit_codes_help()}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--json", action="store_true", help="print one JSON document")
        sub.add_argument(
            "-v", "--verbose", action="count", default=0, help="log to stderr (-v info, -vv debug)"
        )
        module.add_arguments(sub)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if arg in _BY_NAME), None)


class _EscapingFormatter(logging.Formatter):
    """Log lines as :func:`printable` shows them: a message may quote what an endpoint, S3 or a
    file said. A traceback keeps its lines, each escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return "\n".join(printable(line) for line in super().formatException(ei).split("\n"))

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(printable(line) for line in super().formatStack(stack_info).split("\n"))


@contextlib.contextmanager
def _logging_to_stderr(verbosity: int) -> Iterator[None]:
    """Send taskcreds' log lines to stderr for one command, then put the logger back as it was.

    ``verbosity`` -1 (``--quiet``) logs nothing at all."""
    levels = {-1: logging.CRITICAL + 1, 0: logging.WARNING, 1: logging.INFO}
    level = levels.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("taskcreds")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _internal_error(exc: Exception, output: Output) -> int:
    """Report an exception that is not a :class:`TaskCredsError`: a bug, so no traceback on the
    terminal but one line naming it, the traceback in the DEBUG log (``-vv``), and exit 9.

    Only ``str(exc)``, cut short and escaped, is shown: the exception is not ours, so its
    arguments are not known to be safe to print.
    """
    _log.debug("internal error", exc_info=exc)
    name = type(exc).__name__
    message = str(exc)
    if len(message) > _MAX_INTERNAL_MESSAGE:
        message = message[:_MAX_INTERNAL_MESSAGE] + "…"
    if output.quiet:
        return EXIT_INTERNAL
    hint = f"a bug in taskcreds: re-run with -vv for the traceback, and report it at {REPORT_TO}"
    if output.json_mode:
        # The exception's own type is what the document names: InternalError only carries it.
        error = {**InternalError(message, hint=hint).to_dict(), "type": name}
        output.document({"ok": False, "exit_code": EXIT_INTERNAL, "error": error})
    output.error(f"{name}: {message}" if message else name, hint, label="taskcreds: internal error")
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = _parser(_chosen_command(argv))
        args = parser.parse_args(argv)
    except UsageError as error:  # shown as argparse shows it; --json is not known to be parsed
        return Output().fail(error)
    except SystemExit as exc:  # --help and --version
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 (an argparse type function or a module that breaks)
        with _logging_to_stderr(2 if "-vv" in argv else 0):
            return _internal_error(exc, Output(json_mode="--json" in argv))
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    output = Output(json_mode=args.json, quiet=getattr(args, "quiet", False))
    with _logging_to_stderr(-1 if output.quiet else args.verbose):
        try:
            module = _load(args.command)
            code: int = module.run(args, output)
        except TaskCredsError as error:
            return output.fail(error)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (`taskcreds policy | head`): stop quietly, as Unix tools do.
            discard_stdout(output)
            return EXIT_BROKEN_PIPE
        except Exception as exc:  # noqa: BLE001 (a bug: one line, not a traceback; -vv logs it)
            return _internal_error(exc, output)
    return code
