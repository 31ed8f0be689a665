"""taskcreds.aio.AsyncUploader against SeaweedFS with AppA's real STS credentials: the sync
uploader's guarantees from asyncio, callbacks on the loop, and cancellation that leaves no
incomplete multipart upload."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import taskcreds
from taskcreds import AccessDeniedError, KeyOutsidePrefixError, ObjectExistsError
from taskcreds.aio import AsyncCredentialProvider, AsyncUploader
from taskcreds.local import AgentServer
from taskcreds.upload.results import FileEvent
from taskcreds_demo.seaweed import SeaweedFS

from .test_upload_crt import head

MiB = 1024 * 1024


def async_uploader(
    seaweed: SeaweedFS, provider: Any, bucket: str = "app-a", **kwargs: Any
) -> AsyncUploader:
    return AsyncUploader(
        bucket,
        f"t-aio-{uuid.uuid4().hex[:8]}/",
        provider=provider,
        endpoint_url=seaweed.s3_endpoint,
        region_name=seaweed.region,
        environ={},
        **kwargs,
    )


def incomplete(seaweed: SeaweedFS, prefix: str) -> list[str]:
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        listed = s3.list_multipart_uploads(Bucket="app-a", Prefix=prefix)
    return [upload["UploadId"] for upload in listed.get("Uploads", [])]


def test_uploads_from_asyncio_store_what_the_sync_uploader_stores(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    big = random.Random(1).randbytes(12 * MiB)
    (tmp_path / "big.bin").write_bytes(big)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for index in range(12):
        (tree / ("sub" if index % 2 else "") / f"f{index}.txt").write_bytes(b"%d" % index * 50)

    async def scenario() -> tuple[Any, ...]:
        loop_thread = threading.current_thread()
        on_loop: list[bool] = []
        progress: list[int] = []

        def seen(event: FileEvent) -> None:
            on_loop.append(threading.current_thread() is loop_thread)

        def sent(count: int) -> None:
            on_loop.append(threading.current_thread() is loop_thread)
            progress.append(count)

        async with (
            AsyncCredentialProvider.wrap(provider) as wrapped,
            async_uploader(seaweed, wrapped, part_size=5 * MiB) as uploader,
        ):
            small = await uploader.upload_bytes(b"hello from asyncio", "hello.txt")
            large = await uploader.upload_file(tmp_path / "big.bin", "big.bin", progress=sent)
            listed = await uploader.upload_dir(tree, on_file=seen)
            await asyncio.sleep(0)  # let the callbacks queued on the loop run
            return small, large, listed, on_loop, progress

    small, large, listed, on_loop, progress = asyncio.run(scenario())
    assert head(seaweed, small.key)["Body"] == b"hello from asyncio"
    assert head(seaweed, large.key)["Body"] == big
    assert large.multipart
    assert sum(progress) == len(big)
    assert len(listed.uploaded) == 12
    assert not listed.failed
    assert on_loop
    assert all(on_loop)


def test_isolation_no_overwrite_and_hostile_keys_keep_their_typed_errors(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    async def scenario() -> None:
        async with async_uploader(seaweed, provider) as uploader:
            await uploader.upload_bytes(b"first", "once.txt", overwrite=False)
            with pytest.raises(ObjectExistsError):
                await uploader.upload_bytes(b"second", "once.txt", overwrite=False)
            for hostile in ("../escape.txt", "/absolute.txt", "a/../../b.txt"):
                with pytest.raises(KeyOutsidePrefixError):
                    await uploader.upload_bytes(b"x", hostile)
        async with async_uploader(seaweed, provider, bucket="app-b") as other:
            with pytest.raises(AccessDeniedError) as denied:
                await other.upload_bytes(b"not mine", "intrusion.txt")
            assert denied.value.action == "s3:PutObject"

    asyncio.run(scenario())


def test_a_cancelled_multipart_upload_is_aborted_before_the_cancellation_returns(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(random.Random(2).randbytes(40 * MiB))

    async def scenario() -> tuple[str, str]:
        first_part = asyncio.Event()
        async with async_uploader(
            seaweed, provider, part_size=5 * MiB, max_concurrency=1
        ) as uploader:
            task = asyncio.create_task(
                uploader.upload_file(
                    tmp_path / "big.bin", "cancelled.bin", progress=lambda _: first_part.set()
                )
            )
            await first_part.wait()  # a part is stored: the multipart upload exists
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Checked before the uploader closes: the abort happened before CancelledError.
            return uploader.prefix, uploader.key_for("cancelled.bin")

    prefix, key = asyncio.run(scenario())
    assert incomplete(seaweed, prefix) == []
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        assert s3.list_objects_v2(Bucket="app-a", Prefix=key).get("KeyCount") == 0


def test_uploads_beyond_max_workers_wait_for_a_thread(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    async def scenario() -> int:
        running, most = [0], [0]
        lock = threading.Lock()
        async with async_uploader(seaweed, provider, max_workers=2) as uploader:
            original = uploader.uploader.upload_bytes

            def counted(*args: Any, **kwargs: Any) -> Any:
                with lock:
                    running[0] += 1
                    most[0] = max(most[0], running[0])
                try:
                    return original(*args, **kwargs)
                finally:
                    with lock:
                        running[0] -= 1

            uploader.uploader.upload_bytes = counted  # type: ignore[method-assign]
            await asyncio.gather(*(uploader.upload_bytes(b"%d" % n, f"n{n}.txt") for n in range(8)))
        return most[0]

    assert asyncio.run(scenario()) <= 2


class PacedStream(io.RawIOBase):
    """``data`` read at ``len(data) / seconds`` bytes per second (the read sleeps in the thread
    that uploads, never on the loop): an upload that lasts through several rotations."""

    def __init__(self, data: bytes, seconds: float) -> None:
        self._data = memoryview(data)
        self._position = 0
        self._rate = len(data) / seconds
        self._started: float | None = None
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def readinto(self, into: Any) -> int:
        with self._lock:
            if self._started is None:
                self._started = time.monotonic()
            chunk = self._data[self._position : self._position + len(into)]
            into[: len(chunk)] = chunk
            self._position += len(chunk)
            due = self._started + self._position / self._rate
        threading.Event().wait(max(due - time.monotonic(), 0.0))  # pacing, not synchronisation
        return len(chunk)


def test_an_async_upload_survives_credential_rotation_over_30_seconds(
    short_lived_seaweed: SeaweedFS,
) -> None:
    seaweed = short_lived_seaweed  # STS sessions of 10 s
    data = random.Random(3).randbytes(60 * MiB)
    issued: list[str] = []

    def source() -> Any:
        credentials = seaweed.assume_role("AppA")
        issued.append(credentials.access_key_id)
        return credentials

    async def scenario() -> tuple[Any, float, list[str]]:
        with AgentServer(source) as server:
            async with (
                AsyncCredentialProvider(server.environment()) as provider,
                async_uploader(seaweed, provider, part_size=5 * MiB, max_concurrency=4) as up,
            ):
                loop = asyncio.get_running_loop()
                started = loop.time()
                stream = io.BufferedReader(PacedStream(data, seconds=32))
                result = await up.upload_fileobj(stream, "rotated.bin")
                return result, loop.time() - started, incomplete(seaweed, up.prefix)

    result, elapsed, left = asyncio.run(scenario())
    assert elapsed >= 30, elapsed
    assert result.multipart
    assert result.size == len(data)
    assert left == []
    assert len(set(issued)) >= 3  # the agent handed out new sessions during the upload
    assert hashlib.sha256(head(seaweed, result.key)["Body"]).digest() == (
        hashlib.sha256(data).digest()
    )
