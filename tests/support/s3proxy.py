"""A fault-injecting HTTP reverse proxy for S3 on 127.0.0.1, for the uploader's fault tests.

```python
with S3Proxy(seaweed.s3_endpoint) as proxy:          # Uploader(endpoint_url=proxy.url, ...)
    proxy.inject("UploadPart", SLOW_DOWN, on=(2,))   # the 2nd UploadPart request gets a 503
    proxy.inject("CompleteMultipartUpload", INTERNAL_ERROR)   # every one gets a 500
```

Requests go upstream as they came: method, path, query and headers, ``Host`` included, so SigV4
still verifies. Bodies stream both ways. ``Expect: 100-continue`` is passed through: the client
gets ``100 Continue`` only once the upstream asked for the body, so an upstream that answers early
(a refused signature) answers the client early too, as S3 itself would.

A fault answers (or cuts) the request at the proxy; it never reaches the upstream:

- :data:`INTERNAL_ERROR`: 500 ``InternalError`` XML
- :data:`SLOW_DOWN`: 503 ``SlowDown`` XML
- :data:`CONFLICT`: 409 ``ConditionalRequestConflict`` XML (a competing conditional write is in
  flight, as S3 answers an ``If-None-Match`` write)
- :data:`RESET`: read part of the request body, then close the socket with ``SO_LINGER`` 0 (RST)

except one, which lets the request reach the upstream:

- :data:`DROP_RESPONSE`: forward the request (so S3 stores what it was sent), read the upstream's
  whole answer, then close the client's connection without answering: a lost response.

Every request is recorded (:attr:`S3Proxy.requests`): its operation, the access key that signed
it, the status answered (for :data:`DROP_RESPONSE`, the upstream's) and the fault, if any. A
request is recorded *before* the client gets anything back (as soon as its status is known), so
once a client call has returned, every request it made is in the record. Standard library only.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import re
import socket
import socketserver
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Protocol, cast
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "CONFLICT",
    "DROP_RESPONSE",
    "INTERNAL_ERROR",
    "RESET",
    "SLOW_DOWN",
    "Action",
    "Fault",
    "ProxiedRequest",
    "S3Proxy",
    "operation_of",
]

Action = Literal["500", "503", "409", "reset", "drop-response"]
INTERNAL_ERROR: Action = "500"
SLOW_DOWN: Action = "503"
CONFLICT: Action = "409"
RESET: Action = "reset"
DROP_RESPONSE: Action = "drop-response"

HOST = "127.0.0.1"
_CHUNK = 64 * 1024
_UPSTREAM_TIMEOUT = 60.0
_CLIENT_TIMEOUT = 60.0
#: How much of the body a RESET fault reads before it cuts the connection.
_RESET_AFTER_BYTES = 256 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
_ERROR_BODIES: dict[Action, tuple[int, str, str, str]] = {
    INTERNAL_ERROR: (
        500,
        "Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    SLOW_DOWN: (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    CONFLICT: (
        409,
        "Conflict",
        "ConditionalRequestConflict",
        "A conflicting conditional operation is currently in progress against this resource. "
        "Try again.",
    ),
}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...


class _Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Record(Protocol):
    def __call__(self, status: int | None, /) -> None: ...


def operation_of(method: str, query: str, headers: Any = None) -> str:
    """The S3 operation a request is, by method and query (enough for the uploader's calls)."""
    params = parse_qs(query, keep_blank_values=True)
    if method == "PUT":
        if "partNumber" in params and "uploadId" in params:
            return "UploadPart"
        if headers is not None and headers.get("x-amz-copy-source"):
            return "CopyObject"
        return "PutObject"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        return "POST"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    if method == "GET":
        if "uploads" in params:
            return "ListMultipartUploads"
        if "uploadId" in params:
            return "ListParts"
        return "GET"
    return method


@dataclass
class Fault:
    """``action`` on the ``on``-th requests (1-based) of ``operation``; ``on=None``: on all."""

    operation: str
    action: Action
    on: frozenset[int] | None = None
    #: How many requests this fault has hit.
    hits: int = 0


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy received."""

    operation: str
    method: str
    path: str
    query: str
    #: The access key id from the SigV4 ``Authorization`` header (None if unsigned).
    access_key: str | None
    #: The status answered (for DROP_RESPONSE: the upstream's, never delivered); None when the
    #: connection was reset or the upstream failed.
    status: int | None
    #: The fault injected, if any.
    fault: Action | None
    #: The n-th request of this operation the proxy saw (1-based).
    occurrence: int


class S3Proxy:
    """A threaded reverse proxy on 127.0.0.1 in front of ``upstream`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname != HOST or parts.port is None:
            raise ValueError(f"upstream must be http://{HOST}:PORT, not {upstream!r}")
        self.upstream = (HOST, parts.port)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._seen: Counter[str] = Counter()
        self._requests: list[ProxiedRequest] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> S3Proxy:
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="s3proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.disconnect_all()
        httpd.server_close()  # joins the handler threads
        thread.join()

    def __enter__(self) -> S3Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the proxy is not running")
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    # -- faults and records ------------------------------------------------------------------

    def inject(self, operation: str, action: Action, *, on: tuple[int, ...] | None = None) -> Fault:
        """Inject ``action`` on the ``on``-th requests of ``operation`` (counted from now on,
        retries included); ``on=None`` injects it on every one."""
        fault = Fault(operation, action, frozenset(on) if on is not None else None)
        with self._lock:
            self._faults.append(fault)
            self._seen[operation] = 0
        return fault

    def clear(self) -> None:
        """Drop every fault and record."""
        with self._lock:
            self._faults.clear()
            self._seen.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._requests)

    def of(self, operation: str) -> list[ProxiedRequest]:
        return [r for r in self.requests if r.operation == operation]

    def _arrived(self, operation: str) -> tuple[int, Fault | None]:
        with self._lock:
            self._seen[operation] += 1
            n = self._seen[operation]
            for fault in self._faults:
                if fault.operation == operation and (fault.on is None or n in fault.on):
                    fault.hits += 1
                    return n, fault
            return n, None

    def _record(self, request: ProxiedRequest) -> None:
        with self._lock:
            self._requests.append(request)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins them
    block_on_close = True
    request_queue_size = 64

    def __init__(self, proxy: S3Proxy) -> None:
        self.proxy = proxy
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((HOST, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() would call socket.getfqdn(): a DNS query.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = int(self.server_address[1])

    def opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def disconnect_all(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request is routine here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _CLIENT_TIMEOUT
    disable_nagle_algorithm = True
    server_version = "s3proxy"
    sys_version = ""

    @property
    def proxy(self) -> S3Proxy:
        return cast(_Server, self.server).proxy

    def setup(self) -> None:
        super().setup()
        cast(_Server, self.server).opened(self.connection)

    def finish(self) -> None:
        try:
            with contextlib.suppress(OSError):
                super().finish()
        finally:
            cast(_Server, self.server).closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_expect_100(self) -> bool:
        return True  # sent (or not) once the upstream has decided; see _forward

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    # -- one request -------------------------------------------------------------------------

    def _handle(self) -> None:
        target = urlsplit(self.path)
        operation = operation_of(self.command, target.query, self.headers)
        occurrence, fault = self.proxy._arrived(operation)
        match = _CREDENTIAL.search(self.headers.get("Authorization", ""))
        recorded = False

        def record(status: int | None) -> None:
            # Called before anything is sent back, so a client that has its answer always
            # finds its request in the record (reading it never races the handler thread).
            nonlocal recorded
            if recorded:
                return
            recorded = True
            self.proxy._record(
                ProxiedRequest(
                    operation=operation,
                    method=self.command,
                    path=target.path,
                    query=target.query,
                    access_key=match.group(1) if match else None,
                    status=status,
                    fault=fault.action if fault is not None else None,
                    occurrence=occurrence,
                )
            )

        try:
            if fault is None:
                self._forward(record)
            elif fault.action == DROP_RESPONSE:
                self._forward(record, drop_response=True)
            elif fault.action == RESET:
                record(None)
                self._reset()
            else:
                self._fail(fault.action, record)
        finally:
            record(None)  # the upstream failed before a status was known

    @property
    def _length(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise NotImplementedError("chunked request bodies are not supported by this proxy")
        return int(self.headers.get("Content-Length") or 0)

    @property
    def _expects_continue(self) -> bool:
        return self.headers.get("Expect", "").lower() == "100-continue"

    def _fail(self, action: Action, record: _Record) -> None:
        status, reason, code, message = _ERROR_BODIES[action]
        if self._expects_continue:
            # Answer before the body is sent, as S3 does; the body never comes, so the
            # connection is not reused.
            self.close_connection = True
        else:
            _drain(self.rfile, self._length)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            "<RequestId>s3proxy</RequestId></Error>"
        ).encode()
        record(status)
        self.send_response_only(status, reason)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _reset(self) -> None:
        """Read part of the body, then close with SO_LINGER 0: the client sees a TCP RST."""
        if self._expects_continue:
            self._send_continue()
        _drain(self.rfile, min(self._length // 2, _RESET_AFTER_BYTES))
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._hang_up()

    def _hang_up(self) -> None:
        """Close the client's connection now, without another byte."""
        self.close_connection = True
        # The file objects hold references to the socket: close them so the fd really closes.
        self.rfile.close()
        self.wfile.close()
        self.connection.close()
        # http.server flushes wfile after the handler returns; give it something harmless.
        self.wfile = io.BytesIO()

    def _send_continue(self) -> None:
        self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.wfile.flush()

    def _forward(self, record: _Record, *, drop_response: bool = False) -> None:
        length = self._length
        expects = self._expects_continue
        upstream = socket.create_connection(self.proxy.upstream, timeout=_UPSTREAM_TIMEOUT)
        with contextlib.closing(upstream), upstream.makefile("rb") as from_upstream:
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            lines = [f"{self.command} {self.path} HTTP/1.1"]
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    lines.append(f"{name}: {value}")
            lines.append(f"Content-Length: {length}")
            if expects:
                lines.append("Expect: 100-continue")
            lines.append("Connection: close")
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            send_body = length > 0
            if expects:
                status, reason, headers = _read_head(from_upstream)
                if status == 100:
                    self._send_continue()
                else:
                    send_body = False  # the upstream answered without wanting the body
                    self.close_connection = True  # the client will not send it either
            if send_body:
                _copy(self.rfile, upstream, length)
            if not expects or status == 100:
                status, reason, headers = _read_head(from_upstream)
                while status == 100:
                    status, reason, headers = _read_head(from_upstream)
            if drop_response:
                # The upstream has done the work (stored the object): read its whole answer so
                # it is finished, record it, and hang up on the client without relaying it.
                self._consume(status, headers, from_upstream)
                record(status)
                self._hang_up()
                return
            record(status)
            self._relay(status, reason, headers, from_upstream)

    def _consume(self, status: int, headers: http.client.HTTPMessage, body: _Reader) -> None:
        if self.command == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            for _ in _dechunked(body):
                pass
        elif headers.get("Content-Length") is not None:
            _drain(body, int(headers["Content-Length"]))
        else:
            body.read()

    def _relay(
        self, status: int, reason: str, headers: http.client.HTTPMessage, body: _Reader
    ) -> None:
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        length_header = headers.get("Content-Length")
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self.send_response_only(status, reason)
        for name, value in headers.items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if no_body:
            if length_header is not None:
                self.send_header("Content-Length", length_header)
            self._end_headers()
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self._end_headers()
            for piece in _dechunked(body):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif length_header is not None:
            self.send_header("Content-Length", length_header)
            self._end_headers()
            _copy(body, self.wfile, int(length_header))
        else:
            data = body.read()  # the upstream closes to end the body
            self.send_header("Content-Length", str(len(data)))
            self._end_headers()
            self.wfile.write(data)
        self.wfile.flush()

    def _end_headers(self) -> None:
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()


def _read_head(stream: _Reader) -> tuple[int, str, http.client.HTTPMessage]:
    line = stream.readline(65537).decode("latin-1")
    parts = line.rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ConnectionError(f"bad status line from upstream: {line!r}")
    headers = http.client.parse_headers(stream)
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _dechunked(stream: _Reader) -> Iterator[bytes]:
    while True:
        size = int(stream.readline(65537).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while stream.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        yield _read_exactly(stream, size)
        stream.readline(65537)


def _read_exactly(stream: _Reader, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ConnectionError(f"body cut short: {len(data)} of {size} bytes")
    return data


def _copy(source: _Reader, sink: socket.socket | _Writer, length: int) -> None:
    left = length
    while left > 0:
        block = source.read(min(_CHUNK, left))
        if not block:
            raise ConnectionError(f"body cut short with {left} bytes left")
        if isinstance(sink, socket.socket):
            sink.sendall(block)
        else:
            sink.write(block)
        left -= len(block)


def _drain(source: _Reader, length: int) -> None:
    left = length
    while left > 0:
        block = source.read(min(_CHUNK, left))
        if not block:
            return
        left -= len(block)
