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

import ipaddress
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import urllib3.util

from taskcreds import environment as env
from taskcreds.errors import ConfigError, NotInContainerError, TokenError, UnsupportedHostError

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

Resolver = Callable[[str], Sequence[str]]
"""Maps a host name to the IP addresses it resolves to (as strings)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ECS_ADDRESS = ipaddress.ip_address(env.ECS_HOST)
_EKS_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.170.23"), ipaddress.ip_address("fd00:ec2::23")}
)
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_BUILTIN_ALLOWED = ("loopback", "169.254.170.2", "169.254.170.23", "fd00:ec2::23")
_NOT_IN_CONTAINER_HINT = (
    "set by the ECS agent inside a task whose task definition has a taskRoleArn (or by EKS Pod "
    "Identity); outside ECS, run `python -m taskcreds serve-local` and set the "
    f"{env.FULL_URI}=http://127.0.0.1:51679/v2/credentials/<id> line it prints"
)
#: How long ``resolve_endpoint`` waits for a host name to resolve (a fetch uses its deadline).
RESOLVE_TIMEOUT = 5.0


def system_resolver(host: str) -> list[str]:
    """Resolve ``host`` with the system resolver (``getaddrinfo``), TCP addresses only."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def resolve_within(resolver: Resolver, host: str, seconds: float) -> list[str]:
    """``resolver(host)``, or :class:`TimeoutError` once ``seconds`` have passed.

    ``getaddrinfo`` cannot be interrupted, so it runs in a daemon thread that is left to finish
    on its own: a DNS server that never answers holds no caller past its deadline.
    """
    outcome: list[list[str] | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(list(resolver(host)))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="taskcreds-resolve", daemon=True).start()
    if not done.wait(max(seconds, 0.0)):
        raise TimeoutError(f"resolving {host!r} took longer than {seconds:.2g} s")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


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
            raw = _read_token_file(self.name).removesuffix("\n").removesuffix("\r")
        else:
            raw = self._environ.get(self.name, "")
        return _checked_token(raw, self)


#: A Pod Identity token (a JWT) is about 1 KiB; a bigger file is not a token.
MAX_TOKEN_FILE_BYTES = 16 * 1024


def _read_token_file(path: str) -> str:
    """The file's text, refusing what could block (a FIFO) or grow without end (``/dev/zero``)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TokenError(
            f"cannot read the authorization token file {path}: {exc.strerror}",
            source=path,
            hint=f"check that the file {env.AUTH_TOKEN_FILE} names is mounted and readable",
        ) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TokenError(
                f"the authorization token file {path} is not a regular file",
                source=path,
                hint=f"{env.AUTH_TOKEN_FILE} must name the token file itself (EKS mounts one)",
            )
        data = os.read(fd, MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise TokenError(
            f"cannot read the authorization token file {path}: {exc.strerror}",
            source=path,
        ) from exc
    finally:
        os.close(fd)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise TokenError(
            f"the authorization token file {path} is larger than "
            f"{MAX_TOKEN_FILE_BYTES // 1024} KiB, which no token is",
            source=path,
            hint=f"check that {env.AUTH_TOKEN_FILE} names the token file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenError(
            f"the authorization token file {path} is not UTF-8 text", source=path
        ) from exc


def _checked_token(token: str, source: TokenSource) -> str:
    if "\r" in token or "\n" in token:
        raise TokenError(
            f"the authorization token from {source} contains a line break, which would inject "
            "HTTP headers",
            source=source.name,
            hint="the token must be one line; a file may end with one newline",
        )
    if not token:
        raise TokenError(
            f"the authorization token from {source} is empty",
            source=source.name,
            hint="EKS Pod Identity mounts the token file; check the pod's service account",
        )
    if token != token.strip() or any(not 0x20 <= ord(ch) <= 0x7E for ch in token):
        raise TokenError(
            f"the authorization token from {source} has leading or trailing spaces or characters "
            "that cannot be sent in an HTTP header",
            source=source.name,
            hint="the token must be printable ASCII (EKS tokens are JWTs)",
        )
    return token


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
        if _is_literal(host):
            return None
        addresses = [
            _parse_resolved(text) for text in resolve_within(self._resolver, host, seconds)
        ]
        if not addresses:
            raise OSError(f"{host!r} resolves to no address")
        if parts.scheme.lower() == "http":
            _check_addresses(host, self.allowed_hosts, addresses)
        elif any(address in _METADATA_ADDRESSES for address in addresses):
            raise _unsupported(
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
    return frozenset(_normal_host(name) for name in names if name.strip())


def _normal_host(host: str) -> str:
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _checked_full_uri(url: str, extra: frozenset[str], resolver: Resolver) -> str:
    host, scheme = _parse_full_uri(url)
    if scheme == "https":
        # TLS authenticates the host, so any host may be named; only the metadata service is barred.
        address = _literal_address(host)
        if address is not None and address in _METADATA_ADDRESSES:
            raise _unsupported(
                host, extra, "is the EC2 instance metadata service", can_opt_in=False
            )
        return url
    address = _literal_address(host)
    if address is not None:
        if _address_allowed(address) or (
            str(address) in extra and address not in _METADATA_ADDRESSES
        ):
            return url
        raise _unsupported(
            host,
            extra,
            "is not an address container credentials are served from",
            can_opt_in=address not in _METADATA_ADDRESSES,
        )
    _check_host_name(host, extra, resolver)
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
        raise _unsupported(
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
    if _normal_host(other.host or "") != _normal_host(host) or other.port != port:
        raise ConfigError(f"{env.FULL_URI} is ambiguous: URL parsers disagree on its host")
    return host, scheme


def _literal_address(host: str) -> IPAddress | None:
    """The address a literal host denotes, refusing spellings that hide which one it is."""
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise _unsupported(
                host, frozenset(), "is not a valid IPv6 address", can_opt_in=False
            ) from exc
        return address.ipv4_mapped or address
    labels = host.split(".")
    if all(_numeric_label(label) for label in labels):
        # inet_aton reads "2852039166", "0xa9fea9fe", "0251.0376.0251.0376" and "127.1" as
        # addresses; only the canonical dotted quad is accepted, so what is checked is what is used.
        try:
            address4 = ipaddress.IPv4Address(host)
        except ValueError:
            address4 = None
        if address4 is None or str(address4) != host:
            raise _unsupported(
                host,
                frozenset(),
                "is a non-canonical numeric address; write it as a dotted quad",
                can_opt_in=False,
            )
        return address4
    return None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _numeric_label(label: str) -> bool:
    lowered = label.lower()
    if lowered.startswith("0x"):
        return all(ch in "0123456789abcdef" for ch in lowered[2:])
    return lowered.isdigit() or lowered == ""


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a literal loopback address (no name resolution)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _address_allowed(address: IPAddress) -> bool:
    if address in _METADATA_ADDRESSES:
        return False
    return address.is_loopback or address == _ECS_ADDRESS or address in _EKS_ADDRESSES


def _check_host_name(host: str, extra: frozenset[str], resolver: Resolver) -> None:
    try:
        addresses = [_parse_resolved(text) for text in resolver(host)]
    except (OSError, UnicodeError, ValueError) as exc:
        if host in extra:
            return  # opted into by name; an unresolvable name fails later, at connect
        raise _unsupported(host, extra, f"could not be resolved to check it ({exc})") from exc
    _check_addresses(host, extra, addresses)


def _check_addresses(host: str, extra: frozenset[str], addresses: Sequence[IPAddress]) -> None:
    """Raise unless every address ``host`` resolved to may be asked over http."""
    if any(address in _METADATA_ADDRESSES for address in addresses):
        raise _unsupported(
            host, extra, "resolves to the EC2 instance metadata service", can_opt_in=False
        )
    if host in extra:
        return
    if not addresses:
        raise _unsupported(host, extra, "resolves to no address")
    refused = [str(address) for address in addresses if not _address_allowed(address)]
    if refused:
        raise _unsupported(host, extra, f"resolves to {', '.join(refused)}, which is not allowed")


def _parse_resolved(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _unsupported(
    host: str, extra: frozenset[str], why: str, *, can_opt_in: bool = True
) -> UnsupportedHostError:
    allowed = (*_BUILTIN_ALLOWED, *sorted(extra))
    if can_opt_in:
        hint = (
            f"use https, or opt in to the host with {env.ALLOWED_HOSTS}={host} "
            "(or allowed_hosts=[...])"
        )
    else:
        hint = "no setting allows this host; point FULL_URI at the agent or a loopback emulator"
    return UnsupportedHostError(
        f"{env.FULL_URI} host {host!r} {why}; over http only these are allowed: "
        f"{', '.join(allowed)}",
        host=host,
        allowed=allowed,
        hint=hint,
    )
