"""The ExpiredToken refresh hook: parts rejected together all retry with the new set."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from taskcreds import CredentialProvider, Credentials
from taskcreds.fetch import FetchResult
from taskcreds.upload._hooks import RefreshOnExpired

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
