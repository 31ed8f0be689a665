"""End-to-end fixtures: a private network namespace that looks like an ECS task's."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
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


def clean_env(**extra: str) -> dict[str, str]:
    """An environment with no AWS settings of the machine's: nothing to fall back on."""
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    environ.update(extra)
    return environ


@contextlib.contextmanager
def serve_local(args: list[str], env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """``taskcreds serve-local --port 0 --json ARGS`` on 127.0.0.1; yields its JSON document."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taskcreds", "serve-local", "--port", "0", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True
    )
    reader.start()
    try:
        text = ""
        while True:
            try:
                text += lines.get(timeout=20)
            except queue.Empty:
                process.kill()
                pytest.fail(f"serve-local printed no JSON; stderr: {process.communicate()[1]}")
            try:
                document: dict[str, Any] = json.loads(text)
                break
            except ValueError:
                continue
        yield document
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        reader.join(5)
