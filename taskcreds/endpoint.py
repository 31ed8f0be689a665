"""Turn the container-credentials variables into an :class:`Endpoint`, or say why not.

No HTTP happens here. For ``FULL_URI`` over plain http the host must be one the agents use
(loopback, the ECS address, the EKS Pod Identity addresses) or one the user opted into; a host name
is resolved and *every* address it resolves to must be allowed, as go-v2, java-v2 and the Rust SDK
do. The EC2 instance-metadata address is never allowed, not even by opt-in.

Resolution here decides only whether the host is allowed. Every fetch resolves the name again,
within its deadline, checks every address once more (:meth:`Endpoint.connect_addresses`) and
connects to a checked address while the request keeps the original ``Host`` (and SNI): a name
whose answer changes between the check and the connection (DNS rebinding) cannot reach an
address that was never checked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import urllib3.util

from taskcreds import environment as env
from taskcreds._hosts import (
    METADATA_ADDRESSES,
    Resolver,
    address_allowed,
    check_addresses,
    check_host_name,
    is_literal,
    literal_address,
    normal_host,
    parse_resolved,
    resolve_within,
    system_resolver,
    unsupported,
)

# Names this module has always offered beyond __all__ (fetch and serve-local import them).
from taskcreds._hosts import IPAddress as IPAddress  # noqa: PLC0414
from taskcreds._hosts import is_loopback_host as is_loopback_host  # noqa: PLC0414
from taskcreds._token import MAX_TOKEN_FILE_BYTES as MAX_TOKEN_FILE_BYTES  # noqa: PLC0414
from taskcreds._token import checked_token, read_token_file
from taskcreds.errors import ConfigError, NotInContainerError

__all__ = [
    "RESOLVE_TIMEOUT",
    "Endpoint",
    "Resolver",
    "TokenSource",
    "redact_url",
    "resolve_endpoint",
    "resolve_within",
    "system_resolver",
    "url_secrets",
]

logger = logging.getLogger("taskcreds")

_NOT_IN_CONTAINER_HINT = (
    "set by the ECS agent inside a task whose task definition has a taskRoleArn (or by EKS Pod "
    "Identity); outside ECS, run `python -m taskcreds serve-local` and set the "
    f"{env.FULL_URI}=http://127.0.0.1:51679/v2/credentials/<id> line it prints"
)
#: How long ``resolve_endpoint`` waits for a host name to resolve (a fetch uses its deadline).
RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True)
class TokenSource:
    """Where the ``Authorization`` header value comes from; never the value itself."""

    kind: Literal["file", "variable"]
    #: The file path (``kind == "file"``) or the variable name (``kind == "variable"``).
    name: str
    _environ: Mapping[str, str] = field(repr=False, compare=False, default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    def read(self) -> str:
        """Read the token now: the file is re-read on every call, because EKS rotates it."""
        if self.kind == "file":
            # Files usually end with one newline; that one is not part of the token.
            raw = read_token_file(self.name).removesuffix("\n").removesuffix("\r")
        else:
            raw = self._environ.get(self.name, "")
        return checked_token(raw, self)


@dataclass(frozen=True, repr=False)
class Endpoint:
    """A resolved credentials endpoint: where to ask, and where the token comes from."""

    #: The URL as configured (RELATIVE_URI already joined to ``http://169.254.170.2``).
    url: str
    #: The variable the URL came from.
    variable: str
    token_source: TokenSource | None = None
    #: Findings worth showing a user, such as both URI variables being set.
    warnings: tuple[str, ...] = ()
    #: Host names or addresses the user opted into for http (normalised).
    allowed_hosts: frozenset[str] = frozenset()
    _resolver: Resolver = field(default=system_resolver, repr=False, compare=False)

    def __repr__(self) -> str:
        # The credentials ID in the URL is hidden, as in the agent's own audit log.
        return (
            f"Endpoint(url={self.display_url!r}, variable={self.variable!r}, "
            f"token_source={self.token_source!r}, warnings={self.warnings!r})"
        )

    @property
    def kind(self) -> Literal["relative", "full"]:
        return "relative" if self.variable == env.RELATIVE_URI else "full"

    @property
    def display_url(self) -> str:
        """The URL with the credentials ID hidden, as the ECS agent's own audit log does."""
        return redact_url(self.url)

    def authorization(self) -> str | None:
        """The ``Authorization`` header value for one request, read now (or None)."""
        return self.token_source.read() if self.token_source is not None else None

    def connect_addresses(self, seconds: float) -> tuple[str, ...] | None:
        """The addresses a request may connect to now, resolved and checked within ``seconds``.

        None when the URL names a literal address (it was checked when the endpoint was
        resolved, and nothing can change what it means). For an http host name every address
        is checked again as :func:`resolve_endpoint` does, so a rebound name raises
        :class:`UnsupportedHostError`; an https name may resolve to anything TLS can check, which
        excludes the metadata service.
        Raises :class:`OSError` (or :class:`TimeoutError`) when the name does not resolve.
        """
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if is_literal(host):
            return None
        addresses = [parse_resolved(text) for text in resolve_within(self._resolver, host, seconds)]
        if not addresses:
            raise OSError(f"{host!r} resolves to no address")
        if parts.scheme.lower() == "http":
            check_addresses(host, self.allowed_hosts, addresses)
        elif any(address in METADATA_ADDRESSES for address in addresses):
            raise unsupported(
                host,
                self.allowed_hosts,
                "resolves to the EC2 instance metadata service",
                can_opt_in=False,
            )
        return tuple(str(address) for address in addresses)

    def redactions(self, token: str | None = None) -> tuple[str, ...]:
        """What must never appear in text derived from this endpoint's answers."""
        return (*url_secrets(self.url), *((token,) if token else ()))


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that :func:`redact_url` hides: the credentials ID and query values."""
    parts = urlsplit(url)
    found: list[str] = []
    marker = "/credentials/"
    where = parts.path.find(marker)
    if where != -1 and len(parts.path) > where + len(marker):
        found.append(parts.path[where + len(marker) :])
    found += [pair.partition("=")[2] for pair in parts.query.split("&") if "=" in pair]
    return [secret for secret in found if secret]


def redact_url(url: str) -> str:
    """Hide the credentials ID in an agent URL: anyone who has it can fetch the role's keys."""
    parts = urlsplit(url)
    path = parts.path
    marker = "/credentials/"
    where = path.find(marker)
    if where != -1 and len(path) > where + len(marker):
        ident = path[where + len(marker) :]
        path = path[: where + len(marker)] + ("…" + ident[-4:] if len(ident) > 8 else "…")
    query = "&".join(
        f"{pair.partition('=')[0]}=…" if "=" in pair else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def resolve_endpoint(
    environ: Mapping[str, str] | None = None,
    *,
    allowed_hosts: Iterable[str] = (),
    resolver: Resolver = system_resolver,
    timeout: float = RESOLVE_TIMEOUT,
) -> Endpoint:
    """Read the container-credentials variables and return the endpoint to ask.

    ``allowed_hosts`` (and ``TASKCREDS_ALLOWED_HOSTS``) name extra hosts that ``FULL_URI`` may use
    over plain http. A host name is resolved within ``timeout`` seconds. Raises
    :class:`NotInContainerError`, :class:`UnsupportedHostError` or :class:`TokenError` (all
    :class:`ConfigError`).
    """
    environ = os.environ if environ is None else environ
    relative = environ.get(env.RELATIVE_URI, "")
    full = environ.get(env.FULL_URI, "")
    warnings: list[str] = []
    extra: frozenset[str] = frozenset()
    if relative:
        if full:
            warnings.append(
                f"both {env.RELATIVE_URI} and {env.FULL_URI} are set; using {env.RELATIVE_URI} "
                "(every AWS SDK does the same)"
            )
            logger.warning(warnings[-1])
        url, variable = _relative_url(relative), env.RELATIVE_URI
    elif full:
        extra = _extra_hosts(allowed_hosts, environ.get(env.ALLOWED_HOSTS, ""))
        url = _checked_full_uri(full, extra, lambda host: resolve_within(resolver, host, timeout))
        variable = env.FULL_URI
    else:
        raise NotInContainerError(
            f"neither {env.RELATIVE_URI} nor {env.FULL_URI} is set: this process is not running in "
            "an ECS task or EKS pod with a role",
            hint=_NOT_IN_CONTAINER_HINT,
        )
    return Endpoint(
        url=url,
        variable=variable,
        token_source=_token_source(environ),
        warnings=tuple(warnings),
        allowed_hosts=extra,
        _resolver=resolver,
    )


def _relative_url(relative: str) -> str:
    # Without the leading slash, "http://169.254.170.2" + "@evil.example/" would change the host.
    if not relative.startswith("/") or any(ch.isspace() or ord(ch) < 0x20 for ch in relative):
        raise ConfigError(
            f"{env.RELATIVE_URI} must be a path starting with '/' and without spaces or control "
            "characters (the ECS agent sets /v2/credentials/<id>)",
            hint="do not set this variable by hand; the ECS agent sets it",
        )
    return f"http://{env.ECS_HOST}{relative}"


def _token_source(environ: Mapping[str, str]) -> TokenSource | None:
    path = environ.get(env.AUTH_TOKEN_FILE, "")
    if path:
        return TokenSource("file", path)
    if env.AUTH_TOKEN in environ:
        source = TokenSource("variable", env.AUTH_TOKEN, environ)
        source.read()  # a bad token is a configuration error; say so before any request
        return source
    return None


def _extra_hosts(allowed_hosts: Iterable[str], from_environ: str) -> frozenset[str]:
    names = [*allowed_hosts, *from_environ.split(",")]
    return frozenset(normal_host(name) for name in names if name.strip())


def _checked_full_uri(url: str, extra: frozenset[str], resolver: Resolver) -> str:
    host, scheme = _parse_full_uri(url)
    if scheme == "https":
        # TLS authenticates the host, so any host may be named; only the metadata service is barred.
        address = literal_address(host)
        if address is not None and address in METADATA_ADDRESSES:
            raise unsupported(host, extra, "is the EC2 instance metadata service", can_opt_in=False)
        return url
    address = literal_address(host)
    if address is not None:
        if address_allowed(address) or (
            str(address) in extra and address not in METADATA_ADDRESSES
        ):
            return url
        raise unsupported(
            host,
            extra,
            "is not an address container credentials are served from",
            can_opt_in=address not in METADATA_ADDRESSES,
        )
    check_host_name(host, extra, resolver)
    return url


def _parse_full_uri(url: str) -> tuple[str, str]:
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url):
        raise ConfigError(
            f"{env.FULL_URI} contains spaces, control characters or backslashes",
            hint="set it to a plain URL such as http://127.0.0.1:51679/v2/credentials/<id>",
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"{env.FULL_URI} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(
            f"{env.FULL_URI} must use http or https, not {parts.scheme or 'no scheme'!r}",
            hint="for example http://169.254.170.23/v1/credentials",
        )
    if "@" in parts.netloc:
        raise ConfigError(
            f"{env.FULL_URI} must not contain a user name or password",
            hint="credentials endpoints take no userinfo; remove the part before '@'",
        )
    host = parts.hostname or ""
    if not host:
        raise ConfigError(f"{env.FULL_URI} has no host")
    if "%" in host:
        raise unsupported(
            host, frozenset(), "has an IPv6 zone id or an escaped character", can_opt_in=False
        )
    if not host.isascii():
        # Fullwidth digits, circled letters and ideographic dots normalise to other hosts
        # ("１２７.0.0.1" is 127.0.0.1 after NFKC): one spelling per host, so ASCII only.
        raise ConfigError(
            f"{env.FULL_URI} host {host!r} is not ASCII",
            hint="write an internationalised name in its xn-- (punycode) form",
        )
    # The URL must mean the same host to the parser that will send the request.
    try:
        other = urllib3.util.parse_url(url)
    except ValueError as exc:  # urllib3's LocationParseError
        raise ConfigError(f"{env.FULL_URI} is not a valid URL: {exc}") from exc
    if normal_host(other.host or "") != normal_host(host) or other.port != port:
        raise ConfigError(f"{env.FULL_URI} is ambiguous: URL parsers disagree on its host")
    return host, scheme
