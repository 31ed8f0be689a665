"""The parts of ``upload_dir``'s CRT lane that need no server (taskcreds/upload/_crt_batch.py,
the listing's path strings and the descriptor read): each file's headers are what one PutObject
of that file would carry, made from what is the same for every file plus its own values."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

import pytest

from taskcreds.upload import _crt, _crt_batch
from taskcreds.upload._checksums import body_checksum
from taskcreds.upload._directory import listed_path
from taskcreds.upload._transfer import read_at_most
from taskcreds.upload.options import SHA256_METADATA, UploadOptions, guess_type

DIGEST = "ab" * 32


def one_put(options: UploadOptions, name: str, body: bytes) -> list[tuple[str, str]]:
    """The headers a single PutObject of file ``name`` sends (the CRT's single-object path)."""
    per_file = options.with_defaults(name=name)
    extra = per_file.extra_args("CRC32C")
    extra["Metadata"] = {**(per_file.metadata or {}), SHA256_METADATA: DIGEST}
    algorithm = str(extra["ChecksumAlgorithm"])
    return _crt.header_list(extra, algorithm, body_checksum(body, algorithm), len(body))


@pytest.mark.parametrize(
    "options",
    [
        UploadOptions(),
        UploadOptions(content_type="text/csv"),
        UploadOptions(
            metadata={"owner": "a", SHA256_METADATA: "replaced"},
            tags={"team": "data"},
            storage_class="STANDARD_IA",
            sse="aws:kms",
            kms_key_id="key-1",
            checksum_algorithm="SHA256",
        ),
    ],
)
def test_each_files_headers_are_those_of_one_put(options: UploadOptions) -> None:
    headers = _crt_batch.lane_headers(options, "CRC32C")
    assert headers is not None
    for name in ("report.csv", "photo.JPG", "archive.tar.gz", "noext", ".bashrc"):
        body = name.encode() * 3
        assert sorted(headers.of(name, body, DIGEST) or []) == sorted(one_put(options, name, body))


@pytest.mark.parametrize(
    "name",
    [
        "a.txt", "b.TXT", "x.tar.gz", "y.tgz", "z.svgz", "..hidden.png", ".png", "a..b",
        "trailing.", "no_suffix", "two.dots.json", "data:image/png,abc", "c.unknownsuffix",
    ],
)  # fmt: skip
def test_the_content_type_cache_answers_as_mimetypes_does(name: str) -> None:
    headers = _crt_batch.lane_headers(UploadOptions(), "CRC32C")
    assert headers is not None
    # Twice each, so the second answer comes from the cache (warmed by a look-alike first).
    for probe in (f"other{name}" if not name.startswith(("data:", ".")) else name, name, name):
        got = dict(headers.of(probe, b"", DIGEST) or [])["Content-Type"]
        assert got == guess_type(probe), probe


def test_a_content_type_that_headers_cannot_carry_leaves_the_file_to_botocore() -> None:
    mimetypes.add_type("text/caf\u00e9", ".cafe-test")
    try:
        headers = _crt_batch.lane_headers(UploadOptions(), "CRC32C")
        assert headers is not None
        assert headers.of("menu.cafe-test", b"x", DIGEST) is None
        assert headers.of("menu.txt", b"x", DIGEST) is not None
    finally:
        mimetypes.types_map.pop(".cafe-test", None)


def test_options_that_headers_cannot_carry_mean_no_lane() -> None:
    assert _crt_batch.lane_headers(UploadOptions(metadata={"name": "caf\u00e9"}), "CRC32C") is None
    assert _crt_batch.lane_headers(UploadOptions(content_type="a\r\nb: c"), "CRC32C") is None


@pytest.mark.parametrize("root", [".", "/", "site", "site/", "./site", "../up", "/tmp/x/"])
def test_listed_paths_read_as_pathlib_writes_them(root: str) -> None:
    for parts in [("f.txt",), ("sub", "deeper", "g"), ("..dots", "x")]:
        assert listed_path(str(Path(root)), parts) == str(Path(root, *parts))


@pytest.mark.parametrize("size", [0, 1, 8192, 200_000])
def test_read_at_most_from_a_descriptor(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    descriptor = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert read_at_most(descriptor, size) == data
        os.lseek(descriptor, 0, os.SEEK_SET)
        assert read_at_most(descriptor, size + 10) == data  # shrank since it was listed
        if size:
            os.lseek(descriptor, 0, os.SEEK_SET)
            assert read_at_most(descriptor, size - 1) is None  # grew since it was listed
    finally:
        os.close(descriptor)
