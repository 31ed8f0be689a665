"""The broker's HTTP/1.1 framing (taskcreds/broker/_http.py): llhttp through httptools, fed
byte by byte and in pieces, pipelined, with bodies, too large, and malformed."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from taskcreds.broker._http import MAX_HEAD_BYTES, RequestReader, encode_response
from taskcreds.local._answers import bytes_reply

GET = b"GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: tok\r\n\r\n"


def test_a_request_fed_one_byte_at_a_time() -> None:
    reader = RequestReader()
    requests = [request for byte in GET for request in reader.feed(bytes([byte]))]
    assert len(requests) == 1
    request = requests[0]
    assert (request.method, request.target) == ("GET", "/v1/credentials")
    assert request.get_all("host") == ["127.0.0.1:8080"]
    assert request.get("authorization") == "tok"
    assert request.keep_alive
    assert not request.has_body
    assert reader.error is None


def test_pipelined_requests_come_out_in_order() -> None:
    second = GET.replace(b"/v1/credentials", b"/stats")
    requests = RequestReader().feed(GET + second + GET[:10])
    assert [request.target for request in requests] == ["/v1/credentials", "/stats"]


def test_repeated_headers_are_all_kept() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: x\r\nAuthorization: y\r\n\r\n"
    (request,) = RequestReader().feed(data)
    assert request.get_all("host") == ["a", "b"]
    assert request.get_all("authorization") == ["x", "y"]


def test_http_1_0_and_connection_close_end_the_connection() -> None:
    (old,) = RequestReader().feed(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
    assert not old.keep_alive
    reader = RequestReader()
    (closing,) = reader.feed(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + GET)
    assert not closing.keep_alive
    assert reader.feed(GET) == []  # nothing is read after it
    assert reader.error is None


@pytest.mark.parametrize(
    "framing", [b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"], ids=["length", "te"]
)
def test_a_request_with_a_body_is_taken_at_its_head_and_ends_the_connection(
    framing: bytes,
) -> None:
    reader = RequestReader()
    head = b"POST /v1/credentials HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n"
    (request,) = reader.feed(head + b"ab")  # the body never completes
    assert request.has_body
    assert not request.keep_alive
    assert reader.feed(b"cde" + GET) == []


def test_content_length_zero_is_no_body() -> None:
    (request,) = RequestReader().feed(GET.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"))
    assert not request.has_body
    assert request.keep_alive


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",  # whitespace before the colon
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"GET /\x1b[31m HTTP/1.1\r\nHost: a\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["obs-fold", "space-colon", "cl-and-te", "nul-in-value", "escape-in-target", "garbage"],
)
def test_malformed_requests_are_400(data: bytes) -> None:
    reader = RequestReader()
    assert reader.feed(data) == []
    assert reader.error is HTTPStatus.BAD_REQUEST


def test_a_head_larger_than_the_limit_is_431() -> None:
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
    filler = b"x" * 4096
    for _ in range(MAX_HEAD_BYTES // len(filler) + 1):
        assert reader.feed(filler) == []
    assert reader.error is HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    assert reader.feed(b"\r\n\r\n") == []  # nothing more is parsed


def test_an_upgrade_request_is_answered_and_nothing_after_it() -> None:
    reader = RequestReader()
    data = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    (request,) = reader.feed(data + b"\x00\x01 anything")
    assert not request.keep_alive
    assert reader.error is None


def test_encode_response_is_one_buffer_with_framing_headers() -> None:
    reply = bytes_reply(200, "application/json", b'{"a":1}', (("X-Extra", "1"),))
    encoded = encode_response(reply, close=True)
    head, body = encoded.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Length: 7" in lines
    assert "Cache-Control: no-store" in lines
    assert "X-Extra: 1" in lines
    assert "Connection: close" in lines
    assert any(line.startswith("Date: ") and line.endswith(" GMT") for line in lines)
    assert body == b'{"a":1}'


def test_a_complete_head_over_the_limit_is_431_even_in_one_chunk() -> None:
    reader = RequestReader()
    big = GET.replace(b"\r\n\r\n", b"\r\nX-Big: " + b"x" * MAX_HEAD_BYTES + b"\r\n\r\n")
    assert len(reader.feed(GET + big)) == 1  # the first request is answered...
    assert reader.error is HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE  # ...the second is not


def test_an_incomplete_head_in_one_big_chunk_is_431() -> None:
    # The chunk that starts a head is fed a slice at a time: most of it is counted.
    reader = RequestReader()
    assert reader.feed(b"GET / HTTP/1.1\r\nX-Big: " + b"x" * (MAX_HEAD_BYTES + 65536)) == []
    assert reader.error is HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


def test_http_1_0_keep_alive_still_ends_the_connection() -> None:
    (request,) = RequestReader().feed(
        b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
    )
    assert not request.keep_alive


def test_head_started_is_set_while_a_head_arrives() -> None:
    reader = RequestReader()
    assert reader.head_started is None
    reader.feed(b"GET / HTTP/1.1\r\nHo")
    assert reader.head_started is not None
    reader.feed(b"st: a\r\n\r\n")
    assert reader.head_started is None
