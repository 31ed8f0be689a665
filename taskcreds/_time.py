"""The injectable clocks, named once: aware UTC for expirations, monotonic for intervals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["Clock", "Monotonic", "Sleep", "utc_now"]

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime (expirations are absolute UTC times)."""

Monotonic = Callable[[], float]
"""Seconds on a clock that never goes back (``time.monotonic``): for intervals and deadlines."""

Sleep = Callable[[float], None]
"""Waits that many seconds (``time.sleep``); tests inject one that returns at once."""


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)
