"""taskcreds.cli._common: escaping what the CLI prints, and the error lines of ``Output``."""

from __future__ import annotations

import io
import json
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from taskcreds.cli._common import EXIT_CONFIG, Output, printable
from taskcreds.errors import ConfigError

#: What must never reach a terminal: controls, format characters (bidi overrides, zero-width),
#: line/paragraph separators, surrogates, private-use and unassigned code points.
UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def unprintable(text: str) -> list[str]:
    return [char for char in text if unicodedata.category(char) in UNPRINTABLE]


# Any character, with the unprintable ones (surrogates included) drawn often.
ANY_CHARACTER = st.one_of(st.characters(), st.characters(categories=sorted(UNPRINTABLE)))


@given(st.text(alphabet=ANY_CHARACTER))
@example("\x1b]0;owned\x07\x1b[2J")
@example("report\u202etxt.exe")
@example("\udcff\ud800")
@example("a\u2028b\u2029c\ufeff\U000e0001\x7f\x85\x9b")
def test_printable_never_contains_a_control_character(text: str) -> None:
    escaped = printable(text)
    assert unprintable(escaped) == []
    escaped.encode("utf-8")  # no lone surrogate left: printing it cannot raise
    assert printable(escaped) == escaped


@given(st.text(alphabet=st.characters(exclude_categories=tuple(UNPRINTABLE))))
def test_printable_text_is_left_alone(text: str) -> None:
    assert printable(text) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab\\x09here"),
        ("new\nline\r", "new\\x0aline\\x0d"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("bad\udcffbyte", "bad\\udcffbyte"),
        ("café … naïve ✓ ×3 — Ünïcödé 日本", "café … naïve ✓ ×3 — Ünïcödé 日本"),
        ("no\xa0break", "no\xa0break"),
        ("back\\slash", "back\\slash"),
        ("", ""),
    ],
)
def test_printable_examples(text: str, shown: str) -> None:
    assert printable(text) == shown


def output(json_mode: bool = False) -> tuple[Output, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Output(json_mode=json_mode, out=out, err=err), out, err


def test_line_and_warn_escape() -> None:
    shown, out, err = output()
    shown.line("failed x\x1b[2J.csv: \u202egnp.exe")
    shown.warn("stopped reading a\x1b[31m.gz")
    assert out.getvalue() == "failed x\\x1b[2J.csv: \\u202egnp.exe\n"
    assert err.getvalue() == "warning: stopped reading a\\x1b[31m.gz\n"


def test_fail_escapes_message_and_hint() -> None:
    shown, out, err = output()
    error = ConfigError("bad \x1b]0;title\x07 value", hint="try \u202eagain\n")
    assert shown.fail(error) == EXIT_CONFIG
    assert out.getvalue() == ""
    assert err.getvalue() == (
        "taskcreds: error: bad \\x1b]0;title\\x07 value\n  hint: try \\u202eagain\\x0a\n"
    )


def test_fail_in_json_mode_keeps_the_text_and_json_escapes_it() -> None:
    shown, out, err = output(json_mode=True)
    shown.fail(ConfigError("bad \x1b value"))
    assert err.getvalue() == ""
    assert "\x1b" not in out.getvalue()
    assert json.loads(out.getvalue())["error"]["message"] == "bad \x1b value"
