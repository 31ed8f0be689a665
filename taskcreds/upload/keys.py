"""The key policy: which object keys the uploader will write, and why. Pure logic, no I/O.

Every key the uploader writes is ``prefix + relative`` and must stay inside the app's prefix.
S3 itself treats a key as an opaque string, so ``app/../other-app/x`` is just an odd name to S3.
But the tools that later read the bucket are not so innocent: consoles, the aws CLI, ``s3 sync``,
s3fs/mountpoint and download scripts turn keys into paths, and a consumer that normalises paths
puts ``app/../other-app/x`` into ``other-app/``, and ``app/a\\..\\..\\b`` (backslashes are
separators on Windows) somewhere else again. So a key, after NFC normalisation, is refused
(:class:`~taskcreds.errors.KeyOutsidePrefixError`) when it:

- is empty, or starts with ``/`` (an absolute path to path-based tools);
- contains a backslash;
- contains a control character: C0 (U+0000-U+001F), DEL, C1 (U+0080-U+009F), the line and
  paragraph separators U+2028/U+2029, or the byte-order mark U+FEFF. They break log lines and
  listings, and hide what a key really is;
- contains a lone surrogate (a file name that was not valid UTF-8); S3 keys are UTF-8;
- has a segment that is empty (``a//b``, a trailing ``/``), ``.`` or ``..``. Segments merely
  containing dots (``..hidden``, ``a..b``) are fine;
- is longer than 1,024 bytes in UTF-8 with the prefix included, S3's own limit.

NFC normalisation makes one visible name one key: ``"e\\u0301"`` (e + combining acute, as macOS
writes file names) and ``"\\u00e9"`` both become ``"\\u00e9"``.

A prefix follows the same rules, except that one trailing ``/`` is allowed, and the empty prefix
means the whole bucket. :func:`normalize_prefix` appends the ``/`` when missing, so prefix ``app``
and key ``x`` give ``app/x``, never ``appx`` (which would be outside ``app/``).

Error messages show keys through :func:`repr`, cut to about 80 characters, so a hostile key can
neither flood a log nor smuggle control characters into a terminal.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import NamedTuple

from taskcreds.errors import KeyOutsidePrefixError

__all__ = [
    "MAX_KEY_BYTES",
    "join_key",
    "normalize_prefix",
    "relative_key_for_parts",
    "relative_key_for_path",
]

#: S3's limit on the length of a key, in bytes of UTF-8.
MAX_KEY_BYTES = 1024

_SHOW_CHARS = 80
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CHARACTER_KINDS = {
    "\u2028": "line separator",
    "\u2029": "paragraph separator",
    "\ufeff": "byte-order mark",
}
_SEGMENT_HINT = "use '/' only between non-empty names, and no '.' or '..' segments"


class _Violation(NamedTuple):
    reason: str
    hint: str


def _show(text: str) -> str:
    """``repr(text)``, cut to about 80 characters: safe to put in a message or a log line."""
    shown = repr(text)
    return shown if len(shown) <= _SHOW_CHARS else shown[: _SHOW_CHARS - 1] + "…"


def _clip(text: str) -> str:
    """``text`` itself, cut to about 80 characters, for an error's ``key`` attribute."""
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 1] + "…"


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _char_violation(text: str) -> _Violation | None:
    if "\\" in text:
        return _Violation(
            "it contains a backslash, a path separator on Windows",
            "use '/' to separate the parts of a key",
        )
    control = _CONTROL.search(text)
    if control:
        kind = _CHARACTER_KINDS.get(control.group(), "control character")
        return _Violation(
            f"it contains the {kind} U+{ord(control.group()):04X}",
            "remove control, line-separator and byte-order-mark characters from the name",
        )
    surrogate = _SURROGATE.search(text)
    if surrogate:
        return _Violation(
            f"it contains the lone surrogate U+{ord(surrogate.group()):04X} (a name not in UTF-8?)",
            "rename the file so that its name is valid UTF-8",
        )
    return None


def _segment_violation(text: str) -> _Violation | None:
    for segment in text.split("/"):
        if segment == "":
            return _Violation("it has an empty segment ('//' or a trailing '/')", _SEGMENT_HINT)
        if segment in {".", ".."}:
            return _Violation(
                f"it has a {segment!r} segment, which path-based tools resolve out of place",
                _SEGMENT_HINT,
            )
    return None


def _violation(text: str) -> _Violation | None:
    """What is wrong with ``text`` as a (relative) key, or None; the length is checked apart."""
    if text == "":
        return _Violation("it is empty", "give a non-empty key such as 'reports/today.csv'")
    if text.startswith("/"):
        return _Violation(
            "it starts with '/'", "give the key relative to the prefix, without a leading '/'"
        )
    return _char_violation(text) or _segment_violation(text)


def _too_long(key: str) -> _Violation | None:
    size = len(key.encode("utf-8"))
    if size <= MAX_KEY_BYTES:
        return None
    return _Violation(
        f"it is {size} bytes in UTF-8, over S3's limit of {MAX_KEY_BYTES} (the prefix counts)",
        "use a shorter name or a shorter prefix",
    )


def _reject(what: str, text: str, problem: _Violation, bucket: str | None) -> KeyOutsidePrefixError:
    return KeyOutsidePrefixError(
        f"{what} {_show(text)} is not allowed: {problem.reason}",
        bucket=bucket,
        key=_clip(text),
        hint=problem.hint,
    )


def normalize_prefix(prefix: str, *, bucket: str | None = None) -> str:
    """The prefix NFC-normalised and ending in ``/``; ``""`` (the whole bucket) stays ``""``.

    Raises :class:`KeyOutsidePrefixError` if the prefix breaks the key rules (one trailing
    ``/`` is allowed) or leaves no room for a key within S3's 1,024 bytes.
    """
    prefix = _nfc(prefix)
    if prefix == "":
        return ""
    body = prefix[:-1] if prefix.endswith("/") and prefix != "/" else prefix
    problem = _violation(body)
    if problem is None and len(body.encode("utf-8")) + 1 >= MAX_KEY_BYTES:
        problem = _Violation(
            f"it leaves no room for a key within S3's limit of {MAX_KEY_BYTES} bytes",
            "use a shorter prefix",
        )
    if problem is not None:
        raise _reject("prefix", prefix, problem, bucket)
    return body + "/"


def join_key(prefix: str, relative: str, *, bucket: str | None = None) -> str:
    """``prefix + relative``, after NFC-normalising ``relative`` and checking it (see module doc).

    ``prefix`` must come from :func:`normalize_prefix`; anything else is a programming error
    and raises ``ValueError``. A bad key raises :class:`KeyOutsidePrefixError`, whose ``key``
    is the would-be full key (cut short) and whose message says which rule failed.
    """
    if prefix and not prefix.endswith("/"):
        raise ValueError(f"prefix {_show(prefix)} is not normalised: pass it to normalize_prefix()")
    relative = _nfc(relative)
    problem = _violation(relative) or _too_long(prefix + relative)
    if problem is not None:
        raise _reject("key", prefix + relative, problem, bucket)
    return prefix + relative


def _path_violation(root: Path, path: Path) -> _Violation | None:
    """Why ``path`` is not a file under ``root``, as written or with symlinks resolved."""
    if not path.absolute().is_relative_to(root.absolute()):
        return _Violation(f"it is not under {_show(str(root))}", "upload files inside the root")
    if not path.resolve().is_relative_to(root.resolve()):
        return _Violation(
            f"it resolves outside {_show(str(root))} (a symlink leading out?)",
            "copy the file into the directory instead of linking to it",
        )
    if path.absolute() == root.absolute():
        return _Violation("it is the root itself, not a file under it", "name a file under root")
    return None


def relative_key_for_path(root: Path, path: Path) -> str:
    """The key, relative to the prefix, for ``path`` inside the directory ``root`` being uploaded.

    The key is ``path`` relative to ``root`` with ``/`` separators, NFC-normalised. ``path``
    must lie under ``root`` both as written and once symlinks are resolved: a symlink that
    leads out of ``root`` raises :class:`KeyOutsidePrefixError`, as does a name the key rules
    refuse. Only the file system is read (to resolve symlinks); nothing is written.
    """
    outside = _path_violation(root, path)
    if outside is not None:
        raise _reject("path", str(path), outside, None)
    return relative_key_for_parts(path.absolute().relative_to(root.absolute()).parts)


def relative_key_for_parts(parts: tuple[str, ...]) -> str:
    """The key, relative to the prefix, for the file at ``parts`` below a root that was walked
    without following symlinks (so nothing needs resolving): ``/``-joined, NFC-normalised, and
    refused as :func:`relative_key_for_path` refuses it."""
    relative = _nfc("/".join(parts))  # names from a listing: no '/', no '.' or '..' parts
    problem = _violation(relative) or _too_long(relative)
    if problem is not None:
        raise _reject("key", relative, problem, None)
    return relative
