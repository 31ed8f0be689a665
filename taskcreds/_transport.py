"""The requests session used for credentials, with a deadline that can cut a request short.

urllib3's read timeout bounds each socket read, not a whole response: a server that trickles its
status line, headers or body a byte at a time could hold a caller far past any deadline. Here every
connection tells the current :class:`Watchdog` which socket it is about to read a response from,
and the watchdog shuts that socket down when the deadline passes, which ends the blocked read.

A fetch also *pins* the addresses a new connection may use (:func:`pinned`): the URL keeps its
host name, so ``Host``, SNI and certificate checks use it, but the TCP connection goes to an
address the endpoint checked moments before, never to whatever a second DNS answer says.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

__all__ = ["Watchdog", "new_session", "pinned"]

_current = threading.local()


class Watchdog:
    """While active on this thread, shuts down the socket in use once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.fired = False

    def __enter__(self) -> Watchdog:
        _current.watchdog = self
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        _current.watchdog = None

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            _shutdown(self._sock)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed: nothing left to cut short
        sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def pinned(addresses: tuple[str, ...] | None) -> Iterator[None]:
    """New connections on this thread go to ``addresses``, in order (None: resolve as usual)."""
    previous = getattr(_current, "addresses", None)
    _current.addresses = addresses
    try:
        yield
    finally:
        _current.addresses = previous


def _report_socket(connection: urllib3.connection.HTTPConnection) -> None:
    watchdog: Watchdog | None = getattr(_current, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(connection.sock)


def _connect_pinned(
    connection: urllib3.connection.HTTPConnection, connect: Callable[[], socket.socket]
) -> socket.socket:
    """``connect()`` once per pinned address until one answers, as ``create_connection`` tries
    each address a name resolves to; without a pin, ``connect()`` resolves the name itself."""
    addresses: tuple[str, ...] | None = getattr(_current, "addresses", None)
    if not addresses:
        return connect()
    name = connection._dns_host
    error: Exception | None = None
    try:
        for address in addresses:
            connection._dns_host = address
            try:
                return connect()
            except (urllib3.exceptions.NewConnectionError, OSError) as exc:
                error = exc
    finally:
        connection._dns_host = name
    assert error is not None
    raise error


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect_pinned(self, super()._new_conn)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _report_socket(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect_pinned(self, super()._new_conn)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _report_socket(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


def new_session() -> requests.Session:
    """A session that ignores proxy variables and .netrc, and honours :class:`Watchdog`."""
    session = requests.Session()
    session.trust_env = False  # no proxy may see a request for link-local credentials
    adapter = _WatchedAdapter(max_retries=0)  # tenacity owns retries
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
