"""Multipart uploads whose parts the CRT sends (taskcreds/upload/_crt_multipart.py), against
SeaweedFS with AppA's real STS credentials: that it is the path taken, what it stores, and that a
failure or an interruption leaves no incomplete upload. The fault and rotation tests of
test_upload_faults.py run through it too (files and bytes above the threshold take it)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

import taskcreds
from taskcreds import ObjectExistsError, UploadError
from taskcreds.upload import Uploader
from taskcreds_demo.seaweed import SeaweedFS

from .test_upload import uploader_for
from .test_upload_crt import head, requests_alive

MiB = 1024 * 1024
SIZE = 12 * MiB + 4321  # three parts of 5 MiB


def parts_only_through_the_crt(uploader: Uploader) -> None:
    """Make botocore's UploadPart and s3transfer fail: only the CRT can send the parts."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a part was sent by botocore or s3transfer")

    for overwrite in (True, False):
        uploader._client(overwrite=overwrite).upload_part = refuse  # type: ignore[method-assign]
    uploader._clients.manager = refuse  # type: ignore[method-assign]


def multipart_uploader(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, **kwargs: Any
) -> Uploader:
    return uploader_for(seaweed, provider, part_size=5 * MiB, multipart_threshold=5 * MiB, **kwargs)


def write_file(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def incomplete(seaweed: SeaweedFS, prefix: str) -> list[str]:
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        listed = s3.list_multipart_uploads(Bucket="app-a", Prefix=prefix)
    return [upload["UploadId"] for upload in listed.get("Uploads", [])]


def test_a_file_is_sent_in_parts_by_the_crt_with_its_options(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    data = write_file(tmp_path / "big.bin", SIZE, seed=1)
    progress: list[int] = []
    with multipart_uploader(seaweed, provider) as uploader:
        parts_only_through_the_crt(uploader)
        result = uploader.upload_file(
            tmp_path / "big.bin",
            "parts/big.bin",
            metadata={"owner": "app-a"},
            tags={"team": "data"},
            content_type="application/x-big",
            progress=progress.append,
        )
        assert uploader.list_incomplete() == []
    stored = head(seaweed, result.key)
    assert hashlib.sha256(stored["Body"]).digest() == hashlib.sha256(data).digest()
    assert stored["ContentType"] == "application/x-big"
    assert stored["Metadata"] == {"owner": "app-a"}
    assert stored["Tags"] == {"team": "data"}
    assert result.multipart
    assert result.size == SIZE
    assert result.etag == stored["ETag"]
    assert str(result.etag).strip('"').endswith("-3")
    assert result.checksum_algorithm == "CRC32C"
    assert result.checksum == stored["ChecksumCRC32C"]
    assert sorted(progress) == sorted([5 * MiB, 5 * MiB, SIZE - 10 * MiB])  # as parts end


def test_parts_keep_no_request_once_the_upload_returns(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    data = write_file(tmp_path / "big.bin", SIZE, seed=5)
    before = requests_alive()
    with multipart_uploader(seaweed, provider) as uploader:
        parts_only_through_the_crt(uploader)
        uploader.upload_file(tmp_path / "big.bin", "leak/big.bin")
        uploader.upload_bytes(data, "leak/big-bytes.bin")
        assert requests_alive() == before


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_each_parts_checksum_is_sent_and_the_composite_stored(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, algorithm: str
) -> None:
    data = random.Random(2).randbytes(SIZE)
    with multipart_uploader(seaweed, provider, checksum_algorithm=algorithm) as uploader:
        parts_only_through_the_crt(uploader)
        result = uploader.upload_bytes(data, f"parts-{algorithm}.bin")
    stored = head(seaweed, result.key)
    assert stored["Body"] == data
    assert result.checksum == stored[f"Checksum{algorithm}"]
    assert str(result.checksum).endswith("-3")


def test_no_overwrite_in_parts_refuses_an_existing_object_and_leaves_nothing(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    first = write_file(tmp_path / "first.bin", SIZE, seed=3)
    write_file(tmp_path / "second.bin", SIZE, seed=4)
    with multipart_uploader(seaweed, provider) as uploader:
        parts_only_through_the_crt(uploader)
        result = uploader.upload_file(tmp_path / "first.bin", "once.bin", overwrite=False)
        assert result.multipart
        with pytest.raises(ObjectExistsError):
            uploader.upload_file(tmp_path / "second.bin", "once.bin", overwrite=False)
        assert uploader.list_incomplete() == []
        assert incomplete(seaweed, uploader.prefix) == []
    assert head(seaweed, result.key)["Body"] == first


def test_a_file_that_shrinks_while_it_is_sent_fails_and_leaves_nothing(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    path = tmp_path / "shrinking.bin"
    write_file(path, SIZE, seed=5)

    def truncate(_: int) -> None:
        os.truncate(path, MiB)  # after the first part: the others cannot be read whole

    with multipart_uploader(seaweed, provider, max_concurrency=1) as uploader:
        parts_only_through_the_crt(uploader)
        with pytest.raises(UploadError) as failed:
            uploader.upload_file(path, "shrinking.bin", progress=truncate)
        assert uploader.list_incomplete() == []
        assert incomplete(seaweed, uploader.prefix) == []
        key = uploader.key_for("shrinking.bin")
    assert f"s3://app-a/{key}" in str(failed.value)
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        assert s3.list_objects_v2(Bucket="app-a", Prefix=key).get("KeyCount") == 0


def test_an_interrupted_upload_cancels_its_parts_and_is_aborted(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    write_file(tmp_path / "big.bin", 4 * SIZE, seed=6)

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    with multipart_uploader(seaweed, provider, max_concurrency=2) as uploader:
        parts_only_through_the_crt(uploader)
        with pytest.raises(KeyboardInterrupt):
            uploader.upload_file(tmp_path / "big.bin", "interrupted.bin", progress=interrupt)
        assert uploader.list_incomplete() == []
        assert incomplete(seaweed, uploader.prefix) == []


def test_a_stream_of_unknown_size_still_goes_through_s3transfer(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    data = random.Random(7).randbytes(SIZE)
    with multipart_uploader(seaweed, provider) as uploader:
        sent_by_s3transfer: list[bool] = []
        manager = uploader._clients.manager

        def recording(*, overwrite: bool) -> Any:
            sent_by_s3transfer.append(True)
            return manager(overwrite=overwrite)

        uploader._clients.manager = recording  # type: ignore[method-assign]
        result = uploader.upload_fileobj(_Unseekable(data), "stream.bin")
    assert sent_by_s3transfer
    assert result.multipart
    assert head(seaweed, result.key)["Body"] == data


class _Unseekable:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._position + size
        chunk = bytes(self._data[self._position : end])
        self._position += len(chunk)
        return chunk

    def seekable(self) -> bool:
        return False
