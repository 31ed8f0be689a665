"""A raw HTTP client for the broker tests: any Host, any Authorization, on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(
    url: str,
    *,
    token: str | None = None,
    host: str | None = None,
    path: str | None = None,
    method: str = "GET",
    timeout: float = 5.0,
) -> Answer:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.putrequest(method, path or parts.path, skip_host=True)
        connection.putheader("Host", host if host is not None else parts.netloc)
        if token is not None:
            connection.putheader("Authorization", token)
        connection.endheaders()
        response = connection.getresponse()
        return Answer(response.status, response.getheader("Content-Type") or "", response.read())
    finally:
        connection.close()
