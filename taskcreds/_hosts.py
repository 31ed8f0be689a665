"""Which hosts ``FULL_URI`` may name over plain http, and the name resolution that decides it.

Loopback, the ECS address and the EKS Pod Identity addresses are allowed, plus hosts the user opted
into; the EC2 instance-metadata address never is. A literal address is read in its one canonical
spelling only (``inet_aton`` would read ``2852039166`` or ``0xa9fea9fe`` as addresses too), and a
host name is allowed only when *every* address it resolves to is.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Sequence

from taskcreds import environment as env
from taskcreds.errors import UnsupportedHostError

Resolver = Callable[[str], Sequence[str]]
"""Maps a host name to the IP addresses it resolves to (as strings)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ECS_ADDRESS = ipaddress.ip_address(env.ECS_HOST)
_EKS_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.170.23"), ipaddress.ip_address("fd00:ec2::23")}
)
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
BUILTIN_ALLOWED = ("loopback", "169.254.170.2", "169.254.170.23", "fd00:ec2::23")


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


def normal_host(host: str) -> str:
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def literal_address(host: str) -> IPAddress | None:
    """The address a literal host denotes, refusing spellings that hide which one it is."""
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise unsupported(
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
            raise unsupported(
                host,
                frozenset(),
                "is a non-canonical numeric address; write it as a dotted quad",
                can_opt_in=False,
            )
        return address4
    return None


def is_literal(host: str) -> bool:
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


def address_allowed(address: IPAddress) -> bool:
    if address in METADATA_ADDRESSES:
        return False
    return address.is_loopback or address == _ECS_ADDRESS or address in _EKS_ADDRESSES


def check_host_name(host: str, extra: frozenset[str], resolver: Resolver) -> None:
    try:
        addresses = [parse_resolved(text) for text in resolver(host)]
    except (OSError, UnicodeError, ValueError) as exc:
        if host in extra:
            return  # opted into by name; an unresolvable name fails later, at connect
        raise unsupported(host, extra, f"could not be resolved to check it ({exc})") from exc
    check_addresses(host, extra, addresses)


def check_addresses(host: str, extra: frozenset[str], addresses: Sequence[IPAddress]) -> None:
    """Raise unless every address ``host`` resolved to may be asked over http."""
    if any(address in METADATA_ADDRESSES for address in addresses):
        raise unsupported(
            host, extra, "resolves to the EC2 instance metadata service", can_opt_in=False
        )
    if host in extra:
        return
    if not addresses:
        raise unsupported(host, extra, "resolves to no address")
    refused = [str(address) for address in addresses if not address_allowed(address)]
    if refused:
        raise unsupported(host, extra, f"resolves to {', '.join(refused)}, which is not allowed")


def parse_resolved(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def unsupported(
    host: str, extra: frozenset[str], why: str, *, can_opt_in: bool = True
) -> UnsupportedHostError:
    allowed = (*BUILTIN_ALLOWED, *sorted(extra))
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
