"""An HTTP server that answers exactly as the ECS agent's credentials endpoint does.

Paths, and who answers them in the real world (docs/agent-contract.md):

- ``/v2/credentials/<id>``             the ECS agent (what ``..._RELATIVE_URI`` names)
- ``/v1/credentials?id=<id>``          the ECS agent's legacy path
- ``/v1/credentials`` + Authorization  the EKS Pod Identity agent, when a token file is given
- ``/creds``, ``/role/<name>``         amazon-ecs-local-container-endpoints (the Docker emulator),
                                       only with ``compat_paths=True``: they carry no capability

Every request must name the server in ``Host`` (its address, ``localhost``, or one of
``allowed_hosts``), or it gets 421 and nothing else: a DNS-rebinding web page cannot read it.

What to answer is decided in :mod:`taskcreds.local._answers`; this module does the HTTP, the
faults' timing and the server's lifecycle. Standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, cast
from urllib.parse import SplitResult, urlsplit

from taskcreds import environment
from taskcreds._httpserver import LoopbackHTTPServer
from taskcreds.errors import TaskCredsError
from taskcreds.local._answers import (
    JSON_TYPE,
    TEXT_TYPE,
    V1_PATH,
    V2_PATH,
    Answers,
    HostPolicy,
    Reply,
    Route,
    bytes_reply,
    huge_body,
    injected_failure,
    method_not_allowed,
    misdirected,
    throttled,
    trickled_body,
)
from taskcreds.local._faults import Faults, RateLimiter
from taskcreds.local._sources import ServedSource

__all__ = ["IO_TIMEOUT", "AgentServer", "RecordedRequest"]

logger = logging.getLogger("taskcreds.local")

#: The agent's server read and write timeouts, in seconds.
IO_TIMEOUT = 5.0
# How often serve_forever() looks for a stop request: bounds how long stop() waits for it.
_STOP_POLL_SECONDS = 0.05
# Refused Host values are logged as a warning once each, up to this many; then at DEBUG only.
_WARNED_HOSTS_MAX = 16


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, as it arrived (``Authorization`` included)."""

    method: str
    #: The request target: path and query string.
    path: str
    headers: dict[str, str]
    client: tuple[str, int]
    #: The status answered; None when the connection was dropped or left hanging.
    status: int | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Go's server
    timeout = IO_TIMEOUT  # set on the socket: bounds every read and every write
    disable_nagle_algorithm = True  # headers and body are separate writes
    server_version = "taskcreds-local"
    sys_version = ""
    # Only used for requests http.server itself rejects (a malformed request line...).
    error_content_type = TEXT_TYPE
    error_message_format = "%(code)d %(message)s\n"
    _write_deadline = 0.0

    @property
    def agent(self) -> AgentServer:
        return cast(_HTTPServer, self.server).agent

    def setup(self) -> None:
        super().setup()
        self.agent._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.agent._connection_closed(self.connection)

    def do_GET(self) -> None:
        self._handle()

    def _refuse_method(self) -> None:
        # The request body, if any, is never read, so the connection cannot be reused.
        self.close_connection = True
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse_method

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s: %s", self.address_string(), format % args)

    def _handle(self) -> None:
        # Go's server sets its write deadline once the request is read; it covers the handler.
        self._write_deadline = time.monotonic() + IO_TIMEOUT
        agent = self.agent
        # Before anything else, faults included: a page that rebinds its name to this address
        # must learn nothing, not even how the server misbehaves.
        host_headers = self.headers.get_all("Host") or []
        if not agent._answers.hosts.allows(host_headers, self._local_address()):
            agent._host_refused(host_headers, self.address_string())
            self.close_connection = True
            self._send(misdirected())
            return
        faults = agent.faults.snapshot()
        target = urlsplit(self.path)
        route = agent._answers.route(target.path)
        # The agent throttles in a middleware, before it looks at the path.
        if faults.throttle_rps is not None and not agent._limiter.allow(
            self.client_address[0], faults.throttle_rps, faults.throttle_burst
        ):
            self._send(throttled(route))
            return
        if faults.latency and agent._stopping.wait(faults.latency):
            self._drop()  # the server is stopping
            return
        if faults.hang:
            self._drop(hang=True)
            return
        if faults.drop_connection:
            self._drop()
            return
        self._send(self._answer(route, target, faults))

    def _local_address(self) -> str:
        try:
            return str(self.connection.getsockname()[0])
        except OSError:
            return ""

    def _answer(self, route: Route, target: SplitResult, faults: Faults) -> Reply:
        if self.command != "GET":
            return method_not_allowed()
        answers = self.agent._answers
        refusal = answers.refusal(route, target, self.headers.get("Authorization"))
        if refusal is not None:
            return refusal
        failing_status = self.agent.faults.take_failure()
        if failing_status is not None:
            return injected_failure(failing_status, route)
        stopping = self.agent._stopping
        if faults.huge_body_bytes is not None:
            return huge_body(faults.huge_body_bytes, stopping)
        body = faults.body_override
        if body is None:
            try:
                body = answers.credentials_body()
            except TaskCredsError as exc:
                # A source that says what went wrong (the AWS-backed ones): one line is enough.
                logger.error("the credential source failed: %s", exc)
                return injected_failure(500, route)
            except Exception:
                logger.exception("the credential source failed")
                return injected_failure(500, route)
        if faults.trickle:
            return trickled_body(body, faults.trickle, stopping)
        return bytes_reply(200, JSON_TYPE, body)

    def _send(self, reply: Reply) -> None:
        if self._write_deadline <= time.monotonic():
            # A latency fault outlasted the agent's write timeout: Go's server would fail every
            # write from here on, so the client sees the connection close without an answer.
            self._drop()
            return
        # Recorded before the answer goes out, so a client that has the answer sees the record.
        self._record(reply.status)
        try:
            self.send_response_only(reply.status)
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(reply.length))
            for name, value in reply.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")  # so the client does not reuse it
            self._before_write()
            self.end_headers()
            for chunk in reply.body:
                self._before_write()
                self.wfile.write(chunk)
        except OSError as exc:
            # The client gave up (a timeout, or it had read enough of a huge body), the write
            # timeout passed, or stop() cut the connection: routine, never worth a traceback.
            logger.debug("%s: answer cut short: %s", self.address_string(), exc)
            self.close_connection = True
        if self.agent._stopping.is_set():
            self.close_connection = True  # a trickled or huge body may have been cut short
        with contextlib.suppress(OSError):
            self.connection.settimeout(IO_TIMEOUT)  # for the next request on this connection

    def _before_write(self) -> None:
        """Enforce the agent's write timeout: the whole answer within 5 s of the request."""
        left = self._write_deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the write timeout passed")
        self.connection.settimeout(left)

    def _drop(self, *, hang: bool = False) -> None:
        self._record(None)
        if hang:
            self.agent._stopping.wait()
        self.close_connection = True

    def _record(self, status: int | None) -> None:
        # The path is left out: it holds the credentials ID, which the agent never logs either.
        logger.debug("%s %s: %s", self.address_string(), self.command, status or "no answer")
        host, port = self.client_address[:2]
        self.agent._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers=dict(self.headers.items()),
                client=(str(host), int(port)),
                status=status,
            )
        )


class _HTTPServer(LoopbackHTTPServer):
    # Many clients connecting at once (single-flight tests) must queue, not be refused.
    request_queue_size = 128
    error_logger = logger

    def __init__(self, agent: AgentServer, address: tuple[str, int]) -> None:
        self.agent = agent
        super().__init__(address, _Handler)


class AgentServer:
    """The ECS agent's credentials endpoint on a local address (127.0.0.1 and a free port).

    ``with AgentServer(RotatingSource()) as server:`` starts it in a background thread; clients
    use :attr:`full_uri`, or :meth:`environment` for the variables a task would see. Setting
    ``pod_identity_token_file`` makes ``/v1/credentials`` the EKS Pod Identity endpoint, which
    wants that file's current content as ``Authorization``; every other credentials path then
    wants it too. :attr:`faults` may be changed while the server runs.

    Requests must carry a ``Host`` naming the server: ``host`` (any loopback address when it is
    0.0.0.0 or ::), ``localhost``, or one of ``allowed_hosts`` (names or addresses, no port);
    others get 421. ``compat_paths=True`` also answers amazon-ecs-local-container-endpoints'
    ``/creds`` and ``/role/<name>``, which carry no credentials ID: any local process, and any
    web page allowed through the Host check, gets the credentials from them.
    """

    def __init__(
        self,
        source: ServedSource,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials_id: str | None = None,
        faults: Faults | None = None,
        pod_identity_token_file: str | None = None,
        include_role_arn: bool = True,
        include_account_id: bool = False,
        allowed_hosts: Iterable[str] = (),
        compat_paths: bool = False,
    ) -> None:
        self.host = host
        self.faults = faults if faults is not None else Faults()
        self._requested_port = port
        self._answers = Answers(
            source=source,
            credentials_id=credentials_id if credentials_id is not None else str(uuid.uuid4()),
            pod_identity_token_file=pod_identity_token_file,
            include_role_arn=include_role_arn,
            include_account_id=include_account_id,
            hosts=HostPolicy.for_server(host, allowed_hosts),  # ValueError for a bad name
            compat_paths=compat_paths,
        )
        self._warned_hosts: set[str] = set()
        self._limiter = RateLimiter()
        # Set by stop(): wakes every handler waiting in a latency, hang or trickle fault.
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[RecordedRequest] = []
        self._requests_changed = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # --- lifecycle

    def start(self) -> AgentServer:
        """Listen and serve in a daemon thread; returns once connections are accepted."""
        if self._httpd is not None:
            raise RuntimeError("an AgentServer can be started only once")
        # Binding happens in the constructor: from here on connections queue in the backlog.
        self._httpd = _HTTPServer(self, (self.host, self._requested_port))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _STOP_POLL_SECONDS},
            name=f"taskcreds-local-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("serving credentials on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and wait for the threads; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        httpd.shutdown()  # serve_forever() returns: no more connections are accepted
        self._disconnect_clients()  # handlers blocked reading a keep-alive connection return
        httpd.server_close()  # closes the listening socket and joins the handler threads
        thread.join()
        logger.debug("stopped serving on %s", self.base_url)

    def __enter__(self) -> AgentServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses

    @property
    def port(self) -> int:
        return int(self._require_started().server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def credentials_id(self) -> str:
        return self._answers.credentials_id

    @property
    def relative_uri(self) -> str:
        """What the agent puts in ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``."""
        return f"{V2_PATH}/{self.credentials_id}"

    @property
    def full_uri(self) -> str:
        return self.base_url + self.relative_uri

    @property
    def source(self) -> ServedSource:
        return self._answers.source

    def environment(self) -> dict[str, str]:
        """The variables a client needs to use this server (with the token file in EKS mode)."""
        token_file = self._answers.pod_identity_token_file
        if token_file is None:
            return {environment.FULL_URI: self.full_uri}
        return {
            environment.FULL_URI: self.base_url + V1_PATH,
            environment.AUTH_TOKEN_FILE: token_file,
        }

    # --- what was asked

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in order."""
        with self._requests_changed:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._requests_changed:
            return len(self._requests)

    def wait_for_requests(self, count: int, timeout: float = IO_TIMEOUT) -> bool:
        """Wait until ``count`` requests have arrived (answered or not); False on timeout."""
        with self._requests_changed:
            return self._requests_changed.wait_for(
                lambda: len(self._requests) >= count, timeout=timeout
            )

    def clear_requests(self) -> None:
        with self._requests_changed:
            self._requests.clear()

    # --- used by the handler threads

    def _record(self, request: RecordedRequest) -> None:
        with self._requests_changed:
            self._requests.append(request)
            self._requests_changed.notify_all()

    def _host_refused(self, host_headers: list[str], client: str) -> None:
        shown = ", ".join(repr(value[:100]) for value in host_headers) or "no Host header"
        with self._connections_lock:
            first = shown not in self._warned_hosts and len(self._warned_hosts) < _WARNED_HOSTS_MAX
            if first:
                self._warned_hosts.add(shown)
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "%s: refused a request for Host %s (421): this endpoint answers only for its own"
            " address and localhost; allow a name with allowed_hosts (serve-local --allow-host)",
            client,
            shown,
        )

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            if self._stopping.is_set():
                # Accepted just as stop() ran, after it disconnected the others.
                _shut(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def _disconnect_clients(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                _shut(connection)

    def _require_started(self) -> _HTTPServer:
        if self._httpd is None:
            raise RuntimeError("the AgentServer has not been started")
        return self._httpd


def _shut(connection: socket.socket) -> None:
    # shutdown() rather than close(): the handler thread still owns the socket and closes it.
    with contextlib.suppress(OSError):  # the peer may have closed it already
        connection.shutdown(socket.SHUT_RDWR)
