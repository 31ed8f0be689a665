"""The loopback HTTP server the broker and the local agent share: threads, no reverse DNS."""

from __future__ import annotations

import logging
import socket
import socketserver
import sys
from http.server import ThreadingHTTPServer
from typing import Any

__all__ = ["LoopbackHTTPServer", "log_handler_error"]


def log_handler_error(logger: logging.Logger, client_address: Any) -> None:
    """A handler's failure: a client that went away is routine (DEBUG), anything else an ERROR."""
    error = sys.exc_info()[1]
    if isinstance(error, OSError):
        logger.debug("connection from %s failed: %s", client_address, error)
    else:
        logger.error("error while answering %s", client_address, exc_info=True)


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server on an IPv4 or IPv6 address that never sends a DNS query."""

    daemon_threads = True
    #: Where handler failures are logged; subclasses name their own logger.
    error_logger = logging.getLogger("taskcreds")

    def __init__(
        self, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler]
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(): a reverse DNS query this server must
        # never send. TCPServer's bind is all that is needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        log_handler_error(self.error_logger, client_address)
