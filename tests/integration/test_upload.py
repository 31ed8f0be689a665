"""The Uploader against real S3 (SeaweedFS) with real STS session credentials for role AppA.

The credentials travel the whole real path: SeaweedFS STS AssumeRole -> the local agent-compatible
endpoint -> CredentialProvider -> the uploader's boto3 session.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import taskcreds
from taskcreds import AccessDeniedError, ConfigError, KeyOutsidePrefixError, ObjectExistsError
from taskcreds.upload import FailedFile, FileEvent, Uploader, UploadResult, _directory
from taskcreds_demo.seaweed import SeaweedFS

MiB = 1024 * 1024


def uploader_for(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    bucket: str = "app-a",
    **kwargs: object,
) -> Uploader:
    prefix = kwargs.pop("prefix", f"t-{uuid.uuid4().hex[:8]}/")
    return Uploader(
        bucket,
        prefix,  # type: ignore[arg-type]
        provider=provider,
        endpoint_url=seaweed.s3_endpoint,
        region_name=seaweed.region,
        environ={},
        **kwargs,  # type: ignore[arg-type]
    )


def read_back(seaweed: SeaweedFS, bucket: str, key: str) -> bytes:
    s3 = seaweed.admin_client("s3")
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    finally:
        s3.close()


def keys_in(seaweed: SeaweedFS, bucket: str, prefix: str = "") -> list[str]:
    s3 = seaweed.admin_client("s3")
    try:
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for item in page.get("Contents", [])]
    finally:
        s3.close()


def test_upload_bytes_to_own_bucket(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    with uploader_for(seaweed, provider) as uploader:
        result = uploader.upload_bytes(b"hello task A\n", "greeting.txt", metadata={"app": "a"})
    assert result.key == uploader.prefix + "greeting.txt"
    assert result.size == 13
    assert result.checksum_algorithm == "CRC32C"
    assert result.checksum
    assert result.etag
    assert read_back(seaweed, "app-a", result.key) == b"hello task A\n"


def test_isolation_other_bucket_denied_nothing_written(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    with uploader_for(seaweed, provider, bucket="app-b", prefix="intruder/") as uploader:
        with pytest.raises(AccessDeniedError) as info:
            uploader.upload_bytes(b"not yours", "x.txt")
        big = tmp_path / "big.bin"
        big.write_bytes(b"\0" * (12 * MiB))
        with pytest.raises(AccessDeniedError):
            uploader.upload_file(big)
    assert info.value.bucket == "app-b"
    assert info.value.action == "s3:PutObject"
    assert "s3:PutObject" in str(info.value)
    assert keys_in(seaweed, "app-b", "intruder/") == []


def test_multipart_file_byte_exact(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    data = hashlib.sha256(b"seed").digest() * (20 * MiB // 32) + b"tail"
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    seen: list[int] = []
    with uploader_for(
        seaweed, provider, part_size=5 * MiB, multipart_threshold=5 * MiB
    ) as uploader:
        result = uploader.upload_file(path, "nested/data.bin", progress=seen.append)
        assert uploader.list_incomplete() == []
    assert result.multipart
    assert result.size == len(data)
    assert sum(seen) == len(data)
    assert read_back(seaweed, "app-a", result.key) == data


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256", "CRC64NVME"])
def test_checksum_algorithms(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, algorithm: str
) -> None:
    with uploader_for(seaweed, provider) as uploader:
        result = uploader.upload_bytes(b"abc" * 1000, "c.bin", checksum_algorithm=algorithm)
    assert result.checksum_algorithm == algorithm
    assert result.checksum


def test_non_seekable_stream(seaweed: SeaweedFS, provider: taskcreds.CredentialProvider) -> None:
    read_end, write_end = __import__("os").pipe()
    payload = b"x" * (11 * MiB)

    def writer() -> None:
        with open(write_end, "wb") as sink:
            sink.write(payload)

    import threading

    thread = threading.Thread(target=writer)
    thread.start()
    with (
        open(read_end, "rb") as stream,
        uploader_for(seaweed, provider, part_size=5 * MiB, multipart_threshold=5 * MiB) as uploader,
    ):
        result = uploader.upload_fileobj(stream, "stream.bin")
    thread.join(10)
    assert result.size == len(payload)
    assert read_back(seaweed, "app-a", result.key) == payload


def test_no_overwrite_single_and_multipart(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"1" * (11 * MiB))
    with uploader_for(
        seaweed, provider, part_size=5 * MiB, multipart_threshold=5 * MiB
    ) as uploader:
        uploader.upload_bytes(b"first", "once.txt", overwrite=False)
        with pytest.raises(ObjectExistsError):
            uploader.upload_bytes(b"second", "once.txt", overwrite=False)
        assert read_back(seaweed, "app-a", uploader.key_for("once.txt")) == b"first"
        uploader.upload_file(big, "big.bin", overwrite=False)
        big.write_bytes(b"2" * (11 * MiB))
        with pytest.raises(ObjectExistsError):
            uploader.upload_file(big, "big.bin", overwrite=False)
        assert read_back(seaweed, "app-a", uploader.key_for("big.bin"))[:1] == b"1"
        assert uploader.list_incomplete() == []  # the refused multipart upload was aborted
        uploader.upload_bytes(b"third", "once.txt")  # overwrite=True is the default
        assert read_back(seaweed, "app-a", uploader.key_for("once.txt")) == b"third"


def test_upload_dir_include_exclude_skip_unchanged(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<h1>hi</h1>")
    (root / "css" / "a.css").write_text("body{}")
    (root / "debug.log").write_text("noise")
    (root / "tmp").mkdir()
    (root / "tmp" / "x.html").write_text("scratch")
    with uploader_for(seaweed, provider) as uploader:
        plan = uploader.upload_dir(
            root, include=["*.html", "*.css"], exclude=["tmp/*"], dry_run=True
        )
        assert sorted(plan.planned) == sorted(
            uploader.key_for(k) for k in ("index.html", "css/a.css")
        )
        assert keys_in(seaweed, "app-a", uploader.prefix) == []
        first = uploader.upload_dir(root, include=["*.html", "*.css"], exclude=["tmp/*"])
        assert first.ok
        assert len(first.uploaded) == 2
        (root / "index.html").write_text("<h1>changed</h1>")
        second = uploader.upload_dir(root, include=["*.html", "*.css"], exclude=["tmp/*"])
    assert [r.key for r in second.uploaded] == [uploader.key_for("index.html")]
    assert second.skipped == [uploader.key_for("css/a.css")]
    content_type = seaweed.admin_client("s3").head_object(
        Bucket="app-a", Key=uploader.key_for("index.html")
    )["ContentType"]
    assert content_type == "text/html"


def test_upload_dir_reports_each_file_as_it_settles_with_its_path(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<h1>hi</h1>")
    (root / "css" / "a.css").write_text("body{}")
    (root / "bad\\name.txt").write_text("a name the key rules refuse")
    events: list[FileEvent] = []
    with uploader_for(seaweed, provider) as uploader:
        planned = uploader.upload_dir(root, dry_run=True, on_file=events.append)
        assert sorted((e.status, e.path) for e in events) == [
            ("failed", str(root / "bad\\name.txt")),
            ("planned", str(root / "css" / "a.css")),
            ("planned", str(root / "index.html")),
        ]
        assert sorted(planned.planned) == sorted(e.key for e in events if e.status == "planned")
        events.clear()
        first = uploader.upload_dir(root, on_file=events.append)
        (root / "index.html").write_text("<h1>changed</h1>")
        again: list[FileEvent] = []
        uploader.upload_dir(root, on_file=again.append)
    uploaded = {e.path: e for e in events if e.status == "uploaded"}
    assert sorted(uploaded) == [str(root / "css" / "a.css"), str(root / "index.html")]
    for path, event in uploaded.items():
        assert isinstance(event.outcome, UploadResult)
        assert event.outcome.path == path
        assert event.key == event.outcome.key
    # The result keeps the order of the paths, whatever order the files finished in.
    assert [r.path for r in first.uploaded] == [
        str(root / "css" / "a.css"),
        str(root / "index.html"),
    ]
    [failed] = [e for e in events if e.status == "failed"]
    assert isinstance(failed.outcome, FailedFile)
    assert failed.outcome.error_type == "KeyOutsidePrefixError"
    assert isinstance(failed.outcome.error, KeyOutsidePrefixError)
    assert sorted((e.status, Path(e.path).name) for e in again) == [
        ("failed", "bad\\name.txt"),
        ("skipped", "a.css"),
        ("uploaded", "index.html"),
    ]


def test_upload_file_result_carries_the_path(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    path = tmp_path / "report.csv"
    path.write_text("day,count\n1,42\n")
    with uploader_for(seaweed, provider) as uploader:
        assert uploader.upload_file(path).path == str(path)
        assert uploader.upload_bytes(b"x", "x.bin").path is None


@pytest.mark.parametrize("keep_going", [False, True])
def test_upload_dir_stops_when_the_first_file_is_refused(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path, keep_going: bool
) -> None:
    root = tmp_path / "site"
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (root / name).write_text(name)
    events: list[FileEvent] = []
    with uploader_for(seaweed, provider, bucket="app-b", prefix="x/") as uploader:
        result = uploader.upload_dir(root, keep_going=keep_going, on_file=events.append)
    assert not result.ok
    assert keys_in(seaweed, "app-b", "x/") == []
    if keep_going:
        assert [f.path for f in result.failed] == [
            str(root / n) for n in ("a.txt", "b.txt", "c.txt", "d.txt")
        ]
        assert result.not_attempted == []
    else:  # the first file in path order alone, then nothing: the rest would be refused too
        [failed] = result.failed
        assert failed.path == str(root / "a.txt")
        assert result.not_attempted == ["x/b.txt", "x/c.txt", "x/d.txt"]
        assert [(e.status, e.path) for e in events] == [("failed", str(root / "a.txt"))]
    assert {f.error_type for f in result.failed} == {"AccessDeniedError"}
    assert all(isinstance(f.error, AccessDeniedError) for f in result.failed)
    # The advice is one grant on the prefix, never one per object.
    assert all("grant s3:PutObject on arn:aws:s3:::app-b/x/* " in f.reason for f in result.failed)


def test_upload_dir_keeps_going_after_a_later_refusal(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    # Only the first file decides: a refusal after it may be about that one object.
    root = tmp_path / "d"
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(name)
    with uploader_for(seaweed, provider) as uploader:
        original = uploader._transfer

        def refuse_b(source: Any, key: str, *args: Any, **kwargs: Any) -> Any:
            if key.endswith("/b.txt"):
                raise AccessDeniedError("refused", bucket="app-a", key=key, action="s3:PutObject")
            return original(source, key, *args, **kwargs)

        uploader._transfer = refuse_b  # type: ignore[method-assign]
        # Small files after the first go through the CRT from upload_dir's thread: refused
        # there too.
        engine = uploader._clients.crt()
        assert engine is not None
        original_submit = engine.submit

        def refuse_b_on_the_crt(bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
            if key.endswith("/b.txt"):
                raise AccessDeniedError("refused", bucket="app-a", key=key, action="s3:PutObject")
            return original_submit(bucket, key, *args, **kwargs)

        engine.submit = refuse_b_on_the_crt  # type: ignore[method-assign]
        result = uploader.upload_dir(root, keep_going=False)
    assert [r.path for r in result.uploaded] == [str(root / "a.txt"), str(root / "c.txt")]
    assert [f.path for f in result.failed] == [str(root / "b.txt")]
    assert result.not_attempted == []


HOSTILE = [
    "../escape.txt",
    "a/../../b",
    "/absolute",
    "back\\slash",
    "..\\win",
    "a//b",
    "trailing/",
    "./dot",
    "a/./b",
    "nul\x00byte",
    "new\nline",
    "car\rriage",
    "tab\tkey",
    "del\x7f",
    "nel\x85",
    "line\u2028sep",
    "bom\ufeff",
    "",
    ".",
    "..",
    "x" * 1100,
    "é" * 600,
]


def test_hostile_keys_are_refused_and_nothing_written(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    before = set(keys_in(seaweed, "app-a")) | set(keys_in(seaweed, "app-b"))
    with uploader_for(seaweed, provider, prefix="jail/") as uploader:
        for key in HOSTILE:
            with pytest.raises(KeyOutsidePrefixError):
                uploader.upload_bytes(b"x", key)
    assert len(HOSTILE) >= 20
    after = set(keys_in(seaweed, "app-a")) | set(keys_in(seaweed, "app-b"))
    assert after == before


def test_list_and_abort_incomplete_only_under_prefix(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    s3 = seaweed.admin_client("s3")
    try:
        mine = s3.create_multipart_upload(Bucket="app-a", Key="jail2/left.bin")["UploadId"]
        other = s3.create_multipart_upload(Bucket="app-a", Key="elsewhere/left.bin")["UploadId"]
        with uploader_for(seaweed, provider, prefix="jail2/") as uploader:
            listed = uploader.list_incomplete()
            assert [u.upload_id for u in listed] == [mine]
            assert uploader.abort_incomplete(older_than=timedelta(hours=1)) == []  # too young
            aborted = uploader.abort_incomplete(older_than=timedelta(0))
            assert [u.upload_id for u in aborted] == [mine]
            assert uploader.list_incomplete() == []
        remaining = s3.list_multipart_uploads(Bucket="app-a").get("Uploads", [])
        assert other in [u["UploadId"] for u in remaining]
    finally:
        s3.abort_multipart_upload(Bucket="app-a", Key="elsewhere/left.bin", UploadId=other)
        s3.close()


def test_presigned_url_fetches_bytes(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    import requests

    with uploader_for(seaweed, provider) as uploader:
        uploader.upload_bytes(b"shared bytes", "share.txt")
        url = uploader.presigned_url("share.txt", expires_in=300)
    assert requests.get(url, timeout=10).content == b"shared bytes"


def test_aws_cli_reads_back_what_taskcreds_wrote(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 4096
    with uploader_for(seaweed, provider) as uploader:
        result = uploader.upload_bytes(data, "peer.bin")
    creds = provider.get()
    env = {
        "PATH": "/usr/bin:/bin",
        **seaweed.environment(),
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_SESSION_TOKEN": creds.token,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    aws = str(Path(sys.executable).with_name("aws"))
    out = subprocess.run(
        [aws, "s3", "cp", f"s3://app-a/{result.key}", "-"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == data


def test_bucket_from_environment_or_clear_error(provider: taskcreds.CredentialProvider) -> None:
    with pytest.raises(ConfigError, match="TASKCREDS_BUCKET"):
        Uploader(provider=provider, environ={})
    uploader = Uploader(
        provider=provider, environ={"TASKCREDS_BUCKET": "app-a", "TASKCREDS_PREFIX": "logs"}
    )
    assert (uploader.bucket, uploader.prefix) == ("app-a", "logs/")


def test_unreadable_file_fails_alone(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The file vanishes between planning and reading (permissions would not stop root).
    root = tmp_path / "d"
    root.mkdir()
    (root / "good.txt").write_text("fine")
    bad = root / "bad.txt"
    bad.write_text("secret")
    with uploader_for(seaweed, provider) as uploader:
        original = _directory.plan_directory

        def plan_then_remove(*args: Any, **kwargs: Any) -> Any:
            items = list(original(*args, **kwargs))
            bad.unlink()
            return iter(items)

        monkeypatch.setattr(_directory, "plan_directory", plan_then_remove)
        result = uploader.upload_dir(root)
    assert [r.key for r in result.uploaded] == [uploader.key_for("good.txt")]
    assert [f.key for f in result.failed] == [uploader.key_for("bad.txt")]
    assert result.failed[0].error_type == "FileNotFoundError"
    assert isinstance(result.failed[0].error, FileNotFoundError)


# -- upload_dir and a tree changed after it was listed ------------------------------------------

SECRET = b"root:$6$not-for-the-bucket:19000:0:99999:7:::\n"


def all_bytes_under(seaweed: SeaweedFS, prefix: str) -> dict[str, bytes]:
    return {key: read_back(seaweed, "app-a", key) for key in keys_in(seaweed, "app-a", prefix)}


def swap_after(monkeypatch: pytest.MonkeyPatch, step: str, swap: Callable[[], None]) -> None:
    """Run ``swap`` right after ``step`` of ``taskcreds.upload._directory`` (planning, or the
    unchanged check) returns: the moment between the listing and the opening of each file, made
    deterministic."""
    owner: Any = _directory if step == "plan_directory" else _directory._Run
    original = getattr(owner, step)

    def then_swap(*args: Any, **kwargs: Any) -> Any:
        done = original(*args, **kwargs)
        done = list(done) if step == "plan_directory" else done  # planning is a generator
        swap()
        return iter(done) if step == "plan_directory" else done

    monkeypatch.setattr(owner, step, then_swap)


SWAP_POINTS = [
    pytest.param("plan_directory", False, id="after-listing"),
    pytest.param("unchanged_check", True, id="after-unchanged-check"),
    pytest.param("plan_directory", True, id="before-unchanged-check"),
]


@pytest.mark.parametrize(("step", "skip_unchanged"), SWAP_POINTS)
def test_upload_dir_never_follows_a_file_swapped_for_a_symlink(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    tmp_path: Path,
    step: str,
    skip_unchanged: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    root = tmp_path / "site"
    root.mkdir()
    (root / "good.txt").write_text("fine")
    victim = root / "report.txt"
    victim.write_text("the report")

    def swap() -> None:
        victim.unlink()
        victim.symlink_to(secret)

    with uploader_for(seaweed, provider) as uploader:
        swap_after(monkeypatch, step, swap)
        result = uploader.upload_dir(root, skip_unchanged=skip_unchanged)
        stored = all_bytes_under(seaweed, uploader.prefix)
    assert [r.key for r in result.uploaded] == [uploader.key_for("good.txt")]
    assert [(f.key, f.error_type) for f in result.failed] == [
        (uploader.key_for("report.txt"), "UploadError")
    ]
    reason = result.failed[0].reason
    assert str(victim) in reason
    assert "changed since it was listed" in reason
    assert "symbolic link" in reason
    assert SECRET not in stored.values()
    assert stored == {uploader.key_for("good.txt"): b"fine"}


@pytest.mark.parametrize(("step", "skip_unchanged"), SWAP_POINTS)
def test_upload_dir_never_follows_a_directory_swapped_for_a_symlink(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    tmp_path: Path,
    step: str,
    skip_unchanged: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "conf.txt").write_bytes(SECRET)  # same name as the file listed in sub/
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "conf.txt").write_text("harmless")
    (root / "top.txt").write_text("top")

    def swap() -> None:
        (root / "sub").rename(tmp_path / "sub-was-here")
        (root / "sub").symlink_to(outside, target_is_directory=True)

    with uploader_for(seaweed, provider) as uploader:
        swap_after(monkeypatch, step, swap)
        result = uploader.upload_dir(root, skip_unchanged=skip_unchanged)
        stored = all_bytes_under(seaweed, uploader.prefix)
    assert [r.key for r in result.uploaded] == [uploader.key_for("top.txt")]
    assert [(f.key, f.error_type) for f in result.failed] == [
        (uploader.key_for("sub/conf.txt"), "UploadError")
    ]
    reason = result.failed[0].reason
    assert str(root / "sub" / "conf.txt") in reason
    assert f"{root / 'sub'} is now a symbolic link" in reason
    assert SECRET not in stored.values()
    assert stored == {uploader.key_for("top.txt"): b"top"}


def test_upload_dir_refuses_a_file_replaced_after_listing(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not a symlink this time, but another file renamed over the listed one (hard to tell
    # from a swap by its name alone): its inode is not the one listed.
    root = tmp_path / "site"
    root.mkdir()
    listed = root / "a.txt"
    listed.write_text("listed")
    (tmp_path / "other").write_bytes(SECRET)

    with uploader_for(seaweed, provider) as uploader:
        swap_after(monkeypatch, "plan_directory", lambda: (tmp_path / "other").rename(listed))
        result = uploader.upload_dir(root, skip_unchanged=False)
        stored = all_bytes_under(seaweed, uploader.prefix)
    assert result.uploaded == []
    assert [f.error_type for f in result.failed] == ["UploadError"]
    assert "no longer the same file" in result.failed[0].reason
    assert stored == {}


def test_upload_dir_still_uploads_symlinks_inside_the_tree(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    root = tmp_path / "site"
    (root / "real").mkdir(parents=True)
    (root / "real" / "data.txt").write_text("data")
    (root / "alias.txt").symlink_to(root / "real" / "data.txt")
    (root / "linked-dir").symlink_to(root / "real", target_is_directory=True)  # not entered
    (root / "dangling").symlink_to(root / "nowhere")
    (tmp_path / "secret").write_bytes(SECRET)
    (root / "out.txt").symlink_to(tmp_path / "secret")
    with uploader_for(seaweed, provider) as uploader:
        result = uploader.upload_dir(root)
        stored = all_bytes_under(seaweed, uploader.prefix)
    assert stored == {
        uploader.key_for("alias.txt"): b"data",
        uploader.key_for("real/data.txt"): b"data",
    }
    assert [(f.path, f.error_type) for f in result.failed] == [
        (str(root / "out.txt"), "KeyOutsidePrefixError")
    ]
