"""``--min-remaining``: the duration argument type, its short form, and the margin check of
``taskcreds health`` on an injected clock."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcreds.cli import _options as options
from taskcreds.cli.health import (
    DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_MIN_REMAINING,
    MAX_MIN_REMAINING,
    ensure_remaining,
    min_remaining,
)
from taskcreds.credentials import Credentials
from taskcreds.errors import CredentialsExpiredError
from taskcreds.provider import MANDATORY_WINDOW

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("0", 0),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("0m", 0),
        ("007m", 420),
        ("12h", 43200),
        ("100000h", 360_000_000),
    ],
)
def test_duration_accepts(text: str, seconds: int) -> None:
    assert options.duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "m",
        "5x",
        "5M",
        "5 m",
        " 5m",
        "5m ",
        "1.5h",
        "-5m",
        "+5m",
        "1h30m",
        "5min",
        "1d",
        "\u0663m",  # an Arabic-Indic digit: int() reads it, the option does not
        "5m\n",
    ],
)
def test_duration_refuses_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"not a duration: .*90, 30s, 5m, 1h"):
        options.duration(text)


def test_a_duration_too_long_for_timedelta_is_refused_without_echoing_it() -> None:
    for text in ("9" * 20 + "h", "9" * 5000):
        with pytest.raises(argparse.ArgumentTypeError, match="duration too long") as caught:
            options.duration(text)
        assert len(str(caught.value)) < 60


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (30, "30s"), (90, "90s"), (300, "5m"), (5400, "90m"), (3600, "1h"), (43200, "12h")],
)
def test_short_form(seconds: int, text: str) -> None:
    assert options.format_short_duration(timedelta(seconds=seconds)) == text


@given(st.integers(min_value=0, max_value=10**8))
def test_the_short_form_reads_back(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert options.duration(options.format_short_duration(delta)) == delta


def test_min_remaining_is_capped_at_the_longest_session() -> None:
    assert min_remaining("12h") == MAX_MIN_REMAINING == timedelta(hours=12)
    assert min_remaining("43200") == MAX_MIN_REMAINING
    for text in ("43201", "721m", "13h"):
        with pytest.raises(argparse.ArgumentTypeError, match="every check would fail"):
            min_remaining(text)
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        min_remaining("soon")


def test_the_defaults_fit_a_health_check() -> None:
    # The margin stays below the SDK's own refresh lead, so an app whose refreshes work never
    # fails the check; the deadline is shorter than the other commands' and ECS's 5 s timeout.
    assert DEFAULT_MIN_REMAINING == timedelta(minutes=5) < MANDATORY_WINDOW
    assert DEFAULT_HEALTH_TIMEOUT < options.DEFAULT_TIMEOUT == 5.0


def expiring(left: timedelta) -> Credentials:
    return Credentials("ASIAKEY", "secret", "token", NOW + left)


@pytest.mark.parametrize(
    ("left", "margin"),
    [
        (timedelta(minutes=5), timedelta(minutes=5)),  # exactly the margin is enough
        (timedelta(hours=6), timedelta(minutes=5)),
        (timedelta(microseconds=1), timedelta(0)),
    ],
)
def test_valid_for_the_margin(left: timedelta, margin: timedelta) -> None:
    ensure_remaining(expiring(left), NOW, margin)


def test_within_the_margin_says_how_long_is_left() -> None:
    with pytest.raises(CredentialsExpiredError) as caught:
        ensure_remaining(expiring(timedelta(minutes=4, seconds=59)), NOW, timedelta(minutes=5))
    assert caught.value.message == (
        "the credentials expire in 4m 59s, within the 5m margin (2026-11-30T12:04:59Z)"
    )
    assert caught.value.hint is not None
    assert "--min-remaining" in caught.value.hint


@pytest.mark.parametrize("margin", [timedelta(0), timedelta(minutes=5)])
def test_expired_is_expired_whatever_the_margin(margin: timedelta) -> None:
    for left in (timedelta(0), -timedelta(minutes=3)):
        with pytest.raises(CredentialsExpiredError, match="expired"):
            ensure_remaining(expiring(left), NOW, margin)
