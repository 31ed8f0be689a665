"""Every ```python block in README.md and docs/ runs, as written, against real local servers.

Each block runs in its own interpreter with the environment a task would have: the container
variable pointing at an agent-compatible endpoint that serves role AppA's real STS credentials,
S3 at SeaweedFS, and TASKCREDS_BUCKET/TASKCREDS_PREFIX. A block that raises fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskcreds.local import AgentServer
from taskcreds_demo.seaweed import SeaweedFS

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.M | re.S)


def python_blocks() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, match in enumerate(FENCE.finditer(page.read_text()), start=1):
            found.append((f"{page.relative_to(ROOT)}#{number}", match.group(1)))
    return found


BLOCKS = python_blocks()


def test_the_docs_have_python_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.fixture(scope="module")
def task_env(seaweed: SeaweedFS) -> Iterator[dict[str, str]]:
    with AgentServer(lambda: seaweed.assume_role("AppA")) as agent:
        yield {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            **seaweed.environment(),
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "TASKCREDS_BUCKET": "app-a",
            "TASKCREDS_PREFIX": "docs/",
        }


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_python_block_runs(where: str, code: str, task_env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=task_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stderr[-3000:]}"
