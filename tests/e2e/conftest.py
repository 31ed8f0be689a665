"""End-to-end fixtures: a private network namespace that looks like an ECS task's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

INSIDE = Path(__file__).with_name("_inside.py")
REPO = Path(__file__).resolve().parents[2]


def _namespaces_work() -> str | None:
    """None when `unshare -n` works here, else why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare (util-linux) and ip (iproute2) are needed"
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare -n failed (needs root or user namespaces): {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def netns() -> None:
    reason = _namespaces_work()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"e2e prerequisite missing in CI: {reason}")
    pytest.skip(reason)


def in_container(plan: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """Run ``plan`` (see _inside.py) in a fresh namespace; returns its report."""
    result = subprocess.run(
        ["unshare", "-n", sys.executable, str(INSIDE), json.dumps(plan)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def python(*args: str) -> list[str]:
    return ["{python}", "-m", "taskcreds", *args]
