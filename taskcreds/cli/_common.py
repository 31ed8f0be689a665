"""What every command shares: exit codes, output to stdout/stderr, and turning errors into both."""

from __future__ import annotations

import argparse
import json
import math
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

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

__all__ = [
    "EXIT_ACCESS_DENIED",
    "EXIT_CONFIG",
    "EXIT_ENDPOINT_HTTP",
    "EXIT_EXPIRED",
    "EXIT_INTERNAL",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_UPLOAD",
    "EXIT_USAGE",
    "Output",
    "exit_code_for",
    "printable",
]

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_CONFIG = 2  # not in a container, unsupported host, token
EXIT_UNREACHABLE = 3
EXIT_ENDPOINT_HTTP = 4  # including 429
EXIT_MALFORMED = 5
EXIT_EXPIRED = 6
EXIT_ACCESS_DENIED = 7
EXIT_UPLOAD = 8
EXIT_INTERNAL = 9  # a bug in taskcreds: an exception that is not a TaskCredsError

_EXIT_CODES: tuple[tuple[type[TaskCredsError], int], ...] = (
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


def positive_seconds(text: str) -> float:
    """argparse type for ``--timeout``: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def exit_code_for(error: TaskCredsError) -> int:
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

    def fail(self, error: TaskCredsError) -> int:
        """Report ``error`` and return its exit code."""
        code = exit_code_for(error)
        if self.quiet:
            return code
        if self.json_mode:
            self.document({"ok": False, "exit_code": code, "error": error_document(error)})
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
