"""The broker's parts that need no server: the client environment, the
``--listen`` parser, Host ports, and finding a peer's PID (on real local sockets)."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

import pytest

from taskcreds.broker import client_environment
from taskcreds.broker._broker import _port_of_host_header
from taskcreds.broker._peers import PeerFinder, unix_peer
from taskcreds.cli.broker import listen_address


def test_client_environment_removes_relative_uri_and_plain_token() -> None:
    environ = {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "upstream-token",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/eks/token",
        "PATH": "/usr/bin",
    }
    broker = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1234/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/tmp/b/token",
    }
    assert client_environment(environ, broker) == {"PATH": "/usr/bin", **broker}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8111", ("127.0.0.1", 8111)),
        ("127.0.0.1", ("127.0.0.1", 0)),
        (":9000", ("127.0.0.1", 9000)),
        ("[::1]:80", ("::1", 80)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_address(text: str, expected: tuple[str, int]) -> None:
    assert listen_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:x", "::1:80", "[::1", "127.0.0.1:70000"])
def test_listen_address_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        listen_address(text)


@pytest.mark.parametrize(
    ("header", "port"),
    [("127.0.0.1:8080", 8080), ("localhost", 80), ("[::1]:9", 9), ("a:b", None)],
)
def test_port_of_host_header(header: str, port: int | None) -> None:
    assert _port_of_host_header(header) == port


def test_unix_peer_is_this_process(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            accepted, _ = server.accept()
            with accepted:
                peer = unix_peer(accepted)
    assert peer.pid == os.getpid()
    assert peer.uid == os.geteuid()
    assert peer.name


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_tcp_peer_is_this_process(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as server:
        server.bind((host, 0))
        server.listen()
        with socket.create_connection(server.getsockname()[:2]):
            accepted, address = server.accept()
            with accepted:
                peer = PeerFinder().find(address[:2], accepted.getsockname()[:2])
    assert peer.pid == os.getpid()
