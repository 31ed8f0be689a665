"""The Uploader under credential rotation and S3 faults, against a real SeaweedFS.

- Rotation: STS sessions that live 10 s, a 200 MiB multipart upload slowed to last 30 s or more;
  the requests are signed by several successive sessions and the object is byte-exact.
- Expired credentials: S3 answers ``InvalidAccessKeyId`` (what SeaweedFS says for an expired
  session token too); the uploader refreshes once and retries that very request, re-signed.
- Faults: a proxy (``tests.support.s3proxy``) between the uploader and SeaweedFS answers 500 InternalError,
  503 SlowDown, or resets the connection in the middle of a part. One fault: the upload completes
  byte-exact. Faults on every attempt: a clear ``UploadError``. Either way nothing incomplete is
  left under the prefix.
- ``overwrite=False``: 409 ConditionalRequestConflict is retried with backoff (and, when it never
  ends, is not called "already exists"); a write stored by S3 whose answer was lost (the proxy
  forwards it, then hangs up) and whose retry got 412 is recognised as the uploader's own by its
  checksum; a 412 for another writer's object stays ``ObjectExistsError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import taskcreds
from taskcreds import AccessDeniedError, ObjectExistsError, UploadError
from taskcreds.credentials import Credentials
from taskcreds.local import AgentServer
from taskcreds.upload import Uploader
from taskcreds.upload._hooks import CONFLICT_ATTEMPTS
from taskcreds_demo.seaweed import SeaweedFS
from tests.support.s3proxy import (
    CONFLICT,
    DROP_RESPONSE,
    INTERNAL_ERROR,
    RESET,
    SLOW_DOWN,
    Action,
    S3Proxy,
)

MiB = 1024 * 1024
#: Three parts of 5 MiB, 5 MiB and a bit: enough for a fault on a middle part.
MULTIPART_SIZE = 10 * MiB + 12345


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def provider(seaweed: SeaweedFS) -> Iterator[taskcreds.CredentialProvider]:
    """AppA's real STS session credentials, through the local agent endpoint."""
    with (
        AgentServer(lambda: seaweed.assume_role("AppA")) as server,
        taskcreds.CredentialProvider(server.environment()) as provider,
    ):
        yield provider


@pytest.fixture
def proxy(seaweed: SeaweedFS) -> Iterator[S3Proxy]:
    with S3Proxy(seaweed.s3_endpoint) as running:
        yield running


def make_uploader(
    endpoint_url: str, provider: taskcreds.CredentialProvider, **kwargs: Any
) -> Uploader:
    # "t-" prefixes: test_upload.py checks that nothing else is written to app-a.
    return Uploader(
        "app-a",
        f"t-faults-{uuid.uuid4().hex[:8]}/",
        provider=provider,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        environ={},
        part_size=5 * MiB,
        multipart_threshold=5 * MiB,
        **kwargs,
    )


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def object_sha256(seaweed: SeaweedFS, key: str) -> str | None:
    """SHA-256 of the object, streamed (never the whole object in memory); None if missing."""
    digest = hashlib.sha256()
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        try:
            body = s3.get_object(Bucket="app-a", Key=key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        with contextlib.closing(body):
            for block in body.iter_chunks(MiB):
                digest.update(block)
    return digest.hexdigest()


def exists(seaweed: SeaweedFS, key: str) -> bool:
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        listed = s3.list_objects_v2(Bucket="app-a", Prefix=key)
    return any(item["Key"] == key for item in listed.get("Contents", []))


def incomplete_at_s3(seaweed: SeaweedFS, prefix: str) -> list[str]:
    """Upload ids left under ``prefix``, asked directly (not through the proxy or the uploader)."""
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        page = s3.list_multipart_uploads(Bucket="app-a", Prefix=prefix)
    return [upload["UploadId"] for upload in page.get("Uploads", [])]


def assert_nothing_left(seaweed: SeaweedFS, uploader: Uploader) -> None:
    assert uploader.list_incomplete() == []
    assert incomplete_at_s3(seaweed, uploader.prefix) == []


def part_number(query: str) -> str:
    return dict(p.partition("=")[::2] for p in query.split("&"))["partNumber"]


# -- rotation ------------------------------------------------------------------------------------


class Pacer:
    """A progress callback that sleeps so that ``total`` bytes take ``seconds`` overall."""

    def __init__(self, total: int, seconds: float) -> None:
        self._rate = total / seconds
        self._lock = threading.Lock()
        self._sent = 0
        self._start: float | None = None

    def __call__(self, sent: int) -> None:
        with self._lock:
            if self._start is None:
                self._start = time.monotonic()
            self._sent = max(self._sent + sent, 0)  # negative after a retried part
            due = self._start + self._sent / self._rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def test_long_upload_survives_credential_rotation(
    short_lived_seaweed: SeaweedFS, tmp_path: Path
) -> None:
    seaweed = short_lived_seaweed
    # A real STS session, long expired by the end of the upload (used at the very end).
    stale = seaweed.assume_role("AppA")
    size = 200 * MiB
    path = tmp_path / "big.bin"
    expected = hashlib.sha256()
    rng = random.Random(20240601)
    with path.open("wb") as out:
        for _ in range(size // MiB):
            block = rng.randbytes(MiB)
            expected.update(block)
            out.write(block)

    issued: list[Credentials] = []

    def source() -> Credentials:
        credentials = seaweed.assume_role("AppA")  # a fresh 10 s STS session each time
        issued.append(credentials)
        return credentials

    with (
        AgentServer(source) as server,
        taskcreds.CredentialProvider(server.environment()) as provider,
        S3Proxy(seaweed.s3_endpoint) as recorder,  # no faults: it records who signed what
        make_uploader(recorder.url, provider, max_concurrency=4) as uploader,
    ):
        began = time.monotonic()
        result = uploader.upload_file(path, "big.bin", progress=Pacer(size, seconds=32))
        elapsed = time.monotonic() - began
        assert_nothing_left(seaweed, uploader)

    assert elapsed >= 30, elapsed
    assert result.multipart
    assert result.size == size
    assert object_sha256(seaweed, result.key) == expected.hexdigest()
    # The agent handed out a new STS session several times during the upload...
    assert server.request_count >= 3
    assert len({c.access_key_id for c in issued}) >= 3
    # ...and S3 accepted requests signed by several of them: the parts were signed with
    # whichever session was current, not the one the upload started with.
    parts = recorder.of("UploadPart")
    assert len([p for p in parts if p.status == 200]) == size // (5 * MiB)
    signers = {p.access_key for p in parts if p.status == 200}
    assert len(signers) >= 3, signers
    assert signers <= {c.access_key_id for c in issued}
    # A request S3 refused as expired (signed just before a rotation) was retried and succeeded.
    for refused in (p for p in parts if p.status == 403):
        assert any(
            p.status == 200 and p.query == refused.query and p.access_key != refused.access_key
            for p in parts
        )

    # An agent that hands out that expired session as if it were good for another hour: S3
    # refuses it (InvalidAccessKeyId), the uploader refreshes once and the retry succeeds.
    assert stale.expiration < datetime.now(timezone.utc)
    claimed = dataclasses.replace(stale, expiration=datetime.now(timezone.utc) + timedelta(hours=1))
    served = iter([claimed])
    with (
        AgentServer(lambda: next(served, None) or seaweed.assume_role("AppA")) as server,
        taskcreds.CredentialProvider(server.environment()) as provider,
        S3Proxy(seaweed.s3_endpoint) as recorder,
        make_uploader(recorder.url, provider) as uploader,
    ):
        small = uploader.upload_bytes(b"signed again", "after-expiry.txt")
    assert [(p.status, p.access_key == stale.access_key_id) for p in recorder.of("PutObject")] == [
        (403, True),
        (200, False),
    ]
    assert server.request_count == 2
    assert object_sha256(seaweed, small.key) == hashlib.sha256(b"signed again").hexdigest()


# -- S3 says the credentials are gone: one refresh, one retry of that request -------------------

BOGUS = Credentials(
    access_key_id="ASIAGONEGONEGONE0001",
    secret_access_key="x" * 40,
    token="no-such-session",
    expiration=datetime.now(timezone.utc) + timedelta(hours=1),
)


def sequence_source(seaweed: SeaweedFS, bogus_calls: set[int]) -> Callable[[], Credentials]:
    """A source that answers with a set S3 does not know on the given calls (0-based)."""
    calls = itertools.count()

    def source() -> Credentials:
        return BOGUS if next(calls) in bogus_calls else seaweed.assume_role("AppA")

    return source


def test_invalid_access_key_on_put_refreshes_and_retries(
    seaweed: SeaweedFS, proxy: S3Proxy
) -> None:
    # The provider's first set looks valid for an hour, but S3 no longer knows it.
    with (
        AgentServer(sequence_source(seaweed, {0})) as server,
        taskcreds.CredentialProvider(server.environment()) as provider,
        make_uploader(proxy.url, provider) as uploader,
    ):
        result = uploader.upload_bytes(b"after a refresh", "put.txt")
    puts = proxy.of("PutObject")
    assert [(p.status, p.access_key == BOGUS.access_key_id) for p in puts] == [
        (403, True),
        (200, False),
    ]
    assert server.request_count == 2  # the first set, and one forced refresh
    assert object_sha256(seaweed, result.key) == hashlib.sha256(b"after a refresh").hexdigest()


def test_invalid_access_key_on_a_part_retries_that_part_with_new_credentials(
    seaweed: SeaweedFS, proxy: S3Proxy
) -> None:
    data = payload(MULTIPART_SIZE, seed=7)
    with (
        AgentServer(sequence_source(seaweed, {1})) as server,
        taskcreds.CredentialProvider(server.environment()) as provider,
        make_uploader(proxy.url, provider, max_concurrency=1) as uploader,
    ):
        rotated = threading.Event()

        def rotate_once(_: int) -> None:
            # While part 1 is on the wire, the provider takes a set S3 does not know: part 2 is
            # signed with it and refused.
            if not rotated.is_set():
                rotated.set()
                provider.refresh()

        result = uploader.upload_bytes(data, "part.bin", progress=rotate_once)
        assert_nothing_left(seaweed, uploader)
    parts = proxy.of("UploadPart")
    refused = [p for p in parts if p.status == 403]
    assert len(refused) == 1
    assert refused[0].access_key == BOGUS.access_key_id
    retried = [p for p in parts if p.query == refused[0].query and p.status == 200]
    # The same part of the same upload id, signed again with the refreshed set.
    assert len(retried) == 1
    assert retried[0].access_key not in (None, BOGUS.access_key_id)
    assert part_number(refused[0].query) == "2"
    assert server.request_count == 3
    assert [p.status for p in proxy.of("CompleteMultipartUpload")] == [200]
    assert object_sha256(seaweed, result.key) == hashlib.sha256(data).hexdigest()


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("UploadPart", INTERNAL_ERROR),
        ("UploadPart", SLOW_DOWN),
        ("UploadPart", RESET),
        ("CreateMultipartUpload", SLOW_DOWN),
        ("CompleteMultipartUpload", INTERNAL_ERROR),
    ],
)
def test_one_fault_multipart_completes_byte_exact(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    proxy: S3Proxy,
    operation: str,
    action: Action,
) -> None:
    data = payload(MULTIPART_SIZE, seed=1)
    fault = proxy.inject(operation, action, on=(2,) if operation == "UploadPart" else (1,))
    with make_uploader(proxy.url, provider, max_concurrency=4) as uploader:
        result = uploader.upload_bytes(data, "one-fault.bin")
        assert_nothing_left(seaweed, uploader)
    assert fault.hits == 1
    assert result.multipart
    assert result.size == len(data)
    assert object_sha256(seaweed, result.key) == hashlib.sha256(data).hexdigest()
    faulted = [r for r in proxy.of(operation) if r.fault]
    assert len(faulted) == 1
    # The request that met the fault was sent again and succeeded (same part, same upload id).
    assert any(r.status == 200 and r.query == faulted[0].query for r in proxy.of(operation))
    assert proxy.of("AbortMultipartUpload") == []


def test_one_slow_down_on_put_object_succeeds(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, proxy: S3Proxy
) -> None:
    proxy.inject("PutObject", SLOW_DOWN, on=(1,))
    with make_uploader(proxy.url, provider) as uploader:
        result = uploader.upload_bytes(b"small and retried", "small.txt")
    assert not result.multipart
    assert [r.status for r in proxy.of("PutObject")] == [503, 200]
    assert object_sha256(seaweed, result.key) == hashlib.sha256(b"small and retried").hexdigest()


def test_persistent_500_on_parts_fails_clearly_and_leaves_nothing(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, proxy: S3Proxy
) -> None:
    proxy.inject("UploadPart", INTERNAL_ERROR)  # every attempt of every part
    with make_uploader(proxy.url, provider, max_attempts=3) as uploader:
        with pytest.raises(UploadError) as info:
            uploader.upload_bytes(payload(MULTIPART_SIZE, seed=2), "doomed.bin")
        key = uploader.key_for("doomed.bin")
        assert_nothing_left(seaweed, uploader)
    error = info.value
    assert type(error) is UploadError  # not AccessDeniedError, not a raw botocore exception
    assert not isinstance(error, AccessDeniedError)
    assert isinstance(error.__cause__, ClientError)
    assert "InternalError" in str(error)
    assert f"s3://app-a/{key}" in str(error)
    assert error.bucket == "app-a"
    assert error.key == key
    # Parts were tried max_attempts times (never more), then the upload was aborted.
    parts = proxy.of("UploadPart")
    assert {r.status for r in parts} == {500}
    tries = Counter(part_number(r.query) for r in parts)
    assert max(tries.values()) == 3
    assert [r.status for r in proxy.of("AbortMultipartUpload")][:1] == [204]
    assert proxy.of("CompleteMultipartUpload") == []
    assert not exists(seaweed, key)


def test_persistent_slow_down_on_complete_aborts_the_upload(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, proxy: S3Proxy
) -> None:
    proxy.inject("CompleteMultipartUpload", SLOW_DOWN)
    with make_uploader(proxy.url, provider, max_attempts=3) as uploader:
        with pytest.raises(UploadError) as info:
            uploader.upload_bytes(payload(MULTIPART_SIZE, seed=3), "never-completed.bin")
        key = uploader.key_for("never-completed.bin")
        assert_nothing_left(seaweed, uploader)
    assert type(info.value) is UploadError
    assert "SlowDown" in str(info.value)
    assert "Please reduce your request rate." in str(info.value)
    assert [r.status for r in proxy.of("UploadPart")] == [200, 200, 200]
    assert [r.status for r in proxy.of("CompleteMultipartUpload")] == [503, 503, 503]
    assert 204 in [r.status for r in proxy.of("AbortMultipartUpload")]
    assert not exists(seaweed, key)


def test_persistent_reset_on_single_put_fails_clearly(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, proxy: S3Proxy
) -> None:
    proxy.inject("PutObject", RESET)
    with make_uploader(proxy.url, provider, max_attempts=2) as uploader:
        with pytest.raises(UploadError) as info:
            uploader.upload_bytes(payload(1 * MiB, seed=4), "cut.bin")
        key = uploader.key_for("cut.bin")
        assert_nothing_left(seaweed, uploader)
    assert type(info.value) is UploadError
    assert f"s3://app-a/{key}" in str(info.value)
    assert len(proxy.of("PutObject")) == 2
    assert not exists(seaweed, key)


# -- overwrite=False under faults: 409 retried, a lost answer resolved by checksum ---------------


def admin_put(seaweed: SeaweedFS, key: str, data: bytes) -> None:
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        s3.put_object(Bucket="app-a", Key=key, Body=data)


def statuses(proxy: S3Proxy, operation: str) -> list[tuple[int | None, str | None]]:
    return [(r.status, r.fault) for r in proxy.of(operation)]


@pytest.fixture
def slept() -> list[float]:
    return []


def no_overwrite_uploader(
    proxy: S3Proxy, provider: taskcreds.CredentialProvider, slept: list[float], **kwargs: Any
) -> Uploader:
    uploader = make_uploader(proxy.url, provider, **kwargs)
    uploader._sleep = slept.append  # the 409 backoff, recorded instead of waited
    return uploader


@pytest.mark.parametrize("size", [1000, MULTIPART_SIZE], ids=["put", "multipart"])
def test_conflict_409_is_retried_and_the_write_lands(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    proxy: S3Proxy,
    slept: list[float],
    size: int,
) -> None:
    operation = "PutObject" if size < 5 * MiB else "CompleteMultipartUpload"
    data = payload(size, seed=11)
    proxy.inject(operation, CONFLICT, on=(1, 2))  # a competing write in flight, twice
    with no_overwrite_uploader(proxy, provider, slept) as uploader:
        result = uploader.upload_bytes(data, "contended.bin", overwrite=False)
        assert_nothing_left(seaweed, uploader)
    assert statuses(proxy, operation) == [(409, CONFLICT), (409, CONFLICT), (200, None)]
    assert len(slept) == 2  # backed off before each retry
    assert all(0 <= delay <= 5.0 for delay in slept)
    assert result.multipart is (size >= 5 * MiB)
    assert object_sha256(seaweed, result.key) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [1000, MULTIPART_SIZE], ids=["put", "multipart"])
def test_conflict_409_on_every_attempt_is_not_reported_as_existing(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    proxy: S3Proxy,
    slept: list[float],
    size: int,
) -> None:
    operation = "PutObject" if size < 5 * MiB else "CompleteMultipartUpload"
    proxy.inject(operation, CONFLICT)
    with no_overwrite_uploader(proxy, provider, slept) as uploader:
        with pytest.raises(UploadError) as info:
            uploader.upload_bytes(payload(size, seed=12), "never.bin", overwrite=False)
        key = uploader.key_for("never.bin")
        assert_nothing_left(seaweed, uploader)
    assert not isinstance(info.value, ObjectExistsError)  # nothing is known to be there
    assert "ConditionalRequestConflict" in str(info.value)
    assert len(proxy.of(operation)) == CONFLICT_ATTEMPTS  # bounded
    assert len(slept) == CONFLICT_ATTEMPTS - 1
    assert not exists(seaweed, key)


def test_conflict_then_the_competitor_won_is_object_exists(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, proxy: S3Proxy, slept: list[float]
) -> None:
    # The competing write in flight was stored: even with the very same bytes, it is not ours.
    data = b"the same bytes"
    proxy.inject("PutObject", CONFLICT, on=(1,))
    with no_overwrite_uploader(proxy, provider, slept) as uploader:
        key = uploader.key_for("raced.txt")
        admin_put(seaweed, key, data)
        with pytest.raises(ObjectExistsError):
            uploader.upload_bytes(data, "raced.txt", overwrite=False)
    assert statuses(proxy, "PutObject") == [(409, CONFLICT), (412, None)]
    assert proxy.of("HEAD") == []  # no lost answer: nothing to check


@pytest.mark.parametrize("size", [1000, MULTIPART_SIZE], ids=["put", "multipart"])
def test_lost_answer_then_412_for_our_own_write_is_success(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    proxy: S3Proxy,
    slept: list[float],
    size: int,
) -> None:
    operation = "PutObject" if size < 5 * MiB else "CompleteMultipartUpload"
    data = payload(size, seed=13)
    # The write reaches S3 and is stored; its answer never comes back. botocore retries, and
    # S3 refuses the retry (412): the key is taken, by this very write.
    proxy.inject(operation, DROP_RESPONSE, on=(1,))
    with no_overwrite_uploader(proxy, provider, slept) as uploader:
        result = uploader.upload_bytes(data, "lost-answer.bin", overwrite=False)
        assert_nothing_left(seaweed, uploader)
    assert statuses(proxy, operation) == [(200, DROP_RESPONSE), (412, None)]
    assert [r.status for r in proxy.of("HEAD")] == [200]  # the check
    assert object_sha256(seaweed, result.key) == hashlib.sha256(data).hexdigest()
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        head = s3.head_object(Bucket="app-a", Key=result.key, ChecksumMode="ENABLED")
    assert result.checksum_algorithm == "CRC32C"
    assert result.checksum == head["ChecksumCRC32C"]
    assert result.etag == head["ETag"]
    assert result.size == size
    assert result.multipart is (size >= 5 * MiB)
    assert slept == []


@pytest.mark.parametrize("size", [1000, MULTIPART_SIZE], ids=["put", "multipart"])
def test_unknown_outcome_then_412_for_someone_elses_object_is_object_exists(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    proxy: S3Proxy,
    slept: list[float],
    size: int,
) -> None:
    operation = "PutObject" if size < 5 * MiB else "CompleteMultipartUpload"
    theirs = payload(size, seed=14)
    # A 500 may follow a stored write, so the 412 on the retry is checked, and the object
    # (another writer's, same size, other bytes) is not ours.
    proxy.inject(operation, INTERNAL_ERROR, on=(1,))
    with no_overwrite_uploader(proxy, provider, slept) as uploader:
        key = uploader.key_for("theirs.bin")
        admin_put(seaweed, key, theirs)
        with pytest.raises(ObjectExistsError):
            uploader.upload_bytes(payload(size, seed=15), "theirs.bin", overwrite=False)
        assert_nothing_left(seaweed, uploader)
    assert statuses(proxy, operation) == [(500, INTERNAL_ERROR), (412, None)]
    assert [r.status for r in proxy.of("HEAD")] == [200]
    assert object_sha256(seaweed, key) == hashlib.sha256(theirs).hexdigest()


def test_lost_answer_in_upload_dir_no_overwrite_is_uploaded(
    seaweed: SeaweedFS,
    provider: taskcreds.CredentialProvider,
    proxy: S3Proxy,
    slept: list[float],
    tmp_path: Path,
) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    proxy.inject("PutObject", DROP_RESPONSE, on=(1,))
    with no_overwrite_uploader(proxy, provider, slept) as uploader:
        result = uploader.upload_dir(tmp_path, overwrite=False)
    assert result.ok, result.failed
    assert [r.key for r in result.uploaded] == [uploader.key_for("a.txt")]
    assert statuses(proxy, "PutObject") == [(200, DROP_RESPONSE), (412, None)]


# -- a process killed mid-upload -----------------------------------------------------------------

#: The child: uploads a 3-part file with its own provider (the agent's real STS credentials), and
#: once the first part is acknowledged (the first byte of the second part is read: with one
#: request at a time, part 2 starts only after part 1's answer) says so on stdout and blocks
#: in the callback until it is killed.
_KILLED_CHILD = """
import sys, threading
import taskcreds
from taskcreds.upload import Uploader

path, prefix, endpoint_url, region, part_size = sys.argv[1:6]
part_size = int(part_size)
sent = 0
told = False

def progress(count):
    global sent, told
    sent += count
    if sent > part_size and not told:
        told = True
        print("first part sent", flush=True)
        threading.Event().wait()  # never set: the parent kills this process

provider = taskcreds.CredentialProvider()
uploader = Uploader(
    "app-a", prefix, provider=provider, endpoint_url=endpoint_url, region_name=region,
    environ={}, part_size=part_size, multipart_threshold=part_size, max_concurrency=1,
)
uploader.upload_file(path, "big.bin", progress=progress)
print("finished: the parent should have killed this process", flush=True)
"""


def test_killed_mid_upload_then_abort_incomplete(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(payload(MULTIPART_SIZE, seed=9))  # three parts of 5 MiB
    prefix = f"t-killed-{uuid.uuid4().hex[:8]}/"
    with AgentServer(lambda: seaweed.assume_role("AppA")) as agent:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,  # 127.0.0.1 only
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        argv = [str(path), prefix, seaweed.s3_endpoint, seaweed.region, str(5 * MiB)]
        child = subprocess.Popen(
            [sys.executable, "-c", _KILLED_CHILD, *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            said = child.stdout.readline()  # blocks until the child says so (or exits)
            if said != "first part sent\n":
                child.kill()
                _, stderr = child.communicate(timeout=30)
                pytest.fail(f"the child said {said!r}; its stderr:\n{stderr[-3000:]}")
            child.send_signal(signal.SIGKILL)  # no cleanup can run: no abort, no atexit
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()

    key = f"{prefix}big.bin"
    with make_uploader(seaweed.s3_endpoint, provider) as uploader:
        uploader.prefix = prefix  # the killed process's prefix
        [left] = uploader.list_incomplete()
        assert (left.bucket, left.key) == ("app-a", key)
        assert incomplete_at_s3(seaweed, prefix) == [left.upload_id]
        with contextlib.closing(seaweed.admin_client("s3")) as s3:
            parts = s3.list_parts(Bucket="app-a", Key=key, UploadId=left.upload_id)
        assert [part["PartNumber"] for part in parts.get("Parts", [])][:1] == [1]
        assert uploader.abort_incomplete(older_than=timedelta(0)) == [left]
        assert_nothing_left(seaweed, uploader)
    assert not exists(seaweed, key)
