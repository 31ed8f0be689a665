"""The upload hooks: the ExpiredToken refresh (parts rejected together all retry with the new
set); no-overwrite writes (409 retried with backoff, lost answers noted); the checksums."""

from __future__ import annotations

import io
import threading
import time
from datetime import datetime, timedelta, timezone

from taskcreds import CredentialProvider, Credentials
from taskcreds.fetch import FetchResult
from taskcreds.upload._checksums import body_checksum, composite_checksum, multipart_etag
from taskcreds.upload._hooks import CONFLICT_BACKOFF_CAP, Ledger, NoOverwrite, RefreshOnExpired

EXPIRED = ({}, {"Error": {"Code": "ExpiredToken", "Message": "expired"}})


class SlowFetcher:
    deadline = 5.0

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def fetch(self, endpoint: object) -> FetchResult:
        with self._lock:
            self.calls += 1
            n = self.calls
        if n > 1:
            time.sleep(0.3)  # the agent takes a while
        expiration = datetime.now(timezone.utc) + timedelta(hours=1)
        return FetchResult(Credentials(f"ASIAKEY{n:013d}", "s", "t", expiration), None, 1, 0.0)

    def reset_after_fork(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_requests_rejected_during_a_refresh_retry_with_the_new_set() -> None:
    fetcher = SlowFetcher()
    provider = CredentialProvider(
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"},
        fetcher=fetcher,  # type: ignore[arg-type]
    )
    old = provider.get()
    hook = RefreshOnExpired(provider)
    signed_with: dict[str, str] = {}

    def part(name: str, delay: float) -> None:
        time.sleep(delay)
        assert hook._needs_retry(response=EXPIRED, request_dict={"context": {}}) == 0.0
        signed_with[name] = provider.get().access_key_id  # what the retry is signed with

    threads = [threading.Thread(target=part, args=(f"p{i}", i * 0.02)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert fetcher.calls == 2  # one forced refresh for all four parts
    assert set(signed_with.values()) == {"ASIAKEY0000000000002"}
    assert old.access_key_id not in signed_with.values()


def test_one_retry_per_request() -> None:
    fetcher = SlowFetcher()
    provider = CredentialProvider(
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"},
        fetcher=fetcher,  # type: ignore[arg-type]
    )
    hook = RefreshOnExpired(provider)
    request = {"context": {}}
    assert hook._needs_retry(response=EXPIRED, request_dict=request) == 0.0
    assert hook._needs_retry(response=EXPIRED, request_dict=request) is None
    other = ({}, {"Error": {"Code": "SlowDown"}})
    assert hook._needs_retry(response=other, request_dict={"context": {}}) is None


# -- no-overwrite writes: 409 retried with backoff, lost answers noted -------------------------


class FakeHTTP:
    def __init__(self, status: int) -> None:
        self.status_code = status


def answer(status: int, code: str) -> tuple[FakeHTTP, dict[str, object]]:
    return FakeHTTP(status), {"Error": {"Code": code, "Message": "x"}}


CONFLICT = answer(409, "ConditionalRequestConflict")


def test_conflict_is_retried_with_bounded_backoff_then_given_up() -> None:
    slept: list[float] = []
    hook = NoOverwrite(attempts=4, sleep=slept.append)
    request: dict[str, object] = {"context": {}}
    verdicts = [hook._needs_retry(response=CONFLICT, request_dict=request) for _ in range(5)]
    # Attempts 1-3 are retried (after a sleep), the 4th 409 is the last: it is raised.
    assert verdicts[:3] == [0.0, 0.0, 0.0]
    assert verdicts[3] is None
    assert len(slept) == 3
    assert all(0 <= delay <= CONFLICT_BACKOFF_CAP for delay in slept)


def test_other_answers_are_left_to_botocore() -> None:
    slept: list[float] = []
    hook = NoOverwrite(sleep=slept.append)
    for response in (answer(412, "PreconditionFailed"), answer(503, "SlowDown")):
        request: dict[str, dict[str, object]] = {"context": {}}
        assert hook._needs_retry(response=response, request_dict=request) is None
        assert "taskcreds_unknown_outcome" not in request["context"]
    assert slept == []


def test_lost_answer_is_noted_and_a_later_412_recorded_as_unconfirmed() -> None:
    hook = NoOverwrite(sleep=lambda _: None)
    ledger = Ledger()
    context: dict[str, object] = {"taskcreds_key": "k", "taskcreds_checksum": ("CRC32C", "v==")}
    request = {"context": context}
    # A 412 with no lost attempt before it: someone else's object, nothing to check.
    ledger._record_response(parsed=answer(412, "PreconditionFailed")[1], context=context)
    assert ledger.take_unconfirmed("k") is None
    # The connection closed before an answer came: the write may be stored.
    assert hook._needs_retry(caught_exception=ConnectionError(), request_dict=request) is None
    assert context["taskcreds_unknown_outcome"] is True
    ledger._record_response(parsed=answer(412, "PreconditionFailed")[1], context=context)
    unconfirmed = ledger.take_unconfirmed("k")
    assert unconfirmed is not None
    assert unconfirmed.checksum == ("CRC32C", "v==")


def test_checksums_match_what_s3_stores() -> None:
    # Values SeaweedFS returned for these bytes and parts (CRC32C, composite of two parts).
    assert body_checksum(b"hello", "CRC32C") == "mnG7TA=="
    assert body_checksum(io.BytesIO(b"xhello"), "SHA256") is not None
    stream = io.BytesIO(b"xhello")
    stream.seek(1)
    assert body_checksum(stream, "CRC32C") == "mnG7TA=="
    assert stream.tell() == 1  # put back where it was
    assert composite_checksum(["5WyABQ==", "mSQPzA=="], "CRC32C") == "KZ2iOw==-2"
    assert (
        multipart_etag(['"08b46181d7094b5ece88bb389c7499af"', '"d76f89e449720d99d4b92c79040f4882"'])
        == '"fdd3f8f29045d7454477dd634c8cd8cb-2"'
    )


def test_invalid_token_also_forces_a_refresh() -> None:
    # The hooks and doctor read one table (_errors.classify): InvalidToken means expired too.
    fetcher = SlowFetcher()
    provider = CredentialProvider(
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"},
        fetcher=fetcher,  # type: ignore[arg-type]
    )
    provider.get()
    hook = RefreshOnExpired(provider)
    invalid = ({}, {"Error": {"Code": "InvalidToken", "Message": "bad token"}})
    assert hook._needs_retry(response=invalid, request_dict={"context": {}}) == 0.0
    assert fetcher.calls == 2
    denied = ({}, {"Error": {"Code": "AccessDenied", "Message": "no"}})
    assert hook._needs_retry(response=denied, request_dict={"context": {}}) is None
