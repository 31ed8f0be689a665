"""The transport: the deadline watchdog and pinned connections, without a network."""

from __future__ import annotations

import socket
import threading

import pytest

from taskcreds import _transport
from taskcreds._transport import Watchdog, new_session, pinned


def test_watchdog_shuts_the_watched_socket_down_when_it_fires() -> None:
    left, right = socket.socketpair()
    with left, right:
        fired = threading.Event()
        watchdog = Watchdog(0.05)
        original = watchdog._fire

        def fire() -> None:
            original()
            fired.set()

        watchdog._timer.function = fire  # type: ignore[attr-defined]  # before the timer starts
        watchdog.watch(left)
        with watchdog:
            assert fired.wait(5)
            assert watchdog.fired
            assert left.recv(1) == b""  # shut down: the blocked read would have ended


def test_watchdog_that_already_fired_shuts_a_socket_watched_late() -> None:
    left, right = socket.socketpair()
    with left, right:
        watchdog = Watchdog(3600)
        watchdog._fire()
        watchdog.watch(left)
        assert left.recv(1) == b""


def test_watchdog_cancelled_on_exit_leaves_the_socket_alone() -> None:
    left, right = socket.socketpair()
    with left, right:
        with Watchdog(3600) as watchdog:
            watchdog.watch(left)
        assert not watchdog.fired
        right.sendall(b"x")
        assert left.recv(1) == b"x"


def test_pinned_sets_and_restores_the_thread_local() -> None:
    assert getattr(_transport._current, "addresses", None) is None
    with pinned(("127.0.0.1",)):
        assert _transport._current.addresses == ("127.0.0.1",)
        with pinned(None):
            assert _transport._current.addresses is None
        assert _transport._current.addresses == ("127.0.0.1",)
    assert _transport._current.addresses is None


class FakeConnection:
    def __init__(self) -> None:
        self._dns_host = "name.test"
        self.tried: list[str] = []


def test_connect_pinned_tries_each_address_in_order_and_restores_the_name() -> None:
    connection = FakeConnection()
    ok = socket.socket()

    def connect() -> socket.socket:
        connection.tried.append(connection._dns_host)
        if connection._dns_host != "127.0.0.1":
            raise ConnectionRefusedError("refused")
        return ok

    with ok, pinned(("::1", "127.0.0.1")):
        assert _transport._connect_pinned(connection, connect) is ok  # type: ignore[arg-type]
    assert connection.tried == ["::1", "127.0.0.1"]
    assert connection._dns_host == "name.test"


def test_connect_pinned_raises_the_last_error_when_every_address_fails() -> None:
    connection = FakeConnection()

    def connect() -> socket.socket:
        raise ConnectionRefusedError(connection._dns_host)

    with pinned(("::1", "127.0.0.2")), pytest.raises(ConnectionRefusedError, match=r"127\.0\.0\.2"):
        _transport._connect_pinned(connection, connect)  # type: ignore[arg-type]
    assert connection._dns_host == "name.test"


def test_without_a_pin_the_name_is_resolved_as_usual() -> None:
    connection = FakeConnection()

    def connect() -> socket.socket:
        connection.tried.append(connection._dns_host)
        raise OSError("stop")

    with pytest.raises(OSError, match="stop"):
        _transport._connect_pinned(connection, connect)  # type: ignore[arg-type]
    assert connection.tried == ["name.test"]


def test_new_session_ignores_the_environment_and_retries_nothing() -> None:
    session = new_session()
    assert session.trust_env is False
    adapter = session.get_adapter("http://127.0.0.1/")
    assert adapter.max_retries.total == 0  # type: ignore[attr-defined]
