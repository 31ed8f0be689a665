"""What every command shares: exit codes, output to stdout/stderr, and turning errors into both."""

from __future__ import annotations

import enum
import io
import json
import os
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from taskcreds.errors import (
    AccessDeniedError,
    ConfigError,
    CredentialsExpiredError,
    EndpointHTTPError,
    EndpointUnreachableError,
    InternalError,
    MalformedResponseError,
    TaskCredsError,
    UploadError,
)

if TYPE_CHECKING:
    from taskcreds.endpoint import Endpoint
    from taskcreds.fetch import FetchResult, RetryObserver

__all__ = [
    "EXIT_ACCESS_DENIED",
    "EXIT_BROKEN_PIPE",
    "EXIT_CONFIG",
    "EXIT_ENDPOINT_HTTP",
    "EXIT_EXPIRED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_UPLOAD",
    "EXIT_USAGE",
    "ExitCode",
    "Output",
    "UsageError",
    "discard_stdout",
    "error_document",
    "exit_code_for",
    "exit_codes_help",
    "fetch_once",
    "printable",
]


class ExitCode(enum.IntEnum):
    """Every exit code of every command, with what it means: the one definition, rendered into
    each ``--help`` (:func:`exit_codes_help`) and listed in docs/cli.md (a test compares them)."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "ok"
    USAGE = 1, "usage"
    CONFIG = 2, "configuration (not in a container, unsupported host, token)"
    UNREACHABLE = 3, "endpoint unreachable"
    ENDPOINT_HTTP = 4, "endpoint HTTP error (incl. 429)"
    MALFORMED = 5, "malformed response"
    EXPIRED = 6, "credentials expired"
    ACCESS_DENIED = 7, "access denied"
    UPLOAD = 8, "other upload failure"
    INTERNAL = 9, "internal error (a bug in taskcreds: please report it)"
    INTERRUPTED = 130, "interrupted"
    BROKEN_PIPE = 141, "the reader of stdout went away (`taskcreds ... | head`)"


EXIT_OK = ExitCode.OK
EXIT_USAGE = ExitCode.USAGE
EXIT_CONFIG = ExitCode.CONFIG
EXIT_UNREACHABLE = ExitCode.UNREACHABLE
EXIT_ENDPOINT_HTTP = ExitCode.ENDPOINT_HTTP
EXIT_MALFORMED = ExitCode.MALFORMED
EXIT_EXPIRED = ExitCode.EXPIRED
EXIT_ACCESS_DENIED = ExitCode.ACCESS_DENIED
EXIT_UPLOAD = ExitCode.UPLOAD
EXIT_INTERNAL = ExitCode.INTERNAL  # an exception that is not a TaskCredsError
EXIT_INTERRUPTED = ExitCode.INTERRUPTED
EXIT_BROKEN_PIPE = ExitCode.BROKEN_PIPE


def exit_codes_help() -> str:
    """The ``exit codes:`` block of every ``--help`` epilog, from :class:`ExitCode`."""
    lines = ["exit codes:"]
    lines += [f"  {code.value:>3}  {code.meaning}" for code in ExitCode]
    return "\n".join(lines)


class UsageError(TaskCredsError):
    """The command line asks for something impossible: exit code 1.

    Raised by argparse (through the CLI's parser, with ``usage`` and ``prog`` set: shown as
    argparse shows it, usage then ``PROG: error: MESSAGE``) or by a command that finds its
    arguments wrong after parsing (shown as every other error, ``taskcreds: error: MESSAGE``
    and its hint, or the error document with ``--json``).
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        prog: str | None = None,
        usage: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self._prog = prog
        self._usage = usage


_EXIT_CODES: tuple[tuple[type[TaskCredsError], ExitCode], ...] = (
    (UsageError, EXIT_USAGE),
    (ConfigError, EXIT_CONFIG),
    (EndpointUnreachableError, EXIT_UNREACHABLE),
    (EndpointHTTPError, EXIT_ENDPOINT_HTTP),
    (MalformedResponseError, EXIT_MALFORMED),
    (CredentialsExpiredError, EXIT_EXPIRED),
    (AccessDeniedError, EXIT_ACCESS_DENIED),
    (UploadError, EXIT_UPLOAD),
    (InternalError, EXIT_INTERNAL),
)


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: every non-printable character escaped.

    C0 and C1 control characters, DEL, format characters (U+202E and the other bidi overrides,
    zero-width characters), line and paragraph separators, surrogates (undecodable bytes in file
    names), private-use and unassigned code points become ``\\xNN``, ``\\uNNNN`` or
    ``\\UNNNNNNNN``, as in ``repr()``. Printable text, accented letters, ``…`` and spaces (also
    U+00A0 and the other space separators) are left as they are. The result holds only
    printable characters and spaces, so ``printable(printable(x)) == printable(x)``.
    """
    if text.isprintable():
        return text
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if char.isprintable() or unicodedata.category(char) == "Zs":
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def exit_code_for(error: TaskCredsError) -> ExitCode:
    """The documented exit code for an error (see docs/cli.md)."""
    for error_type, code in _EXIT_CODES:
        if isinstance(error, error_type):
            return code
    return EXIT_USAGE


@dataclass
class Output:
    """Results to stdout, everything else to stderr; ``--json`` results are one JSON document.

    Text lines, warnings and errors go through :func:`printable`: they may hold file names, log
    lines, user agents and messages from the endpoint or S3, none of which may reach the terminal
    as control characters. One call prints one line: a text with a newline in it is escaped.
    JSON needs nothing more, as :mod:`json` escapes every control character itself.
    """

    json_mode: bool = False
    quiet: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def line(self, text: str = "") -> None:
        if not self.quiet and not self.json_mode:
            print(printable(text), file=self.out)

    def document(self, value: Mapping[str, Any]) -> None:
        if not self.quiet:
            json.dump(value, self.out, indent=2, default=str)
            self.out.write("\n")

    def warn(self, text: str) -> None:
        if not self.quiet:
            print(f"warning: {printable(text)}", file=self.err)

    def fail(self, error: TaskCredsError) -> ExitCode:
        """Report ``error`` (every error the CLI shows comes here) and return its exit code.

        ``--json``: the error document on stdout. Text: ``taskcreds: error: MESSAGE`` and the
        hint on stderr; a parse error (a :class:`UsageError` with a usage) as argparse shows it.
        """
        code = exit_code_for(error)
        if self.quiet:
            return code
        if self.json_mode:
            self.document({"ok": False, "exit_code": code, "error": error_document(error)})
        elif isinstance(error, UsageError) and error._usage is not None:
            self.err.write(error._usage)
            self.error(error.message, error.hint, label=f"{error._prog or 'taskcreds'}: error")
        else:
            self.error(error.message, error.hint)
        return code

    def error(
        self, message: str, hint: str | None = None, *, label: str = "taskcreds: error"
    ) -> None:
        """``LABEL: MESSAGE`` and ``  hint: HINT`` on stderr, escaped (callers check ``quiet``)."""
        print(f"{label}: {printable(message)}", file=self.err)
        if hint:
            print(f"  hint: {printable(hint)}", file=self.err)


def error_document(error: TaskCredsError) -> dict[str, Any]:
    """The JSON form of an error (:meth:`TaskCredsError.to_dict`)."""
    return error.to_dict()


def discard_stdout(output: Output) -> None:
    """The reader of stdout went away (``taskcreds policy | head``): point stdout at /dev/null
    so the interpreter's final flush does not fail again. The one broken-pipe handler."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, output.out.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def fetch_once(
    timeout: float,
    *,
    endpoint: Endpoint | None = None,
    environ: Mapping[str, str] | None = None,
    on_retry: RetryObserver | None = None,
) -> FetchResult:
    """One fetch, no cache: what ``show``, ``export`` and ``doctor`` print is what the endpoint
    answers now. ``endpoint`` defaults to the one ``environ`` (default ``os.environ``) names."""
    from taskcreds.endpoint import resolve_endpoint
    from taskcreds.fetch import Fetcher

    if endpoint is None:
        endpoint = resolve_endpoint(os.environ if environ is None else environ)
    fetcher = Fetcher(deadline=timeout, on_retry=on_retry)
    try:
        return fetcher.fetch(endpoint)
    finally:
        fetcher.close()
