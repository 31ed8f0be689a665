"""``make demo``'s job, end to end: every step behaves, and nothing is left running or on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def demo_env(tmp: Path) -> dict[str, str]:
    """The demo's temporary files go to ``tmp``, so leftovers are the demo's own."""
    return {**os.environ, "TMPDIR": str(tmp)}


def leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir())


def weed_processes() -> str:
    return subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout


def test_demo_runs_end_to_end(seaweed: object, tmp_path: Path) -> None:
    # The session's own SeaweedFS fixture is requested only to make a missing `weed` fail in CI.
    before_weeds = {
        line.split()[0] for line in weed_processes().splitlines() if "weed mini" in line
    }
    result = subprocess.run(
        [sys.executable, "-m", "taskcreds", "demo", "--json"],
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert len(report["steps"]) >= 7
    transcript = result.stderr
    assert "role/AppA" in transcript
    assert "needs s3:PutObject" in transcript
    assert "already exists and overwrite=False" in transcript
    assert "X-Amz-Security-Token" not in transcript + result.stdout
    assert "stopped every process" in transcript
    after_weeds = {line.split()[0] for line in weed_processes().splitlines() if "weed mini" in line}
    assert after_weeds <= before_weeds
    assert leftovers(tmp_path) == []


def test_demo_keep_then_ctrl_c_cleans_up(seaweed: object, tmp_path: Path) -> None:
    import signal

    process = subprocess.Popen(
        [sys.executable, "-m", "taskcreds", "demo", "--keep"],
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    text = "".join(lines)
    assert "export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:" in text
    assert "export TASKCREDS_BUCKET=app-a" in text
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "stopped every process" in out
    assert leftovers(tmp_path) == []
