"""The uploader's events and counts (taskcreds/upload/events.py) against a real SeaweedFS behind
the fault-injecting proxy, with AppA's real STS credentials: retries, credentials S3 refused,
aborted multipart uploads and aborts S3 refused."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import pytest

import taskcreds
from taskcreds import UploadError, telemetry
from taskcreds.local import AgentServer
from taskcreds.telemetry import CredentialEvent
from taskcreds.upload.events import (
    AbortFailedEvent,
    CredentialsRejectedEvent,
    MultipartAbortedEvent,
    RequestRetryEvent,
    UploadEvent,
)
from taskcreds_demo.seaweed import SeaweedFS
from tests.support.s3proxy import INTERNAL_ERROR, S3Proxy

from .test_upload_faults import BOGUS, MULTIPART_SIZE, make_uploader, sequence_source

MiB = 1024 * 1024


@pytest.fixture
def proxy(seaweed: SeaweedFS) -> Iterator[S3Proxy]:
    with S3Proxy(seaweed.s3_endpoint) as running:
        yield running


class Collected:
    """The upload events one listener received (read after telemetry.flush())."""

    def __init__(self) -> None:
        self.events: list[CredentialEvent] = []

    def __call__(self, event: CredentialEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[UploadEvent]) -> list[UploadEvent]:
        assert telemetry.flush(10)
        return [event for event in self.events if isinstance(event, kind)]


def test_a_retried_request_is_reported_with_what_the_attempt_before_met(
    provider: taskcreds.CredentialProvider, proxy: S3Proxy
) -> None:
    collected = Collected()
    proxy.inject("CompleteMultipartUpload", INTERNAL_ERROR, on=(1,))
    data = random.Random(1).randbytes(MULTIPART_SIZE)
    with make_uploader(proxy.url, provider, on_event=collected) as uploader:
        result = uploader.upload_bytes(data, "retried.bin")
        stats = uploader.stats()
    retries = collected.of(RequestRetryEvent)
    assert len(retries) == 1
    retry = retries[0]
    assert isinstance(retry, RequestRetryEvent)
    assert (retry.operation, retry.attempt, retry.code, retry.status) == (
        "CompleteMultipartUpload",
        2,
        "InternalError",
        500,
    )
    assert retry.bucket == "app-a"
    assert retry.key == result.key
    assert retry.source == f"s3://app-a/{uploader.prefix}"
    assert stats.request_retries == 1
    assert stats.multipart_aborted == 0


def test_credentials_s3_refused_are_reported_and_the_listener_of_the_process_sees_them(
    seaweed: SeaweedFS, proxy: S3Proxy
) -> None:
    collected = Collected()
    remove = telemetry.add_listener(collected)
    try:
        with (
            AgentServer(sequence_source(seaweed, {0})) as server,
            taskcreds.CredentialProvider(server.environment()) as provider,
            make_uploader(proxy.url, provider) as uploader,  # through the CRT (a small PUT)
        ):
            result = uploader.upload_bytes(b"after a refresh", "put.txt")
            stats = uploader.stats()
    finally:
        remove()
    rejected = collected.of(CredentialsRejectedEvent)
    assert len(rejected) == 1
    event = rejected[0]
    assert isinstance(event, CredentialsRejectedEvent)
    assert (event.operation, event.code, event.refreshed, event.key) == (
        "PutObject",
        "InvalidAccessKeyId",
        True,
        result.key,
    )
    assert stats.credentials_rejected == 1
    # No secret of either set in any event.
    shown = repr(collected.events)
    assert BOGUS.secret_access_key not in shown
    assert str(BOGUS.token) not in shown


def test_a_failed_multipart_upload_is_reported_aborted(
    provider: taskcreds.CredentialProvider, proxy: S3Proxy
) -> None:
    collected = Collected()
    proxy.inject("UploadPart", INTERNAL_ERROR)
    with make_uploader(proxy.url, provider, max_attempts=2, on_event=collected) as uploader:
        with pytest.raises(UploadError):
            uploader.upload_bytes(random.Random(2).randbytes(MULTIPART_SIZE), "doomed.bin")
        stats = uploader.stats()
        key = uploader.key_for("doomed.bin")
    aborted = collected.of(MultipartAbortedEvent)
    assert [(event.key, bool(getattr(event, "upload_id", ""))) for event in aborted] == [
        (key, True)
    ]
    assert stats.multipart_aborted == 1
    assert stats.abort_failures == 0


def test_an_abort_s3_refuses_is_reported_with_its_upload_id(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, proxy: S3Proxy
) -> None:
    collected = Collected()
    proxy.inject("CompleteMultipartUpload", INTERNAL_ERROR)
    proxy.inject("AbortMultipartUpload", INTERNAL_ERROR)
    with make_uploader(proxy.url, provider, max_attempts=1, on_event=collected) as uploader:
        with pytest.raises(UploadError):
            uploader.upload_bytes(random.Random(3).randbytes(MULTIPART_SIZE), "stuck.bin")
        stats = uploader.stats()
        prefix = uploader.prefix
    failed = collected.of(AbortFailedEvent)
    assert len(failed) == 1
    event = failed[0]
    assert isinstance(event, AbortFailedEvent)
    assert event.upload_id
    assert "InternalError" in event.error
    assert stats.abort_failures == 1
    assert stats.multipart_aborted == 0
    # What the uploader could not abort is still there: aborted here, directly.
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        left = s3.list_multipart_uploads(Bucket="app-a", Prefix=prefix).get("Uploads", [])
        assert [upload["UploadId"] for upload in left] == [event.upload_id]
        s3.abort_multipart_upload(Bucket="app-a", Key=left[0]["Key"], UploadId=event.upload_id)
