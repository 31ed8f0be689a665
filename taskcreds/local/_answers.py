"""What the local endpoint answers, decided without any I/O: routes, bodies and errors.

Each error is worded as the server it imitates words it: JSON ``{code, message, HTTPErrorCode}`` on
the ECS agent's paths, plain text on the Pod Identity and emulator paths, and Go's plain-text
``404 page not found`` (with the newline Go's ``http.Error`` adds) for any other path.

Two checks come before any of that, because this server usually hands out a developer's own keys
on a well-known port. :class:`HostPolicy` refuses (421) a request whose ``Host`` is not a name the
server answers for, so a web page that rebinds its own name to 127.0.0.1 cannot read the answer as
same-origin. And every credentials path wants a capability: the credentials ID, or in Pod Identity
mode the token (the ID-less emulator paths exist only when asked for with ``compat_paths``).
"""

from __future__ import annotations

import contextlib
import enum
import hmac
import ipaddress
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs

from taskcreds.credentials import Credentials, format_timestamp
from taskcreds.local._sources import ServedSource, as_callable

__all__ = [
    "JSON_TYPE",
    "TEXT_TYPE",
    "THROTTLE_MESSAGE",
    "V1_PATH",
    "V2_PATH",
    "Answers",
    "HostPolicy",
    "Reply",
    "Route",
    "bytes_reply",
    "credentials_document",
    "format_expiration",
    "huge_body",
    "injected_failure",
    "json_error",
    "method_not_allowed",
    "misdirected",
    "normalize_host",
    "text_error",
    "throttled",
    "trickled_body",
]

logger = logging.getLogger("taskcreds.local")

#: The body of the agent's 429 (its rate limiter writes it without a newline).
THROTTLE_MESSAGE = "You have reached maximum request limit."

V2_PATH = "/v2/credentials"
V1_PATH = "/v1/credentials"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
_CHUNK_BYTES = 64 * 1024
# A DNS name as Host carries it (underscores too: Docker resolves service names that have them).
_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
    r"(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)
_PORT = re.compile(r"[0-9]{0,5}")  # RFC 9110 allows an empty port after the colon
# Bound to these, the server is reached through whichever local address the client used.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104


def format_expiration(credentials: Credentials) -> str:
    """``Expiration`` as the agent writes it: RFC 3339 UTC, whole seconds."""
    return format_timestamp(credentials.expiration)


def credentials_document(
    credentials: Credentials, *, include_role_arn: bool = True, include_account_id: bool = False
) -> dict[str, str]:
    """The 200 document, fields in the agent's order (Pod Identity: ``AccountId``, no ``RoleArn``).

    Tests build broken bodies from it, e.g. without ``Token``, for ``Faults.body_override``.
    """
    document: dict[str, str] = {}
    if include_role_arn and credentials.role_arn:
        document["RoleArn"] = credentials.role_arn
    document["AccessKeyId"] = credentials.access_key_id
    document["SecretAccessKey"] = credentials.secret_access_key
    document["Token"] = credentials.token
    if include_account_id and credentials.account_id:
        document["AccountId"] = credentials.account_id
    document["Expiration"] = format_expiration(credentials)
    return document


class Route(enum.Enum):
    """Which real server a path belongs to: that decides how errors are worded."""

    V2 = "ecs agent"
    V1 = "ecs agent, legacy"
    POD_IDENTITY = "eks pod identity agent"
    EMULATOR = "amazon-ecs-local-container-endpoints"
    NOT_FOUND = "no route"

    @property
    def json_errors(self) -> bool:
        return self in (Route.V2, Route.V1)

    @property
    def error_prefix(self) -> str:
        return "CredentialsV1Request" if self is Route.V1 else "CredentialsV2Request"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer; the handler adds ``Date`` and ``Content-Length``."""

    status: int
    content_type: str
    length: int
    #: Written chunk by chunk, so a huge or trickled body is never built in memory.
    body: Iterable[bytes]
    headers: tuple[tuple[str, str], ...] = ()


def bytes_reply(
    status: int, content_type: str, body: bytes, headers: tuple[tuple[str, str], ...] = ()
) -> Reply:
    return Reply(status, content_type, len(body), (body,), headers)


def _compact_json(document: dict[str, Any]) -> bytes:
    # Go's json.Marshal: no spaces.
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def json_error(status: int, code: str, message: str) -> Reply:
    return bytes_reply(
        status,
        JSON_TYPE,
        _compact_json({"code": code, "message": message, "HTTPErrorCode": status}),
    )


def text_error(status: int, text: str) -> Reply:
    # Go's http.Error: a trailing newline, and nosniff.
    return bytes_reply(
        status, TEXT_TYPE, f"{text}\n".encode(), (("X-Content-Type-Options", "nosniff"),)
    )


def throttled(route: Route) -> Reply:
    if route is Route.POD_IDENTITY:
        return text_error(429, "Too Many Requests")
    return bytes_reply(429, TEXT_TYPE, THROTTLE_MESSAGE.encode())


def injected_failure(status: int, route: Route) -> Reply:
    """An injected failure, worded as the server behind ``route`` words that status."""
    if status == 429:
        return throttled(route)
    if route.json_errors:
        prefix = route.error_prefix
        if status == 400:
            return json_error(400, "InvalidIdInRequest", f"{prefix}: Credentials not found")
        if status == 503:
            return json_error(
                503, "CredentialsUninitialized", f"{prefix}: Credentials uninitialized for ID"
            )
        if status == 500:
            return json_error(500, "InternalServerError", "Internal server error")
    return text_error(status, _phrase(status))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def misdirected() -> Reply:
    """The answer to a request for a Host this server does not answer for: nothing worth having."""
    return text_error(421, "Misdirected Request")


def method_not_allowed() -> Reply:
    return bytes_reply(405, TEXT_TYPE, b"", (("Allow", "GET"),))


def trickled_body(body: bytes, interval: float, stopping: threading.Event) -> Reply:
    def bytes_one_by_one() -> Iterator[bytes]:
        for index in range(len(body)):
            if index and stopping.wait(interval):
                return
            yield body[index : index + 1]

    return Reply(200, JSON_TYPE, len(body), bytes_one_by_one())


def huge_body(length: int, stopping: threading.Event) -> Reply:
    def filler() -> Iterator[bytes]:
        chunk = b"x" * _CHUNK_BYTES
        left = length
        while left > 0 and not stopping.is_set():
            piece = chunk if left >= len(chunk) else chunk[:left]
            yield piece
            left -= len(piece)

    return Reply(200, JSON_TYPE, length, filler())


def route_of(path: str, *, pod_identity: bool, compat_paths: bool = False) -> Route:
    if path == V2_PATH or path.startswith(V2_PATH + "/"):
        return Route.V2
    if path == V1_PATH:
        return Route.POD_IDENTITY if pod_identity else Route.V1
    if compat_paths and (
        path == "/creds" or (path.startswith("/role/") and len(path) > len("/role/"))
    ):
        return Route.EMULATOR
    return Route.NOT_FOUND


def normalize_host(text: str) -> str:
    """A host name or address as Host headers are compared: a lowercase name or a canonical address.

    IPv6 may be written with or without brackets; an IPv4-mapped IPv6 address becomes the IPv4 one.
    Raises ValueError for anything else (a port, a wildcard, a URL, an empty string).
    """
    host = text.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise ValueError(f"not an IPv6 address: {text!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if _HOST_NAME.fullmatch(host) is None:
            raise ValueError(f"not a host name or IP address: {text!r}") from None
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _host_of_header(value: str) -> str | None:
    """The normalised host of a ``Host`` header value (port dropped); None when malformed."""
    value = value.strip(" \t")
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[: end + 1], value[end + 1 :]
        if end < 0 or ":" not in host:
            return None
    else:
        host, colon, port = value.partition(":")
        rest = colon + port
    if rest and (not rest.startswith(":") or _PORT.fullmatch(rest[1:]) is None):
        return None
    try:
        return normalize_host(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` headers the server answers: its address, ``localhost``, opted-in names.

    A web page can rebind its own name to 127.0.0.1; the browser then sends that name as ``Host``
    and treats the answer as same-origin. Answering only for names the server owns defeats that.
    An address cannot be rebound as a name can, but only the one the server listens on is
    accepted; bound to a wildcard (0.0.0.0, ::), so are any loopback address and the local address
    the connection arrived at. The port is not checked: a published
    container port (``-p 8080:51679``) changes it, and a rebinding page uses the real one anyway.
    A request without exactly one ``Host`` is refused: every HTTP/1.1 client sends one.
    """

    #: Normalised hosts always accepted.
    hosts: frozenset[str]
    #: Bound to a wildcard: accept loopback literals and the connection's local address too.
    wildcard: bool = False

    @classmethod
    def for_server(cls, bound_host: str, allowed_hosts: Iterable[str] = ()) -> HostPolicy:
        """The policy of a server bound to ``bound_host`` that also answers for ``allowed_hosts``.

        Raises ValueError for an allowed host that is not a host name or IP address.
        """
        hosts = {"localhost", *(normalize_host(name) for name in allowed_hosts)}
        # bind() accepts more than Host can carry ("" for one): such a name never matches.
        with contextlib.suppress(ValueError):
            hosts.add(normalize_host(bound_host))
        return cls(frozenset(hosts), wildcard=bound_host in _WILDCARD_HOSTS)

    def allows(self, host_headers: list[str], local_address: str) -> bool:
        if len(host_headers) != 1:
            return False
        host = _host_of_header(host_headers[0])
        if host is None:
            return False
        if host in self.hosts:
            return True
        if not self.wildcard:
            return False
        try:
            if ipaddress.ip_address(host).is_loopback:
                return True
            return host == normalize_host(local_address)
        except ValueError:
            return False  # a name: only the listed ones


def _read_token_file(path: str) -> str:
    text = Path(path).read_text(encoding="utf-8")
    # Kubernetes writes the token without a newline; editors and `echo` add one.
    return text[:-1] if text.endswith("\n") else text


@dataclass(frozen=True)
class Answers:
    """What the server answers for a well-formed GET; the handler adds faults and does the I/O."""

    source: ServedSource
    credentials_id: str
    pod_identity_token_file: str | None
    include_role_arn: bool
    include_account_id: bool
    hosts: HostPolicy
    #: Answer the emulator's ID-less ``/creds`` and ``/role/<name>`` (off: they are 404).
    compat_paths: bool = False

    def route(self, path: str) -> Route:
        return route_of(
            path,
            pod_identity=self.pod_identity_token_file is not None,
            compat_paths=self.compat_paths,
        )

    def refusal(self, route: Route, target: SplitResult, authorization: str | None) -> Reply | None:
        """The error for a request that may not have credentials; None when it may.

        In Pod Identity mode every credentials path wants the token, whatever else it carries:
        the ID-less emulator paths, and ``/v2/credentials/<id>`` after its ID check.
        """
        if route is Route.NOT_FOUND:
            return text_error(404, "404 page not found")
        refusal: Reply | None = None
        if route is Route.V2:
            refusal = self._check_id(route, target.path[len(V2_PATH) + 1 :])
        elif route is Route.V1:
            refusal = self._check_id(route, parse_qs(target.query).get("id", [""])[0])
        if refusal is None and self.pod_identity_token_file is not None:
            refusal = self._check_token(authorization)
        return refusal

    def credentials_body(self) -> bytes:
        document = credentials_document(
            as_callable(self.source)(),
            include_role_arn=self.include_role_arn,
            include_account_id=self.include_account_id,
        )
        return _compact_json(document)

    def _check_id(self, route: Route, credentials_id: str) -> Reply | None:
        prefix = route.error_prefix
        if not credentials_id:
            return json_error(400, "NoIdInRequest", f"{prefix}: No Credential ID in the request")
        if not hmac.compare_digest(credentials_id.encode(), self.credentials_id.encode()):
            return json_error(400, "InvalidIdInRequest", f"{prefix}: Credentials not found")
        return None

    def _check_token(self, authorization: str | None) -> Reply | None:
        assert self.pod_identity_token_file is not None
        if not authorization:
            return text_error(400, "Service account token cannot be empty")
        try:
            # Re-read on every request: the kubelet rotates the file and clients must follow.
            expected = _read_token_file(self.pod_identity_token_file)
        except OSError as exc:
            logger.warning("cannot read the pod identity token file: %s", exc)
            return text_error(500, "Internal Server Error")
        if not hmac.compare_digest(authorization.encode(), expected.encode()):
            return text_error(403, "Service account token is not valid")
        return None
