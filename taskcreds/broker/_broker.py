"""The broker: one credentials cache for the whole task, served over loopback to every process.

One :class:`~taskcreds.CredentialProvider` fetches from upstream (whatever the container
variables name: the ECS agent, Pod Identity, serve-local); a small threaded HTTP server answers
``GET /v1/credentials`` exactly as the agent answers (same JSON fields and error shapes) to any
SDK that supports ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``.

- **From cache.** A request is answered from :meth:`CredentialProvider.peek` (no lock, no I/O)
  while a valid set is cached; only when none is does it wait for one upstream fetch, shared by
  every caller (the provider's single flight), and after a failed one the broker answers 503 for
  a moment rather than send every request upstream.
- **Refresh.** The provider's prefetch thread replaces a set when a sixth of its lifetime is
  left (:func:`~taskcreds.provider.serving_schedule`: at most 10 minutes before expiry, at
  least 1 s), backing off after a failure while the cached set lasts: about one upstream fetch
  per lifetime, whatever the clients do. The broker has no refresh policy of its own.
- **Outage.** While upstream fails, the cached set is served until it expires; then requests
  get the agent's ``503 CredentialsUninitialized``, which every SDK retries.
- **Guard.** A random token (256 bits) in ``Authorization``, compared in constant time, lives in
  a 0600 file in a 0700 directory made for this broker and removed on close; ``Host`` must be
  the bound address or ``localhost`` with the bound port; only loopback binds, unless forced.
  ``GET /stats`` (JSON) and ``GET /metrics`` (Prometheus text, :mod:`._metrics`) pass the same
  checks as the credentials.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import secrets
import shutil
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote, urlsplit

from taskcreds import environment
from taskcreds._httpserver import LoopbackHTTPServer, log_handler_error
from taskcreds.broker._http import Request, RequestReader, encode_response
from taskcreds.broker._metrics import MetricsEndpoint
from taskcreds.broker._peers import Peer, PeerFinder, unix_peer
from taskcreds.broker._stats import BrokerStats, Ledger
from taskcreds.credentials import Credentials
from taskcreds.errors import ConfigError, TaskCredsError
from taskcreds.local._answers import (
    JSON_TYPE,
    HostPolicy,
    Reply,
    bytes_reply,
    credentials_document,
    json_error,
    method_not_allowed,
    text_error,
)
from taskcreds.provider import CredentialProvider, serving_schedule
from taskcreds.sources import CredentialSource, EndpointSource

__all__ = [
    "CREDENTIALS_PATH",
    "METRICS_PATH",
    "STATS_PATH",
    "Broker",
    "client_environment",
]

logger = logging.getLogger("taskcreds.broker")

#: Where the broker serves credentials, its statistics (JSON) and its metrics (Prometheus).
CREDENTIALS_PATH = "/v1/credentials"
STATS_PATH = "/stats"
METRICS_PATH = "/metrics"
_GUARDED_PATHS = frozenset((CREDENTIALS_PATH, STATS_PATH, METRICS_PATH))
#: The broker's read and write timeouts, as the agent's.
IO_TIMEOUT = 5.0
#: After a failed fetch with nothing valid cached, requests get 503 this long without asking
#: upstream again (the refresh thread keeps trying): an outage never multiplies upstream load.
FAILURE_HOLD = 1.0
_STOP_POLL_SECONDS = 0.05
_RECV_BYTES = 64 * 1024
_HOST_VERDICTS_MAX = 64
_TOKEN_FILE_NAME = "token"  # noqa: S105 - a file name


def client_environment(
    environ: Mapping[str, str], broker_environment: Mapping[str, str]
) -> dict[str, str]:
    """``environ`` as a client of the broker must see it.

    ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` is removed (every SDK prefers it to FULL_URI), as
    is any ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (a plain token meant for upstream); FULL_URI and
    the token file are the broker's.
    """
    rewritten = {
        name: value
        for name, value in environ.items()
        if name not in (environment.RELATIVE_URI, environment.AUTH_TOKEN)
    }
    rewritten.update(broker_environment)
    return rewritten


class _WatchedSource:
    """The upstream source, watched: when each fetch the provider makes (its prefetch's too)
    ended and whether it failed; the counts themselves are the provider's ``stats()``."""

    def __init__(self, source: CredentialSource, ledger: Ledger) -> None:
        self.inner = source
        self._ledger = ledger

    def __repr__(self) -> str:
        return repr(self.inner)

    def __getattr__(self, name: str) -> Any:  # endpoint, deadline, last_result
        return getattr(self.inner, name)

    def fetch(self) -> Credentials:
        try:
            credentials = self.inner.fetch()
        except TaskCredsError as exc:
            self._ledger.fetched(exc)
            raise
        self._ledger.fetched(None)
        return credentials

    def close(self) -> None:
        self.inner.close()

    def reset_after_fork(self) -> None:
        self.inner.reset_after_fork()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _port_of_host_header(value: str) -> int | None:
    """The port a ``Host`` header names (80 when none); None when malformed."""
    value = value.strip(" \t")
    rest = value[value.find("]") + 1 :] if value.startswith("[") else value
    if ":" not in rest:
        return 80
    port = rest.rsplit(":", 1)[1]
    return int(port) if port.isdigit() and len(port) <= 5 else None


class _Handler(socketserver.BaseRequestHandler):
    """One client connection: keep-alive, requests answered in order, each from the cache."""

    request: socket.socket
    _peer: Peer
    _client_name: str
    _client_address: str
    #: The address the client connected to (the Host check's "own address"); "" on a Unix socket.
    _local_address: str

    @property
    def broker(self) -> Broker:
        broker: Broker = cast(Any, self.server).broker
        return broker

    def setup(self) -> None:
        broker = self.broker
        connection = self.request
        connection.settimeout(IO_TIMEOUT)
        broker._connection_opened(connection)
        # Once per connection: who is this? (bounded and rate-limited, see _peers)
        if broker.unix_socket is not None:
            self._peer = unix_peer(connection)
            self._client_address = "unix"
            self._local_address = ""
        else:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            host, port = self.client_address[:2]
            server: tuple[Any, ...] = tuple(connection.getsockname())
            local = (str(server[0]), int(server[1]))
            self._local_address = local[0]
            self._peer = broker._peers.find((str(host), int(port)), local)
            self._client_address = f"{host}:{port}"
        if self._peer.pid is not None:
            self._client_name = f"pid {self._peer.pid}"
        else:
            self._client_name = self._client_address.rsplit(":", 1)[0]

    def handle(self) -> None:
        reader = RequestReader()
        while True:
            try:
                data = self.request.recv(_RECV_BYTES)
            except OSError:  # the idle timeout, or a reset
                return
            if not data:
                return
            for request in reader.feed(data):
                if not self._respond(request):
                    return
            if reader.error is not None:
                status = reader.error
                self._send(text_error(status, f"{status.value} {status.phrase}"), close=True)
                return
            started = reader.head_started
            if started is not None and time.monotonic() - started > IO_TIMEOUT:
                # A head dripped slowly enough that every read is on time: it still ends.
                self._send(text_error(408, "408 Request Timeout"), close=True)
                return

    def finish(self) -> None:
        self.broker._connection_closed(self.request)

    def _respond(self, request: Request) -> bool:
        """Answer one request; False when the connection must end after it."""
        reply, credentials, waited, close = self.broker._reply_to(request, self._local_address)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s: %s %s -> %d",
                self._client_name,
                ascii(request.method)[1:-1],
                ascii(request.target[:200])[1:-1],
                reply.status,
            )
        # Counted before the answer goes out: a client that has the answer sees it in the stats.
        self.broker._ledger.request(
            client=self._client_name,
            pid=self._peer.pid,
            name=self._peer.name,
            address=self._client_address,
            user_agent=request.get("user-agent"),
            status=reply.status,
            credentials=credentials,
            waited=waited,
        )
        return self._send(reply, close=close or not request.keep_alive)

    def _send(self, reply: Reply, *, close: bool) -> bool:
        try:
            self.request.sendall(encode_response(reply, close=close))
        except OSError as exc:
            logger.debug("%s: answer cut short: %s", self._client_name, exc)
            return False
        return not close


class _TCPServer(LoopbackHTTPServer):
    request_queue_size = 256
    error_logger = logger

    def __init__(self, broker: Broker, address: tuple[str, int]) -> None:
        self.broker = broker
        super().__init__(address, _Handler)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, broker: Broker, path: str) -> None:
        self.broker = broker
        super().__init__(path, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, _ = self.socket.accept()
        return connection, ("unix", 0)  # http.server wants a (host, port) pair

    def handle_error(self, request: Any, client_address: Any) -> None:
        log_handler_error(logger, client_address)


class Broker:
    """The task-wide credentials server: one upstream cache, served over loopback.

    ``provider`` defaults to one the broker makes from ``environ`` (default ``os.environ``):
    the container endpoint it names, refreshed by a prefetch thread on
    :func:`~taskcreds.provider.serving_schedule`, with every fetch counted. A provider passed in
    is used as it is and must have been made with ``prefetch=True`` (the broker answers from
    cache and never refreshes for a request while a set is valid).

    ``host``/``port``: where to listen (127.0.0.1 and a free port); a non-loopback ``host``
    raises :class:`~taskcreds.ConfigError` unless ``allow_non_loopback=True`` (then it logs a
    warning). ``unix_socket=PATH`` listens on a Unix-domain socket instead (mode 0600; the
    peer's PID comes from ``SO_PEERCRED``). ``token_dir``: where the private token directory is
    made (default: the system temp dir; use a shared volume for a sidecar).

    ``start()`` (or ``with``) makes the first upstream fetch and raises its
    :class:`~taskcreds.TaskCredsError` if it fails, so nothing starts without credentials.
    Then :attr:`url`, :meth:`environment` (what a client needs) and :meth:`stats`.
    """

    def __init__(
        self,
        provider: CredentialProvider | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unix_socket: str | os.PathLike[str] | None = None,
        allow_non_loopback: bool = False,
        token_dir: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not _loopback(host):
            if not allow_non_loopback:
                raise ConfigError(
                    f"the broker binds loopback only, not {host!r}: anything that can reach "
                    "that address could ask for the task role's credentials",
                    hint="use 127.0.0.1 (awsvpc: every container of the task shares it), or pass "
                    "allow_non_loopback=True (--allow-non-loopback) if you really mean it",
                )
            logger.warning(
                "the credentials broker listens on %s, which is not loopback: anything that can "
                "reach it and read the token file can get the task role's credentials",
                host,
            )
        self.host = "127.0.0.1" if host == "localhost" else host
        self._requested_port = port
        self.unix_socket = os.fspath(unix_socket) if unix_socket is not None else None
        self._token_parent = os.fspath(token_dir) if token_dir is not None else None
        self._ledger = Ledger(exact_upstream=provider is None)
        if provider is None:
            source = _WatchedSource(EndpointSource(environ), self._ledger)
            provider = CredentialProvider.from_source(
                source, prefetch=True, schedule=serving_schedule
            )
            self._owns_provider = True
        else:
            if not provider.prefetching:
                raise ConfigError(
                    "the broker needs a provider that refreshes itself: it answers every "
                    "request from cache, so nothing else would refresh it",
                    hint="make it with CredentialProvider(..., prefetch=True, "
                    "schedule=taskcreds.provider.serving_schedule), or pass none",
                )
            self._owns_provider = False
        self.provider = provider
        self._peers = PeerFinder()
        self._token = secrets.token_urlsafe(32)
        self._token_dir: str | None = None
        self._server: _TCPServer | _UnixServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._failed_at = -float("inf")
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._warned_no_prefetch = False
        self._hosts = HostPolicy.for_server(self.host)
        self._host_verdicts: dict[tuple[tuple[str, ...], str], bool] = {}
        self._port = 0
        self._body_cache: tuple[str, bytes] | None = None
        self._metrics = MetricsEndpoint(self.stats, self.provider.stats)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Broker:
        """Fetch the first set (which starts the provider's prefetch thread), write the token
        file, and listen."""
        if self._server is not None:
            raise RuntimeError("a Broker can be started only once")
        if not self.provider.prefetching:
            raise ConfigError(
                "the broker's provider no longer refreshes itself (it was closed)",
                hint="start the broker before closing its provider, or pass none",
            )
        try:
            self.provider.get()  # fail fast: no credentials, no broker
            self._token_dir = tempfile.mkdtemp(prefix="taskcreds-broker-", dir=self._token_parent)
            os.chmod(self._token_dir, 0o700)
            descriptor = os.open(
                self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
            )
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(self._token)
            self._server = self._listen()
        except BaseException:
            self._cleanup()
            raise
        serving = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _STOP_POLL_SECONDS},
            name="taskcreds-broker",
            daemon=True,
        )
        self._threads = [serving]
        for thread in self._threads:
            thread.start()
        logger.info("credentials broker serving on %s", self.url)
        return self

    def _listen(self) -> _TCPServer | _UnixServer:
        if self.unix_socket is None:
            server = _TCPServer(self, (self.host, self._requested_port))
            self._port = server.server_port
            return server
        with contextlib.suppress(FileNotFoundError):
            if Path(self.unix_socket).is_socket():
                os.unlink(self.unix_socket)  # a stale socket of an earlier run
        previous = os.umask(0o177)
        try:
            return _UnixServer(self, self.unix_socket)
        finally:
            os.umask(previous)

    def close(self) -> None:
        """Stop serving, remove the token directory, and close the provider the broker made;
        safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        server = self._server
        if server is not None:
            server.shutdown()
            with self._connections_lock:
                for connection in self._connections:
                    with contextlib.suppress(OSError):
                        connection.shutdown(socket.SHUT_RDWR)
            server.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2 * IO_TIMEOUT)
        self._cleanup()
        logger.info("credentials broker stopped")

    stop = close

    def _cleanup(self) -> None:
        if self._token_dir is not None:
            shutil.rmtree(self._token_dir, ignore_errors=True)
            self._token_dir = None
        if self.unix_socket is not None and self._server is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_socket)
        if self._owns_provider:
            self.provider.close()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- what clients need -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port listened on (0 on a Unix socket)."""
        return self._port

    @property
    def url(self) -> str:
        """The credentials URL: ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` for clients.

        On a Unix socket: ``http+unix://<percent-encoded path>/v1/credentials``.
        """
        if self.unix_socket is not None:
            return f"http+unix://{quote(self.unix_socket, safe='')}{CREDENTIALS_PATH}"
        self._require_started()
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}{CREDENTIALS_PATH}"

    @property
    def stats_url(self) -> str:
        return self.url[: -len(CREDENTIALS_PATH)] + STATS_PATH

    @property
    def metrics_url(self) -> str:
        """``GET /metrics``: Prometheus text, with the token (see docs/observability.md)."""
        return self.url[: -len(CREDENTIALS_PATH)] + METRICS_PATH

    @property
    def token_file(self) -> str:
        """The file holding the token (mode 0600): ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``."""
        if self._token_dir is None:
            raise RuntimeError("the Broker has not been started")
        return os.path.join(self._token_dir, _TOKEN_FILE_NAME)

    def client_environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """``environ`` (default ``os.environ``) rewritten for a client: see
        :func:`client_environment`."""
        return client_environment(os.environ if environ is None else environ, self.environment())

    def environment(self) -> dict[str, str]:
        """The two variables a client needs (FULL_URI and the token file).

        A client must not also see ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``, which wins in
        every SDK: :func:`client_environment` rewrites a whole environment.
        """
        if self.unix_socket is not None:
            raise ConfigError(
                "no AWS SDK reads container credentials over a Unix socket",
                hint="listen on 127.0.0.1 for SDK clients; the socket is for clients that "
                "speak HTTP over it (curl --unix-socket)",
            )
        return {environment.FULL_URI: self.url, environment.AUTH_TOKEN_FILE: self.token_file}

    def stats(self) -> BrokerStats:
        """Requests by client and User-Agent, upstream fetches (the provider's
        :meth:`~taskcreds.CredentialProvider.stats`), the set served (no secrets)."""
        return self._ledger.snapshot(
            self._display_url(), self._source_name(), self.provider.peek(), self.provider.stats()
        )

    # -- used by the handlers ----------------------------------------------------------------

    def _display_url(self) -> str:
        if self.unix_socket is not None:
            return self.url
        return self.url if self._server is not None else "(not started)"

    def _source_name(self) -> str:
        source = self.provider.source
        endpoint = getattr(source, "endpoint", None)
        return str(endpoint.display_url) if endpoint is not None else repr(source)

    def _reply_to(
        self, request: Request, local_address: str
    ) -> tuple[Reply, Credentials | None, bool, bool]:
        """The answer to one request: (reply, set served, waited for upstream, close after)."""
        if request.http_major != 1:
            return text_error(505, "505 HTTP Version Not Supported"), None, False, True
        if not self._host_allowed(request.get_all("host"), local_address):
            reply = json_error(
                421,
                "MisdirectedRequest",
                "this credentials broker answers only for its own address and localhost",
            )
            return reply, None, False, True
        path = urlsplit(request.target).path
        if path not in _GUARDED_PATHS:
            return text_error(404, "404 page not found"), None, False, False
        if request.method != "GET":
            return method_not_allowed(), None, False, True
        refusal = self._check_token(request.get_all("authorization"), bearer=path == METRICS_PATH)
        if refusal is not None:
            return refusal, None, False, False
        if path == STATS_PATH:
            return bytes_reply(200, JSON_TYPE, self._stats_body()), None, False, False
        if path == METRICS_PATH:
            return self._metrics.reply(), None, False, False
        credentials, waited = self._credentials_for_request()
        if credentials is None:
            reply = json_error(
                503,
                "CredentialsUninitialized",
                "CredentialsV2Request: Credentials uninitialized for ID",
            )
            return reply, None, waited, False
        return bytes_reply(200, JSON_TYPE, self._body_of(credentials)), credentials, waited, False

    def _host_allowed(self, host_headers: list[str], local_address: str) -> bool:
        if self.unix_socket is not None:
            return True  # no browser reaches a Unix socket: nothing to rebind
        # Clients send the same Host on every request; parsing it as an address each time was
        # a quarter of the broker's CPU per request. Bounded: a flood of names only clears it.
        key = (tuple(host_headers), local_address)
        allowed = self._host_verdicts.get(key)
        if allowed is None:
            allowed = self._hosts.allows(host_headers, local_address) and (
                _port_of_host_header(host_headers[0]) == self._port
            )
            if len(self._host_verdicts) >= _HOST_VERDICTS_MAX:
                self._host_verdicts.clear()
            self._host_verdicts[key] = allowed
        return allowed

    def _check_token(self, values: list[str], *, bearer: bool = False) -> Reply | None:
        """None when the one ``Authorization`` header is the token, else the refusal.

        ``bearer``: also take ``Bearer <token>`` (for ``/metrics``: Prometheus, and every
        scraper built on its HTTP client, can send a token only after a scheme, and refuses to
        set the header any other way). The same token, compared the same way.
        """
        if not values or not values[0]:
            return json_error(
                401,
                "MissingAuthorizationToken",
                "the Authorization header is missing: send the content of "
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            )
        value = values[0]
        if bearer and value[:7].lower() == "bearer ":
            value = value[7:].lstrip(" ")
        presented = value.encode("utf-8", "surrogateescape")
        if len(values) != 1 or not hmac.compare_digest(presented, self._token.encode()):
            return json_error(
                403,
                "InvalidAuthorizationToken",
                "the Authorization token is not this broker's (a stale token file?)",
            )
        return None

    def _credentials_for_request(self) -> tuple[Credentials | None, bool]:
        """The set to answer with, and whether this request had to wait for upstream."""
        credentials = self.provider.peek()
        if credentials is not None:
            if not self.provider.prefetching:
                return self._refreshed_by_request(credentials), False
            return credentials, False
        if time.monotonic() - self._failed_at < FAILURE_HOLD:
            return None, False
        try:
            credentials = self.provider.get()  # single flight: concurrent callers share it
        except TaskCredsError as exc:
            self._failed_at = time.monotonic()
            if not self._ledger.exact_upstream:
                self._ledger.fetched(exc)
            logger.warning("no valid credentials to serve: %s", exc)
            return None, True
        if not self._ledger.exact_upstream:
            self._ledger.fetched(None)
        return credentials, True

    def _refreshed_by_request(self, cached: Credentials) -> Credentials:
        """A provider passed in whose prefetch thread has stopped (it was closed): requests
        refresh it through ``get()`` (the cached set on the hot path, one caller refreshing in
        the windows), so that it never just runs out."""
        if not self._warned_no_prefetch:
            self._warned_no_prefetch = True
            logger.warning(
                "the broker's provider no longer refreshes itself (was it closed?); requests "
                "refresh it now"
            )
        try:
            return self.provider.get()
        except TaskCredsError:
            return cached  # still valid: peek() said so; the failure was logged by the provider

    def _body_of(self, credentials: Credentials) -> bytes:
        cached = self._body_cache
        if cached is not None and cached[0] == credentials.access_key_id:
            return cached[1]
        document = credentials_document(credentials, include_account_id=True)
        body = _compact(document)
        self._body_cache = (credentials.access_key_id, body)
        return body

    def _stats_body(self) -> bytes:
        import json

        return json.dumps(self.stats().to_dict(), separators=(",", ":")).encode()

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            if self._stopping.is_set():
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def _require_started(self) -> None:
        if self._server is None:
            raise RuntimeError("the Broker has not been started")


def _compact(document: dict[str, str]) -> bytes:
    import json

    return json.dumps(document, separators=(",", ":")).encode("utf-8")
