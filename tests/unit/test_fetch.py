"""One fetch, as logic: retries, the deadline, error classification. An in-memory transport
stands in for the network (the real server is in tests/integration/test_fetch.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from taskcreds import (
    EndpointHTTPError,
    EndpointUnreachableError,
    MalformedResponseError,
    ThrottledError,
    resolve_endpoint,
)
from taskcreds.fetch import MAX_BODY_BYTES, Fetcher, _http_error, _network_reason

URL = "http://127.0.0.1:9/v2/credentials/0f1e2d3c-4b5a"
GOOD = (
    b'{"RoleArn":"arn:aws:iam::123456789012:role/AppA","AccessKeyId":"ASIAUNITUNITUNIT",'
    b'"SecretAccessKey":"s","Token":"t","Expiration":"2099-01-01T00:00:00Z"}'
)


class Answers(requests.adapters.BaseAdapter):
    """A transport that answers from a script: (status, body, headers) or an exception."""

    def __init__(self, script: list[tuple[int, bytes, dict[str, str]] | Exception]) -> None:
        super().__init__()
        self.script = script
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.sent.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        status, body, headers = step
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response.raw = _Raw(body)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, amount: int, decode_content: bool = True) -> object:
        yield from (self._body[i : i + amount] for i in range(0, len(self._body), amount))

    def read(self, amount: int = -1, **kwargs: object) -> bytes:
        body, self._body = self._body, b""
        return body

    def close(self) -> None:
        pass


def fetcher_with(
    script: list[tuple[int, bytes, dict[str, str]] | Exception], **kwargs: object
) -> tuple[Fetcher, Answers, list[float]]:
    session = requests.Session()
    answers = Answers(script)
    session.mount("http://", answers)
    slept: list[float] = []
    fetcher = Fetcher(session=session, sleep=slept.append, **kwargs)  # type: ignore[arg-type]
    return fetcher, answers, slept


def endpoint() -> object:
    return resolve_endpoint({"AWS_CONTAINER_CREDENTIALS_FULL_URI": URL})


def test_success_sends_accept_and_user_agent_and_no_redirects() -> None:
    fetcher, answers, _ = fetcher_with([(200, GOOD, {"Date": "Tue, 01 Dec 2026 10:00:00 GMT"})])
    result = fetcher.fetch(endpoint())  # type: ignore[arg-type]
    assert result.credentials.access_key_id == "ASIAUNITUNITUNIT"
    assert result.attempts == 1
    assert result.server_date is not None
    assert result.server_date.tzinfo is not None
    sent = answers.sent[0]
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["User-Agent"].startswith("taskcreds/")
    assert "Authorization" not in sent.headers


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_retryable_statuses_are_retried_with_backoff(status: int) -> None:
    fetcher, answers, slept = fetcher_with([(status, b"", {}), (200, GOOD, {})])
    assert fetcher.fetch(endpoint()).attempts == 2  # type: ignore[arg-type]
    assert len(answers.sent) == 2
    assert len(slept) == 1
    assert 0 <= slept[0] <= 2.0


def test_no_id_is_final_and_says_so() -> None:
    body = b'{"code":"NoIdInRequest","message":"CredentialsV2Request: No Credential ID"}'
    fetcher, answers, _ = fetcher_with([(400, body, {})])
    with pytest.raises(EndpointHTTPError) as info:
        fetcher.fetch(endpoint())  # type: ignore[arg-type]
    assert (info.value.status, info.value.code, info.value.retryable) == (
        400,
        "NoIdInRequest",
        False,
    )
    assert len(answers.sent) == 1
    assert "0f1e2d3c-4b5a" not in str(info.value)  # the display URL hides the ID


def test_gives_up_after_max_attempts_and_counts_them() -> None:
    fetcher, answers, _ = fetcher_with([(503, b"", {})], max_attempts=3)
    with pytest.raises(EndpointHTTPError, match="gave up after 3 attempts"):
        fetcher.fetch(endpoint())  # type: ignore[arg-type]
    assert len(answers.sent) == 3


def test_no_backoff_sleep_starts_past_the_deadline() -> None:
    clock = [0.0]

    def monotonic() -> float:
        return clock[0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    session = requests.Session()
    session.mount("http://", Answers([(503, b"", {})]))
    fetcher = Fetcher(
        session=session, sleep=sleep, monotonic=monotonic, deadline=1.0, max_attempts=50
    )
    with pytest.raises(EndpointHTTPError):
        fetcher.fetch(endpoint())  # type: ignore[arg-type]
    assert clock[0] < 1.0


def test_a_body_declared_too_large_is_refused_unread() -> None:
    headers = {"Content-Length": str(MAX_BODY_BYTES + 1)}
    fetcher, _, _ = fetcher_with([(200, b"", headers)])
    with pytest.raises(MalformedResponseError, match="larger than 64 KiB"):
        fetcher.fetch(endpoint())  # type: ignore[arg-type]


def test_connection_errors_become_unreachable_without_the_url_chained() -> None:
    error = requests.ConnectionError(ConnectionRefusedError(111, "Connection refused " + URL))
    fetcher, _, _ = fetcher_with([error], max_attempts=1)
    with pytest.raises(EndpointUnreachableError) as info:
        fetcher.fetch(endpoint())  # type: ignore[arg-type]
    assert info.value.reason == "refused"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (requests.Timeout("read timed out"), "timeout"),
        (requests.ConnectionError(ConnectionResetError()), "reset"),
        (requests.ConnectionError(OSError("who knows")), "other"),
    ],
)
def test_network_reasons(exc: Exception, reason: str) -> None:
    assert _network_reason(exc) == reason


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable", "hinted"),
    [
        (429, b"You have reached maximum request limit.", ThrottledError, True, True),
        (400, b'{"code":"InvalidIdInRequest","message":"x"}', EndpointHTTPError, True, True),
        (400, b'{"code":"Other","message":"x"}', EndpointHTTPError, False, False),
        (404, b"404 page not found\n", EndpointHTTPError, False, True),
        (302, b"", EndpointHTTPError, False, True),
    ],
)
def test_http_errors_are_classified(
    status: int, body: bytes, kind: type[EndpointHTTPError], retryable: bool, hinted: bool
) -> None:
    error = _http_error(status, body, URL, ())
    assert type(error) is kind
    assert error.retryable is retryable
    assert (error.hint is not None) is hinted


def test_invalid_arguments_are_refused() -> None:
    make: Callable[..., Fetcher] = Fetcher
    for kwargs in ({"deadline": 0}, {"connect_timeout": -1}, {"max_attempts": 0}):
        with pytest.raises(ValueError, match="positive"):
            make(**kwargs)
