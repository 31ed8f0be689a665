"""HTTP/1.1 for the broker: requests framed by httptools (llhttp), answers written in one send.

http.server parses every header block with the email package: about 150 µs of CPU a request,
most of what the broker spent at 2,000 requests/s, and the cause of its tail latency on a
2-core task. llhttp (the parser of Node.js, through httptools, uvicorn's binding) takes about
3 µs and frames keep-alive, pipelining and bodies as RFC 9112 says; it refuses obs-fold,
whitespace before a colon, both Content-Length and Transfer-Encoding, and control characters
in the target or a header value.

The broker answers GETs without bodies. A request that carries a body is answered as soon as its
head is complete and the connection is then closed, so no body is ever read or buffered.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

from taskcreds.local._answers import Reply

__all__ = ["MAX_HEAD_BYTES", "Request", "RequestReader", "encode_response", "http_date"]

#: The most a request line and headers may take: 16 KiB, as the ECS agent's Go server allows
#: far more than any SDK sends (about 500 bytes) and far less than memory would bear.
MAX_HEAD_BYTES = 16 * 1024
_SLICE_BYTES = 4 * 1024


@dataclass(slots=True)
class Request:
    """One request's head. Header names are lower-case; values are decoded as Latin-1."""

    method: str
    target: str
    headers: dict[str, list[str]]
    keep_alive: bool
    #: The request declared a body (Content-Length other than 0, or Transfer-Encoding).
    has_body: bool
    http_major: int = 1

    def get_all(self, name: str) -> list[str]:
        return self.headers.get(name, [])

    def get(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class _Head:
    target: bytearray = field(default_factory=bytearray)
    headers: dict[str, list[str]] = field(default_factory=dict)
    #: Bytes received while this head was incomplete: httptools buffers a partial header itself,
    #: so a head that never ends is bounded by the chunks that carried it.
    size: int = 0
    #: The size of what was parsed: target and headers.
    parsed: int = 0
    started: float = field(default_factory=time.monotonic)


class RequestReader:
    """Feeds the bytes of one connection to llhttp and collects the requests they complete.

    :meth:`feed` returns the requests completed so far, in order. When the stream cannot be
    parsed (or a head is too large) :attr:`error` is the status to answer with, and nothing
    more is read from the connection.
    """

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._head: _Head | None = None
        self._ready: list[Request] = []
        #: Set once a body-carrying request has been taken: the connection ends after it.
        self._closing = False
        self.error: HTTPStatus | None = None

    def feed(self, data: bytes) -> list[Request]:
        # Fed a slice at a time: a head is counted from the slice after the one it starts in,
        # so no head passes the limit by more than one slice.
        for start in range(0, len(data), _SLICE_BYTES):
            if self.error is not None or self._closing:
                break
            self._feed_slice(data[start : start + _SLICE_BYTES])
        ready, self._ready = self._ready, []
        return ready

    @property
    def head_started(self) -> float | None:
        """When (monotonic) the head being read began to arrive; None between requests."""
        head = self._head
        return head.started if head is not None else None

    def _feed_slice(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            head.size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The upgrade request itself was read; it is answered, and nothing after it.
            self._closing = True
            if self._ready:
                self._ready[-1].keep_alive = False
        except httptools.HttpParserError:
            if not self._closing:
                self.error = HTTPStatus.BAD_REQUEST
        head = self._head
        if head is not None and head.size > MAX_HEAD_BYTES:
            self.error = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE

    # -- llhttp's callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head = _Head()

    def on_url(self, url: bytes) -> None:
        if self._head is not None:
            self._head.target += url
            self._head.parsed += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        head = self._head
        if head is not None:
            head.parsed += len(name) + len(value) + 4  # ": " and CRLF
            head.headers.setdefault(name.decode("latin-1").lower(), []).append(
                value.decode("latin-1")
            )

    def on_headers_complete(self) -> None:
        head = self._head
        if head is None or self._closing:
            return
        self._head = None
        if head.parsed > MAX_HEAD_BYTES:
            self.error = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            self._closing = True
            return
        headers = head.headers
        length = headers.get("content-length")
        has_body = "transfer-encoding" in headers or (length is not None and length != ["0"])
        version = self._parser.get_http_version()
        request = Request(
            method=self._parser.get_method().decode("latin-1"),
            target=head.target.decode("latin-1"),
            headers=headers,
            # HTTP/1.0 ends after its answer, keep-alive or not: no client of this server needs
            # it, and its framing rules are not worth the risk.
            keep_alive=self._parser.should_keep_alive() and not has_body and version == "1.1",
            has_body=has_body,
            http_major=int(version.split(".", 1)[0]) if version[:1].isdigit() else 0,
        )
        self._ready.append(request)
        if has_body or not request.keep_alive:
            self._closing = True  # answer this one, read nothing more

    def on_message_complete(self) -> None:
        pass  # the request was taken at the end of its head: the broker reads no bodies


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` header's value, formatted once a second."""
    global _date_cache  # noqa: PLW0603 - a one-entry cache shared by every connection
    now = int(time.time())
    second, text = _date_cache
    if second != now:
        text = email.utils.formatdate(now, usegmt=True)
        _date_cache = (now, text)
    return text


def encode_response(reply: Reply, *, close: bool) -> bytes:
    """Status line, headers and body as one buffer: one send, one wake-up for the client."""
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = ""
    lines = [
        f"HTTP/1.1 {reply.status} {phrase}",
        f"Date: {http_date()}",
        f"Content-Type: {reply.content_type}",
        f"Content-Length: {reply.length}",
        "Cache-Control: no-store",
    ]
    lines.extend(f"{name}: {value}" for name, value in reply.headers)
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + b"".join(reply.body)
