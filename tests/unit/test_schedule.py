"""The refresh policy as arithmetic (taskcreds/_schedule.py): windows, jitter, pauses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcreds import Credentials
from taskcreds._schedule import refresh_schedule, retry_delay, schedule_for, serving_schedule


@given(
    st.floats(0, 48 * 3600), st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True)
)
def test_schedule_properties(lifetime: float, first: float, second: float) -> None:
    draws = iter([first, second])
    schedule = refresh_schedule(lifetime, lambda: next(draws))
    advisory = min(15 * 60, lifetime / 3)
    mandatory = min(10 * 60, lifetime / 6)
    # Jitter only moves points earlier (more seconds before expiry), never later.
    assert schedule.advisory >= advisory
    assert schedule.mandatory >= mandatory
    # The advisory point never comes after the mandatory one, and both lie inside the lifetime.
    assert schedule.advisory >= schedule.mandatory
    assert schedule.advisory <= lifetime / 2 + 1e-9


@pytest.mark.parametrize(
    ("lifetime", "advisory", "mandatory"),
    [(6 * 3600, 900, 600), (3600, 900, 600), (900, 300, 150), (10, 10 / 3, 10 / 6)],
)
def test_schedule_without_jitter(lifetime: float, advisory: float, mandatory: float) -> None:
    schedule = refresh_schedule(lifetime, lambda: 0.0)
    assert schedule.advisory == pytest.approx(advisory)
    assert schedule.mandatory == pytest.approx(mandatory)


@given(st.floats(-10, 1e7))
def test_retry_delay_bounds(left: float) -> None:
    assert 1.0 <= retry_delay(left) <= 60.0


def _set(key: str = "ASIAONE") -> Credentials:
    return Credentials(key, "s", "t", datetime(2030, 1, 1, tzinfo=timezone.utc))


def test_schedule_for_places_the_points_on_the_monotonic_clock() -> None:
    cached = schedule_for(_set(), left=3600, now=100.0, previous=None, jitter=lambda: 0.0)
    assert cached.expires_at == 3700.0
    assert cached.advisory_at == 3700.0 - 900
    assert cached.mandatory_at == 3700.0 - 600
    assert cached.refresh_at == cached.advisory_at


def test_a_set_inside_its_window_is_refreshed_after_a_pause_not_per_call() -> None:
    first = schedule_for(_set(), left=3600, now=0.0, previous=None, jitter=lambda: 0.0)
    again = schedule_for(_set(), left=60, now=3540.0, previous=first, jitter=lambda: 0.0)
    assert again.lifetime == 3600  # the same set keeps its first-seen lifetime
    assert again.refresh_at == pytest.approx(3540.0 + retry_delay(60))


def test_a_new_set_gets_its_own_lifetime() -> None:
    first = schedule_for(_set(), left=3600, now=0.0, previous=None)
    other = schedule_for(_set("ASIATWO"), left=900, now=10.0, previous=first)
    assert other.lifetime == 900
    assert timedelta(seconds=other.expires_at - other.refresh_at) >= timedelta(seconds=300)


@pytest.mark.parametrize(
    ("lifetime", "lead"),
    [(6 * 3600, 600), (3600, 600), (60, 10), (6, 1), (1.0, 0.5), (0.0, 0.0)],
)
def test_serving_schedule_refreshes_once_a_sixth_is_left(lifetime: float, lead: float) -> None:
    # The broker's policy: 10 minutes for the agent's hours-long sets, L/6 for short ones, at
    # least 1 s and never more than half the lifetime; the jitter source is never drawn.
    schedule = serving_schedule(lifetime, lambda: pytest.fail("no jitter"))
    assert schedule.advisory == pytest.approx(lead)
    assert schedule.mandatory == pytest.approx(lead / 2)


def test_schedule_for_uses_the_schedule_it_is_given() -> None:
    cached = schedule_for(_set(), 60.0, 1000.0, None, schedule=serving_schedule)
    assert cached.advisory_at == pytest.approx(1050.0)
    assert cached.mandatory_at == pytest.approx(1055.0)
