"""The source seam (taskcreds/sources.py): EndpointSource and StaticSource as CredentialSources."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from taskcreds import Credentials
from taskcreds.endpoint import Endpoint
from taskcreds.fetch import FetchResult
from taskcreds.sources import CredentialSource, EndpointSource, StaticSource

ENVIRON = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/v2/credentials/abcdefgh-1234"}
CREDS = Credentials("ASIASOURCESOURCE", "s", "t", datetime.now(timezone.utc) + timedelta(hours=1))


class OneFetcher:
    deadline = 2.5

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []
        self.closed = self.forked = 0

    def fetch(self, endpoint: Endpoint) -> FetchResult:
        self.endpoints.append(endpoint)
        return FetchResult(CREDS, None, 2, 0.1)

    def close(self) -> None:
        self.closed += 1

    def reset_after_fork(self) -> None:
        self.forked += 1


def test_endpoint_source_resolves_now_and_fetches_through_its_fetcher() -> None:
    fetcher = OneFetcher()
    source = EndpointSource(ENVIRON, fetcher=fetcher)
    assert isinstance(source, CredentialSource)
    assert source.endpoint.url == ENVIRON["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert source.deadline == 2.5
    assert source.last_result is None
    assert source.fetch() is CREDS
    assert source.last_result is not None
    assert source.last_result.attempts == 2
    assert fetcher.endpoints == [source.endpoint]
    assert "abcdefgh-1234" not in repr(source)  # the display URL hides the credentials ID
    source.close()
    source.reset_after_fork()
    assert (fetcher.closed, fetcher.forked) == (1, 1)


def test_static_source_is_a_source_and_a_callable() -> None:
    source = StaticSource(CREDS)
    assert isinstance(source, CredentialSource)
    assert source.fetch() is CREDS
    assert source() is CREDS
    assert "secret" not in repr(source)
