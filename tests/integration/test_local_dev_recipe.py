"""docs/local-development.md's recipe "--role-arn against a local S3 and STS", run as written.

The three console blocks of that section are read from the page: the launcher's output, the
variables and command for ``serve-local``, and the variables and command for the app. The tests
run those commands with exactly those variables; only the values that change on every run (the
SeaweedFS port, serve-local's port and so the FULL_URI line) are replaced by the real ones, and
``serve-local`` gets ``--port 0`` instead of the agent's port. Every subprocess also gets
variables that only switch the machine's own AWS setup off (no config files, no instance
metadata), so nothing but the documented variables can make it work.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from taskcreds_demo.seaweed import SeaweedFS

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "local-development.md"
HEADING = "### `--role-arn` against a local S3 and STS"
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.M | re.S)
TIMEOUT = 30.0


@dataclass
class Block:
    """One console block: its ``export`` variables, its commands, and the lines it shows."""

    exports: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)


def recipe() -> list[Block]:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(HEADING)
    end = min(i for i in (text.find("\n## ", start), text.find("\n### ", start + 1)) if i > 0)
    blocks = []
    for match in CONSOLE.finditer(text[start:end]):
        block = Block()
        for line in match.group(1).splitlines():
            if line.startswith("$ export "):
                name, _, value = line.removeprefix("$ export ").partition("=")
                block.exports[name] = value
            elif line.startswith("$ "):
                block.commands.append(line.removeprefix("$ "))
            else:
                block.output.append(line)
        blocks.append(block)
    return blocks


def settings(lines: list[str]) -> dict[str, str]:
    """The ``NAME=value`` lines."""
    found = {}
    for line in lines:
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(\S*)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def commented_settings(lines: list[str]) -> dict[str, str]:
    """The ``#   NAME=value`` comment lines (the app's variables in the launcher's output)."""
    return settings([line.removeprefix("#").strip() for line in lines if line.startswith("#  ")])


def isolated(tmp_path: Path, documented: dict[str, str]) -> dict[str, str]:
    """The documented variables, plus what a shell has and what switches the machine's AWS off."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **documented,
    }


class Running:
    """A subprocess whose stdout lines arrive on a queue (a reader thread; no polling)."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr: Path) -> None:
        with stderr.open("w") as written:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=written,
                text=True,
                env=env,
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, predicate: re.Pattern[str]) -> list[str]:
        """Lines up to and including the first that matches; fails at end of output."""
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no line matching {predicate.pattern} in {TIMEOUT} s: {seen}")
            if line is None:
                pytest.fail(f"output ended (exit {self.process.wait()}) before {predicate.pattern}")
            seen.append(line)
            if predicate.search(line):
                return seen

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal it by PID and reap it; SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.reader.join(TIMEOUT)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


@pytest.fixture
def started() -> Iterator[list[Running]]:
    """Every process a test starts is stopped by PID at the end, however the test ends."""
    processes: list[Running] = []
    yield processes
    for running in processes:
        running.stop()


def documented_endpoint(blocks: list[Block]) -> str:
    endpoint = settings(blocks[0].output)["AWS_ENDPOINT_URL_STS"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoint)
    return endpoint


def test_the_page_has_the_three_steps() -> None:
    launcher, serve, app = recipe()
    assert launcher.commands == ["python -m taskcreds_demo.seaweed"]
    assert len(serve.commands) == 1
    assert serve.commands[0].startswith("python -m taskcreds serve-local --role-arn ")
    assert app.commands == ["cd docs/examples && python -m app"]
    endpoint = documented_endpoint([launcher])
    # What terminal 1 prints is what terminals 2 and 3 export.
    assert settings(launcher.output) == serve.exports
    app_variables = {**commented_settings(launcher.output)}
    assert {k: v for k, v in app.exports.items() if not k.startswith("AWS_CONTAINER")} == (
        app_variables
    )
    assert app.exports["AWS_ENDPOINT_URL_S3"] == endpoint
    full_uri = settings(serve.output)["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert app.exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == full_uri
    assert "AWS_ACCESS_KEY_ID" not in app.exports  # the app gets no keys


def test_the_launcher_prints_what_the_page_shows(
    tmp_path: Path, started: list[Running], seaweed: SeaweedFS
) -> None:
    # `seaweed` only makes a missing weed skip (or fail in CI) as every SeaweedFS test does.
    launcher, serve, _ = recipe()
    stderr = tmp_path / "launcher.err"
    running = Running(
        [sys.executable, "-m", "taskcreds_demo.seaweed"], isolated(tmp_path, {}), stderr
    )
    started.append(running)
    lines = running.read_until(re.compile(r"^#   TASKCREDS_BUCKET="))
    printed = settings(lines)
    endpoint = printed["AWS_ENDPOINT_URL_STS"]
    documented = documented_endpoint([launcher])
    assert printed == {k: v.replace(documented, endpoint) for k, v in serve.exports.items()}
    assert commented_settings(lines) == {
        k: v.replace(documented, endpoint) for k, v in commented_settings(launcher.output).items()
    }
    expected = [
        line.replace(documented, endpoint) for line in launcher.output if line.startswith("#")
    ]
    assert [line for line in lines if line.startswith("#")] == expected
    assert running.stop(signal.SIGTERM) == 0
    said = stderr.read_text()
    data_dir = re.search(r"data in (\S+);", said)
    assert data_dir is not None, said
    assert not Path(data_dir.group(1)).exists()


def test_serve_local_and_the_app_as_documented(
    seaweed: SeaweedFS, tmp_path: Path, started: list[Running]
) -> None:
    launcher, serve, app = recipe()
    documented = documented_endpoint([launcher])

    def real(value: str) -> str:
        return value.replace(documented, seaweed.s3_endpoint)

    # Terminal 2: serve-local with exactly the exported variables, on a free port.
    argv = shlex.split(serve.commands[0])
    assert argv[0] == "python"
    serve_env = isolated(tmp_path, {name: real(value) for name, value in serve.exports.items()})
    assert serve_env["AWS_ACCESS_KEY_ID"] == seaweed.admin_access_key
    stderr = tmp_path / "serve-local.err"
    server = Running([sys.executable, *argv[1:], "--port", "0"], serve_env, stderr)
    started.append(server)
    lines = server.read_until(re.compile(r"^AWS_CONTAINER_CREDENTIALS_FULL_URI="))
    full_uri = lines[-1].partition("=")[2]  # printed once the server accepts connections
    assert full_uri.endswith("/v2/credentials/local-dev")

    # Terminal 3: the app, with exactly the exported variables, the FULL_URI line as printed.
    app_variables = {name: real(value) for name, value in app.exports.items()}
    app_variables["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = full_uri
    directory, _, command = app.commands[0].removeprefix("cd ").partition(" && ")
    app_argv = shlex.split(command)
    assert app_argv[0] == "python"
    ran = subprocess.run(
        [sys.executable, *app_argv[1:]],
        cwd=ROOT / directory,
        env=isolated(tmp_path, app_variables),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    wrote = re.fullmatch(
        r"app: wrote and read back s3://app-a/(hello/[0-9a-f]{32}\.txt) \((\d+) bytes\) as "
        r"arn:aws:iam::123456789012:role/AppA",
        ran.stdout.strip(),
    )
    assert wrote is not None, ran.stdout
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        stored = s3.get_object(Bucket="app-a", Key=wrote.group(1))["Body"].read()
    assert stored.startswith(b"hello from the example app")
    assert len(stored) == int(wrote.group(2))
    assert seaweed.admin_secret_key not in ran.stdout + ran.stderr

    # The same app, pointed at the other role's bucket, is refused.
    other = subprocess.run(
        [sys.executable, *app_argv[1:]],
        cwd=ROOT / directory,
        env=isolated(tmp_path, {**app_variables, "TASKCREDS_BUCKET": "app-b"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert other.returncode == 1
    assert "access denied: PutObject on s3://app-b/" in other.stderr
    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in stderr.read_text()
