"""``taskcreds upload`` against real S3 (SeaweedFS) with AppA's real STS session credentials.

The command runs in-process (``main(argv)``) with the environment a task would have: the
container variable pointing at a local agent-compatible endpoint, ``AWS_ENDPOINT_URL_S3`` and
``TASKCREDS_BUCKET``/``TASKCREDS_PREFIX``. One test runs ``python -m taskcreds`` as a subprocess.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import taskcreds.provider
from taskcreds.cli import main
from taskcreds.cli import upload as upload_command
from taskcreds.credentials import Credentials
from taskcreds.local import AgentServer
from taskcreds.upload import CHECKSUM_ALGORITHMS
from taskcreds_demo.seaweed import SeaweedFS

MiB = 1024 * 1024

_CLEARED = (
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
)


class _Served:
    """AppA's real STS credentials, remembered so the tests can check none leaks into output."""

    def __init__(self, seaweed: SeaweedFS) -> None:
        self._seaweed = seaweed
        self.sets: list[Credentials] = []

    def __call__(self) -> Credentials:
        credentials = self._seaweed.assume_role("AppA")
        self.sets.append(credentials)
        return credentials

    def assert_absent(self, text: str) -> None:
        for credentials in self.sets:
            assert credentials.secret_access_key not in text
            assert credentials.token not in text
            assert credentials.access_key_id not in text  # not even unmasked


@pytest.fixture
def served(seaweed: SeaweedFS) -> _Served:
    return _Served(seaweed)


@pytest.fixture
def agent(served: _Served) -> Iterator[AgentServer]:
    with AgentServer(served) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    # "t-": the uploader tests check that app-a holds nothing outside such test prefixes.
    return f"t-cli-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def task_env(
    monkeypatch: pytest.MonkeyPatch, seaweed: SeaweedFS, agent: AgentServer, prefix: str
) -> Iterator[pytest.MonkeyPatch]:
    """The task's environment, and a fresh process-wide provider (closed afterwards)."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.full_uri)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", seaweed.s3_endpoint)
    monkeypatch.setenv("AWS_REGION", seaweed.region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", seaweed.region)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("TASKCREDS_BUCKET", "app-a")
    monkeypatch.setenv("TASKCREDS_PREFIX", prefix)
    monkeypatch.setattr(taskcreds.provider, "_default_provider", None)
    yield monkeypatch
    provider = taskcreds.provider._default_provider
    if provider is not None:
        provider.close()


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], served: _Served
) -> tuple[int, str, str]:
    code = main(["upload", *argv])
    captured = capsys.readouterr()
    served.assert_absent(captured.out + captured.err)
    return code, captured.out, captured.err


def run_json(
    argv: list[str], capsys: pytest.CaptureFixture[str], served: _Served
) -> tuple[int, dict[str, Any]]:
    code, out, _ = run([*argv, "--json"], capsys, served)
    document: dict[str, Any] = json.loads(out)
    assert document["exit_code"] == code
    return code, document


def read_back(seaweed: SeaweedFS, bucket: str, key: str) -> bytes:
    s3 = seaweed.admin_client("s3")
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    finally:
        s3.close()


def keys_in(seaweed: SeaweedFS, bucket: str, prefix: str) -> list[str]:
    s3 = seaweed.admin_client("s3")
    try:
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in page.get("Contents", []))
    finally:
        s3.close()


def make_site(root: Path) -> Path:
    (root / "css").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "index.html").write_text("<h1>task A</h1>\n")
    (root / "css" / "main.css").write_text("h1 { color: teal }\n")
    (root / "debug.log").write_text("noise\n")
    (root / "tmp" / "scratch.html").write_text("draft\n")
    return root


SITE_FILTERS = ["--include", "*.html", "--include", "*.css", "--exclude", "tmp/*"]


# -- files -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("task_env")
def test_file_text_output(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"day,count\n1,42\n")
    code, out, err = run([str(path)], capsys, served)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"uploaded s3://app-a/{prefix}report.csv (15 bytes, CRC32C ")
    assert lines[-1].startswith(f"1 uploaded (15 bytes) to s3://app-a/{prefix}, 0 skipped")
    assert err == ""
    assert read_back(seaweed, "app-a", f"{prefix}report.csv") == path.read_bytes()
    assert served.sets  # the credentials really came from the endpoint


@pytest.mark.usefixtures("task_env")
def test_file_json_with_key(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"x" * 1000)
    code, document = run_json([str(path), "--key", "2024/05/report.csv"], capsys, served)
    assert code == 0
    assert document["ok"] is True
    [uploaded] = document["uploaded"]
    assert uploaded["bucket"] == "app-a"
    assert uploaded["key"] == f"{prefix}2024/05/report.csv"
    assert uploaded["size"] == 1000
    assert uploaded["etag"]
    assert "version_id" in uploaded
    assert uploaded["checksum_algorithm"] == "CRC32C"
    assert uploaded["checksum"]
    assert document["totals"]["uploaded"] == 1
    assert document["totals"]["bytes"] == 1000
    assert document["failed"] == []
    assert read_back(seaweed, "app-a", uploaded["key"]) == b"x" * 1000


@pytest.mark.usefixtures("task_env")
def test_checksum_sha256_is_the_files_sha256(
    served: _Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytes(range(256)) * 64
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    code, document = run_json([str(path), "--checksum", "sha256"], capsys, served)
    assert code == 0
    [uploaded] = document["uploaded"]
    assert uploaded["checksum_algorithm"] == "SHA256"
    assert uploaded["checksum"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.mark.usefixtures("task_env")
def test_part_size_and_concurrency_multipart(
    seaweed: SeaweedFS, served: _Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = hashlib.sha256(b"cli").digest() * (11 * MiB // 32)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    argv = [str(path), "--part-size", "5", "--concurrency", "3"]
    code, document = run_json(argv, capsys, served)
    assert code == 0
    [uploaded] = document["uploaded"]
    assert uploaded["multipart"] is True
    assert uploaded["checksum"].endswith("-3")  # three 5 MiB parts, a composite checksum
    assert read_back(seaweed, "app-a", uploaded["key"]) == data


def test_checksum_choices_match_the_uploader() -> None:
    assert upload_command.CHECKSUM_ALGORITHMS == CHECKSUM_ALGORITHMS


# -- directories -------------------------------------------------------------------------------


@pytest.mark.usefixtures("task_env")
def test_directory_include_exclude_then_skip_unchanged(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = make_site(tmp_path / "site")
    code, first = run_json([str(site), *SITE_FILTERS], capsys, served)
    assert code == 0
    expected = [f"{prefix}css/main.css", f"{prefix}index.html"]
    assert sorted(item["key"] for item in first["uploaded"]) == expected
    assert keys_in(seaweed, "app-a", prefix) == expected  # no debug.log, nothing from tmp/

    (site / "index.html").write_text("<h1>task A, changed</h1>\n")
    code, out, _ = run([str(site), *SITE_FILTERS], capsys, served)
    assert code == 0
    assert f"uploaded s3://app-a/{prefix}index.html (" in out
    assert f"skipped s3://app-a/{prefix}css/main.css (unchanged)" in out
    assert out.splitlines()[-1].startswith(f"1 uploaded (25 bytes) to s3://app-a/{prefix}, 1 skip")
    assert read_back(seaweed, "app-a", f"{prefix}index.html") == b"<h1>task A, changed</h1>\n"

    code, third = run_json([str(site), *SITE_FILTERS, "--no-skip-unchanged"], capsys, served)
    assert code == 0
    assert third["totals"]["uploaded"] == 2
    assert third["skipped"] == []


@pytest.mark.usefixtures("task_env")
def test_dry_run_writes_nothing(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = make_site(tmp_path / "site")
    single = tmp_path / "notes.txt"
    single.write_text("notes\n")
    code, document = run_json([str(single), str(site), *SITE_FILTERS, "--dry-run"], capsys, served)
    assert code == 0
    assert document["dry_run"] is True
    assert sorted(document["planned"]) == sorted(
        f"{prefix}{name}" for name in ("notes.txt", "index.html", "css/main.css")
    )
    assert document["uploaded"] == []
    # Each file with the key it would become and its size: the uploader's own plan_dir.
    assert {(f["path"], f["key"], f["size"]) for f in document["planned_files"]} == {
        (str(single), f"{prefix}notes.txt", 6),
        *(
            (str(site / name), f"{prefix}{name}", (site / name).stat().st_size)
            for name in ("index.html", "css/main.css")
        ),
    }
    code, out, _ = run([str(single), str(site), *SITE_FILTERS, "--dry-run"], capsys, served)
    assert code == 0
    assert f"would upload s3://app-a/{prefix}notes.txt (6 bytes) from {single}" in out
    size = (site / "index.html").stat().st_size
    assert f"would upload s3://app-a/{prefix}index.html ({size} bytes) from {site}" in out
    assert "nothing was written" in out
    assert keys_in(seaweed, "app-a", prefix) == []


# -- failures and exit codes -------------------------------------------------------------------


@pytest.mark.usefixtures("task_env")
def test_no_overwrite_on_taken_key_exits_8(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "once.txt"
    path.write_text("first\n")
    assert run([str(path), "--no-overwrite"], capsys, served)[0] == 0
    path.write_text("second\n")
    code, out, err = run([str(path), "--no-overwrite"], capsys, served)
    assert code == 8
    message = f"s3://app-a/{prefix}once.txt already exists and --no-overwrite was given"
    assert err.startswith(f"failed {path}: {message}")
    assert err.count(message) == 1  # printed once, not again as "taskcreds: error: ..."
    assert message not in out
    assert out.splitlines()[-1].startswith("0 uploaded (0 bytes)")
    assert read_back(seaweed, "app-a", f"{prefix}once.txt") == b"first\n"

    site = make_site(tmp_path / "site")
    assert run([str(site), *SITE_FILTERS], capsys, served)[0] == 0
    argv = [str(site), *SITE_FILTERS, "--no-overwrite", "--no-skip-unchanged"]
    code, document = run_json(argv, capsys, served)
    assert code == 8
    assert document["ok"] is False
    assert {item["error"] for item in document["failed"]} == {"ObjectExistsError"}
    assert {item["exit_code"] for item in document["failed"]} == {8}
    assert len(document["failed"]) == 2


@pytest.mark.usefixtures("task_env")
def test_other_apps_bucket_exits_7_naming_the_action(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "note.txt"
    path.write_text("task A was here\n")
    code, out, err = run([str(path), "--bucket", "app-b"], capsys, served)
    assert code == 7
    assert "access denied" not in out  # the failure is on stderr, once
    assert err.count("access denied") == 1
    assert f"grant s3:PutObject on arn:aws:s3:::app-b/{prefix}* to the task role" in err
    assert "note.txt to the task role" not in err  # a grant on the prefix, not per object

    site = make_site(tmp_path / "site")
    code, document = run_json([str(site), "--bucket", "app-b", "--keep-going"], capsys, served)
    assert code == 7
    assert document["uploaded"] == []
    assert len(document["failed"]) == 4
    assert document["not_attempted"] == []
    assert {item["error"] for item in document["failed"]} == {"AccessDeniedError"}
    assert all("s3:PutObject" in item["reason"] for item in document["failed"])
    assert keys_in(seaweed, "app-b", prefix) == []


@pytest.mark.usefixtures("task_env")
def test_access_denied_outranks_other_failures(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "ok.txt").write_text("fine\n")
    (tree / "back\\slash.txt").write_text("a name the key rules refuse\n")
    code, document = run_json([str(tree)], capsys, served)
    assert code == 8  # the refused name; ok.txt was still uploaded
    assert [item["key"] for item in document["uploaded"]] == [f"{prefix}ok.txt"]
    [failed] = document["failed"]
    assert failed["error"] == "KeyOutsidePrefixError"
    assert "backslash" in failed["reason"]

    code, document = run_json([str(tree), "--bucket", "app-b"], capsys, served)
    assert code == 7  # access denied anywhere wins over any other upload failure
    assert sorted(item["exit_code"] for item in document["failed"]) == [7, 8]
    assert keys_in(seaweed, "app-b", prefix) == []


@pytest.mark.usefixtures("task_env")
def test_directory_refused_stops_after_its_first_file(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = make_site(tmp_path / "site")  # 4 files; css/main.css is the first in path order
    code, out, err = run([str(site), "--bucket", "app-b"], capsys, served)
    assert code == 7
    [failed_line, stopped_line] = err.splitlines()
    assert failed_line.startswith(f"failed {site}/css/main.css: access denied: ")
    # One grant on the prefix, never one per object.
    assert f"grant s3:PutObject on arn:aws:s3:::app-b/{prefix}* to the task role" in failed_line
    assert stopped_line == (
        f"stopped {site}: its first file failed with AccessDeniedError, so the other 3 files "
        "were not attempted (they would fail the same way); --keep-going tries every file"
    )
    assert out.splitlines()[-1].startswith(
        f"0 uploaded (0 bytes) to s3://app-b/{prefix}, 0 skipped (unchanged), 1 failed, "
        "3 not attempted in "
    )

    code, document = run_json([str(site), "--bucket", "app-b"], capsys, served)
    assert code == 7
    [failed] = document["failed"]
    assert failed["path"] == str(site / "css" / "main.css")
    assert failed["exit_code"] == 7
    assert document["not_attempted"] == [
        f"{prefix}{name}" for name in ("debug.log", "index.html", "tmp/scratch.html")
    ]
    assert document["totals"]["not_attempted"] == 3
    assert keys_in(seaweed, "app-b", prefix) == []


@pytest.mark.usefixtures("task_env")
def test_directory_lines_are_printed_as_each_file_is_done(
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # stdout is a StringIO: not a terminal, as in ECS logs or CI. The end of the last file's
    # upload is held until the earlier files' lines are out: printed only at the end, they never
    # would be. (Small files go through the CRT from the caller's thread, several at once: the
    # hold is on the CRT's report that the last one ended, which comes from a CRT thread.)
    from taskcreds.upload._crt import CrtPut

    site = tmp_path / "site"
    site.mkdir()
    names = ["a.txt", "b.txt", "c.txt"]
    for name in names:
        (site / name).write_text(name)
    earlier_lines_out = threading.Event()

    class Watched(io.StringIO):
        def write(self, text: str) -> int:
            written = super().write(text)
            value = self.getvalue()
            if all(f"uploaded s3://app-a/{prefix}{n} (" in value for n in names[:-1]):
                earlier_lines_out.set()
            return written

    stdout = Watched()
    monkeypatch.setattr(sys, "stdout", stdout)
    streamed: list[bool] = []
    original = CrtPut.submit

    def spy(self: CrtPut, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        on_done = kwargs.get("on_done")
        if key.endswith(names[-1]) and on_done is not None:

            def report_when_the_earlier_lines_are_out() -> None:
                streamed.append(earlier_lines_out.wait(30))
                on_done()

            def held() -> None:
                # Not in the CRT's thread, which must go on to end the other requests.
                threading.Thread(target=report_when_the_earlier_lines_are_out).start()

            kwargs["on_done"] = held
        return original(self, bucket, key, *args, **kwargs)

    monkeypatch.setattr(CrtPut, "submit", spy)
    assert main(["upload", str(site), "--concurrency", "1"]) == 0
    served.assert_absent(stdout.getvalue())
    assert streamed == [True]
    lines = stdout.getvalue().splitlines()
    done = [line.split(" (")[0] for line in lines[:3]]
    assert sorted(done[:2]) == [f"uploaded s3://app-a/{prefix}{name}" for name in names[:2]]
    assert done[2] == f"uploaded s3://app-a/{prefix}{names[2]}"
    assert lines[3].startswith(f"3 uploaded (15 bytes) to s3://app-a/{prefix}")
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("task_env")
def test_quiet_prints_only_failures_and_the_summary(
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = make_site(tmp_path / "site")
    code, out, err = run([str(site), "--quiet"], capsys, served)
    assert code == 0
    assert err == ""
    [summary] = out.splitlines()
    assert summary.startswith("4 uploaded (")
    code, out, err = run(
        [str(site), "--quiet", "--no-overwrite", "--no-skip-unchanged"], capsys, served
    )
    assert code == 8
    assert out.splitlines()[-1].startswith("0 uploaded (0 bytes)")
    assert len(out.splitlines()) == 1
    assert len(err.splitlines()) == 4  # one line per failure, each once
    assert all(line.startswith(f"failed {site}/") for line in err.splitlines())
    code, document = run_json([str(site), "--quiet"], capsys, served)  # JSON is still printed
    assert code == 0
    assert document["totals"]["skipped"] == 4


@pytest.mark.usefixtures("task_env")
def test_json_entries_carry_the_local_path(
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = make_site(tmp_path / "site")
    (site / "back\\slash.txt").write_text("a name the key rules refuse\n")
    single = tmp_path / "notes.txt"
    single.write_text("notes\n")
    code, document = run_json([str(single), str(site)], capsys, served)
    assert code == 8
    paths = {item["key"]: item["path"] for item in document["uploaded"]}
    assert paths == {
        f"{prefix}notes.txt": str(single),
        f"{prefix}css/main.css": str(site / "css" / "main.css"),
        f"{prefix}debug.log": str(site / "debug.log"),
        f"{prefix}index.html": str(site / "index.html"),
        f"{prefix}tmp/scratch.html": str(site / "tmp" / "scratch.html"),
    }
    [failed] = document["failed"]
    assert failed["path"] == str(site / "back\\slash.txt")


@pytest.mark.usefixtures("task_env")
def test_empty_directory_says_so_and_exits_0(
    seaweed: SeaweedFS,
    served: _Served,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)  # only an empty sub-directory: still nothing to upload
    code, out, err = run([str(empty)], capsys, served)
    assert code == 0
    assert err == f"nothing to upload: {empty} is empty\n"
    assert out.splitlines() == [out.splitlines()[-1]]
    assert out.startswith(f"0 uploaded (0 bytes) to s3://app-a/{prefix}, 0 skipped")
    code, document = run_json([str(empty)], capsys, served)
    assert code == 0
    assert document["ok"] is True
    assert document["nothing_to_upload"] == [
        {"path": str(empty), "message": f"nothing to upload: {empty} is empty"}
    ]
    site = make_site(tmp_path / "site")
    code, out, err = run([str(site), "--include", "*.pdf"], capsys, served)
    assert code == 0
    assert err == f"nothing to upload: no file in {site} matches --include/--exclude\n"
    assert keys_in(seaweed, "app-a", prefix) == []


def test_no_bucket_exits_2(
    task_env: pytest.MonkeyPatch,
    served: _Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task_env.delenv("TASKCREDS_BUCKET")
    path = tmp_path / "x.txt"
    path.write_text("x")
    code, _, err = run([str(path)], capsys, served)
    assert code == 2
    assert "no bucket" in err
    assert "TASKCREDS_BUCKET" in err
    code, document = run_json([str(path)], capsys, served)
    assert code == 2
    assert document["ok"] is False
    assert document["error"]["type"] == "ConfigError"


def test_no_container_credentials_exits_2_and_stops(
    task_env: pytest.MonkeyPatch,
    served: _Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task_env.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    site = make_site(tmp_path / "site")
    path = tmp_path / "x.txt"
    path.write_text("x")
    later = tmp_path / "later.txt"
    later.write_text("never tried")
    for first in (path, site):
        code, document = run_json([str(first), str(later)], capsys, served)
        assert code == 2
        assert document["uploaded"] == []
        [failed] = document["failed"]  # the second path was not tried: it would fail the same way
        assert failed["path"] == str(first)
        assert failed["error"] == "NotInContainerError"
        assert failed["exit_code"] == 2


@pytest.mark.usefixtures("task_env")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{file}", "{other}", "--key", "k.txt"], "--key names one object"),
        (["{dir}", "--key", "k.txt"], "--key names one object"),
        (["{tmp}/missing.txt"], "no such file or directory"),
        (["{file}", "{dir}/{name}"], "several files would become the same key"),
        (["{file}", "--part-size", "4"], "minimum part size"),
        (["{file}", "--checksum", "MD5"], "invalid choice"),
        (["{file}", "--concurrency", "0"], "is not at least 1"),
    ],
)
def test_usage_errors_exit_1(
    argv: list[str],
    message: str,
    served: _Served,
    seaweed: SeaweedFS,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "dir").mkdir()
    for path in (tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "dir" / "a.txt"):
        path.write_text("x")
    names = {
        "file": str(tmp_path / "a.txt"),
        "other": str(tmp_path / "b.txt"),
        "dir": str(tmp_path / "dir"),
        "tmp": str(tmp_path),
        "name": "a.txt",
    }
    code, out, err = run([arg.format(**names) for arg in argv], capsys, served)
    assert code == 1
    assert out == ""
    assert message in err
    assert keys_in(seaweed, "app-a", prefix) == []


# -- the console path --------------------------------------------------------------------------


def test_python_m_taskcreds_upload_subprocess(
    seaweed: SeaweedFS, served: _Served, agent: AgentServer, prefix: str, tmp_path: Path
) -> None:
    data = os.urandom(64 * 1024)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,
        "AWS_ENDPOINT_URL_S3": seaweed.s3_endpoint,
        "AWS_REGION": seaweed.region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "TASKCREDS_BUCKET": "app-a",
        "TASKCREDS_PREFIX": prefix,
    }
    completed = subprocess.run(
        [sys.executable, "-m", "taskcreds", "upload", str(path), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    served.assert_absent(completed.stdout + completed.stderr)
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    [uploaded] = document["uploaded"]
    assert uploaded["key"] == f"{prefix}payload.bin"
    assert read_back(seaweed, "app-a", uploaded["key"]) == data

    denied = subprocess.run(
        [sys.executable, "-m", "taskcreds", "upload", str(path), "--bucket", "app-b"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    served.assert_absent(denied.stdout + denied.stderr)
    assert denied.returncode == 7
    assert "s3:PutObject" in denied.stderr


# -- escaping ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("task_env")
def test_hostile_file_names_are_escaped(
    served: _Served,
    seaweed: SeaweedFS,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "ok.txt").write_text("fine\n")
    (site / "bad\x1b[2J.txt").write_text("refused: a control character\n")
    (site / "evil\u202etxt.exe").write_text("bidi override\n")
    with open(os.fsencode(site) + b"/raw\xff.txt", "wb") as raw:  # not a UTF-8 name
        raw.write(b"not UTF-8\n")
    code, out, err = run([str(site)], capsys, served)
    for char in "\x1b\u202e\udcff":
        assert char not in out + err
    assert code == 8
    assert f"failed {site}/bad\\x1b[2J.txt: " in err
    assert "raw\\udcff.txt: " in err
    assert f"uploaded s3://app-a/{prefix}evil\\u202etxt.exe " in out
    assert "taskcreds: error: " not in err  # each failure once, as its "failed" line
    assert keys_in(seaweed, "app-a", prefix) == [f"{prefix}evil\u202etxt.exe", f"{prefix}ok.txt"]


def test_a_hostile_missing_path_is_escaped(
    served: _Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run([str(tmp_path / "gone\x1b]0;owned\x07.csv")], capsys, served)
    assert code == 1
    assert out == ""
    assert err == (
        f"taskcreds upload: error: {tmp_path}/gone\\x1b]0;owned\\x07.csv: no such file or directory\n"
    )
