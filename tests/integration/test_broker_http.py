"""The broker's HTTP on raw sockets, against a real broker on 127.0.0.1: keep-alive and
pipelining, bodies never read, oversized and malformed heads, HTTP versions, Host and token
checked on every request of a connection."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskcreds.broker import Broker
from taskcreds.broker._http import MAX_HEAD_BYTES
from taskcreds.local import AgentServer, RotatingSource


@pytest.fixture
def broker() -> Iterator[Broker]:
    with (
        AgentServer(RotatingSource(lifetime=3600)) as upstream,
        Broker(environ=upstream.environment()) as running,
    ):
        yield running


def request(broker: Broker, *, path: str = "/v1/credentials", extra: str = "") -> bytes:
    token = Path(broker.token_file).read_text()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{broker.port}\r\nAuthorization: {token}\r\n"
        f"{extra}\r\n"
    ).encode()


def exchange(broker: Broker, data: bytes, *, answers: int | None = None) -> list[bytes]:
    """Send ``data``; read until the broker closes (or ``answers`` answers); split the answers."""
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw:
        raw.sendall(data)
        received = b""
        while answers is None or received.count(b"HTTP/1.1 ") < answers:
            chunk = raw.recv(65536)
            if not chunk:
                break
            received += chunk
    return [b"HTTP/1.1 " + part for part in received.split(b"HTTP/1.1 ")[1:]]


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_keep_alive_serves_many_requests_on_one_connection(broker: Broker) -> None:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw:
        for _ in range(50):
            raw.sendall(request(broker))
            answer = raw.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b'"AccessKeyId"' in answer


def test_pipelined_requests_are_answered_in_order(broker: Broker) -> None:
    data = request(broker) + request(broker, path="/stats") + request(broker, path="/nope")
    answers = exchange(broker, data, answers=3)
    assert [status_of(answer) for answer in answers] == [200, 200, 404]
    assert b'"AccessKeyId"' in answers[0]
    assert b'"upstream"' in answers[1]


def test_each_pipelined_request_is_checked(broker: Broker) -> None:
    # A good request first does not vouch for the next one on the same connection.
    bad_token = request(broker).replace(b"Authorization: ", b"Authorization: x")
    answers = exchange(broker, request(broker) + bad_token, answers=2)
    assert [status_of(answer) for answer in answers] == [200, 403]
    assert b"AccessKeyId" not in answers[1]


def test_a_body_is_never_read_and_the_connection_ends(broker: Broker) -> None:
    head = request(broker, extra="Content-Length: 1000000\r\n")
    answers = exchange(broker, head + b"x" * 1000)  # the broker closes: the read ends
    assert len(answers) == 1
    assert status_of(answers[0]) == 200
    assert b"Connection: close" in answers[0]


def test_other_methods_get_405_and_the_connection_ends(broker: Broker) -> None:
    data = request(broker).replace(b"GET ", b"POST ", 1) + request(broker)
    answers = exchange(broker, data)
    assert [status_of(answer) for answer in answers] == [405]


def test_an_oversized_head_is_431(broker: Broker) -> None:
    data = request(broker, extra=f"X-Big: {'x' * (MAX_HEAD_BYTES + 65536)}\r\n")
    answers = exchange(broker, data)
    assert [status_of(answer) for answer in answers] == [431]


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"],
    ids=["obs-fold", "tls-hello"],
)
def test_malformed_requests_are_400(broker: Broker, data: bytes) -> None:
    answers = exchange(broker, data)
    assert [status_of(answer) for answer in answers] == [400]


def test_http_2_is_505_and_http_1_0_closes(broker: Broker) -> None:
    two = request(broker).replace(b"HTTP/1.1\r\n", b"HTTP/2.0\r\n", 1)
    assert [status_of(answer) for answer in exchange(broker, two)] == [505]
    old = request(broker).replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1)
    answers = exchange(broker, old + request(broker))  # ends after the first
    assert [status_of(answer) for answer in answers] == [200]


def test_a_head_dripped_slowly_is_cut_with_408(broker: Broker) -> None:
    # Every byte comes within the read timeout, but the head as a whole takes too long.
    import time

    from taskcreds.broker._broker import IO_TIMEOUT

    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as raw:
        raw.sendall(b"GET /v1/credentials HTTP/1.1\r\n")
        began = time.monotonic()
        received = b""
        while not received:
            raw.sendall(b"X-Drip: 1\r\n")
            try:
                raw.settimeout(0.5)
                received = raw.recv(65536)
            except TimeoutError:
                continue
            assert time.monotonic() - began < 3 * IO_TIMEOUT
    assert received.startswith(b"HTTP/1.1 408 ")
