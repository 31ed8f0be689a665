"""Who is on the other end of a connection: the peer's PID and process name, where Linux says.

- A Unix-domain socket: ``getsockopt(SO_PEERCRED)`` gives the peer's PID, UID and GID directly.
- Loopback TCP: the client's socket is found by its address pair, first with one netlink
  ``sock_diag`` query (constant time), else by reading ``/proc/net/tcp`` or ``tcp6``. That gives
  the socket's inode (and owner UID); the process that holds it is found by scanning
  ``/proc/<pid>/fd`` for ``socket:[inode]`` (only processes of the same user, or every one as
  root). PIDs found before are scanned first, every lookup is capped in work, and lookups are
  rate-limited, so a storm of new connections cannot make the broker scan ``/proc`` per request.

Whatever cannot be found is left as None: the caller then names the client by its address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Peer", "PeerFinder", "process_name", "unix_peer"]

# netlink sock_diag (linux/sock_diag.h, linux/inet_diag.h)
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NLMSG_HDR = struct.Struct("=IHHII")
# family, protocol, ext, pad, states; sockid: sport, dport (big-endian), src[16], dst[16],
# interface, cookie[2]
_DIAG_REQ_HEAD = struct.Struct("=BBBxI")
_DIAG_PORTS = struct.Struct(">HH")
_DIAG_REQ_TAIL = struct.Struct("=16s16sIII")
_TCP_ALL_STATES = 0xFFFFFFFF
_NO_COOKIE = 0xFFFFFFFF
# inet_diag_msg: 4 bytes head, 48 bytes sockid, then expires, rqueue, wqueue, uid, inode (u32 each)
_DIAG_MSG_TAIL = struct.Struct("=IIIII")
_DIAG_TAIL_OFFSET = 4 + 48

#: At most this many ``readlink`` calls per lookup, so a busy machine bounds the scan.
_MAX_READLINKS = 20_000
#: Lookups per second allowed (a token bucket); beyond that a new connection is named by address.
_LOOKUPS_PER_SECOND = 50.0
_LOOKUP_BURST = 100.0
_KNOWN_PIDS = 64


@dataclass(frozen=True)
class Peer:
    """The process behind a connection, as far as it could be found."""

    pid: int | None = None
    uid: int | None = None
    #: ``/proc/<pid>/comm``: the executable's name, at most 15 characters.
    name: str | None = None


def process_name(pid: int) -> str | None:
    """The process's ``comm`` name, or None when it is gone or not readable."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
            return comm.read(64).strip() or None
    except OSError:
        return None


def unix_peer(connection: socket.socket) -> Peer:
    """The peer of a Unix-domain stream socket, from ``SO_PEERCRED``."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return Peer()
    try:
        pid, uid, _gid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return Peer()
    if pid <= 0:
        return Peer(uid=uid)
    return Peer(pid=pid, uid=uid, name=process_name(pid))


class PeerFinder:
    """Finds the process that holds the client end of a loopback TCP connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = _LOOKUP_BURST
        self._counted_at = time.monotonic()
        # PIDs that were clients before: scanned first, as a new connection is usually theirs.
        self._known: OrderedDict[int, None] = OrderedDict()
        self._netlink_works = True
        self._uid = os.geteuid()

    def find(self, client: tuple[str, int], server: tuple[str, int]) -> Peer:
        """The process whose socket is ``client`` connected to ``server``; Peer() if unknown."""
        if not self._take_token():
            return Peer()
        found = self._socket_inode(client, server)
        if found is None:
            return Peer()
        inode, uid = found
        if self._uid not in (0, uid):
            return Peer(uid=uid)  # another user's fds cannot be read
        pid = self._pid_holding(inode)
        if pid is None:
            return Peer(uid=uid)
        return Peer(pid=pid, uid=uid, name=process_name(pid))

    def _take_token(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(
                _LOOKUP_BURST, self._tokens + (now - self._counted_at) * _LOOKUPS_PER_SECOND
            )
            self._counted_at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    # -- the socket's inode --------------------------------------------------------------------

    def _socket_inode(
        self, client: tuple[str, int], server: tuple[str, int]
    ) -> tuple[int, int] | None:
        if self._netlink_works:
            try:
                return _diag_inode(client, server)
            except OSError:
                self._netlink_works = False  # not allowed here (seccomp...): use /proc
        return _proc_net_inode(client, server)

    # -- the process ---------------------------------------------------------------------------

    def _pid_holding(self, inode: int) -> int | None:
        target = f"socket:[{inode}]"
        budget = [_MAX_READLINKS]
        with self._lock:
            known = list(reversed(self._known))
        for pid in known:
            if _holds(pid, target, budget):
                self._remember(pid)
                return pid
        try:
            pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            return None
        for pid in pids:
            if pid in known:
                continue
            if budget[0] <= 0:
                return None
            if _holds(pid, target, budget):
                self._remember(pid)
                return pid
        return None

    def _remember(self, pid: int) -> None:
        with self._lock:
            self._known[pid] = None
            self._known.move_to_end(pid)
            while len(self._known) > _KNOWN_PIDS:
                self._known.popitem(last=False)


def _holds(pid: int, target: str, budget: list[int]) -> bool:
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    for name in names:
        budget[0] -= 1
        if budget[0] < 0:
            return False
        with contextlib.suppress(OSError):
            if os.readlink(f"{directory}/{name}") == target:
                return True
    return False


def _packed(address: str) -> tuple[int, bytes]:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return socket.AF_INET6, ip.packed
    return socket.AF_INET, ip.packed + bytes(12)


def _diag_inode(client: tuple[str, int], server: tuple[str, int]) -> tuple[int, int] | None:
    """One netlink query for the socket whose local end is ``client`` and remote ``server``."""
    family, source = _packed(client[0])
    _, destination = _packed(server[0])
    request = (
        _DIAG_REQ_HEAD.pack(family, socket.IPPROTO_TCP, 0, _TCP_ALL_STATES)
        + _DIAG_PORTS.pack(client[1], server[1])
        + _DIAG_REQ_TAIL.pack(source, destination, 0, _NO_COOKIE, _NO_COOKIE)
    )
    header = _NLMSG_HDR.pack(
        _NLMSG_HDR.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as link:
        link.settimeout(0.5)
        link.send(header + request)
        answer = link.recv(8192)
    if len(answer) < _NLMSG_HDR.size:
        return None
    _length, kind, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(answer)
    if kind == _NLMSG_ERROR:
        return None  # ENOENT: no such socket (the client already closed it)
    body = answer[_NLMSG_HDR.size :]
    if kind != _SOCK_DIAG_BY_FAMILY or len(body) < _DIAG_TAIL_OFFSET + _DIAG_MSG_TAIL.size:
        return None
    _expires, _rqueue, _wqueue, uid, inode = _DIAG_MSG_TAIL.unpack_from(body, _DIAG_TAIL_OFFSET)
    return (inode, uid) if inode else None


def _proc_hex(address: str, port: int) -> str:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        text = struct.pack("<I", int.from_bytes(ip.packed, "big")).hex()
    else:  # four 32-bit words, each in host (little-endian) order
        words = struct.unpack(">4I", ip.packed)
        text = struct.pack("<4I", *words).hex()
    return f"{text.upper()}:{port:04X}"


def _proc_net_inode(client: tuple[str, int], server: tuple[str, int]) -> tuple[int, int] | None:
    """The client socket's inode and UID from ``/proc/net/tcp`` (or ``tcp6``)."""
    ipv6 = ":" in client[0]
    local, remote = _proc_hex(*client), _proc_hex(*server)
    table = "/proc/net/tcp6" if ipv6 else "/proc/net/tcp"
    try:
        with open(table, encoding="ascii", errors="replace") as lines:
            next(lines, None)  # the header
            for line in lines:
                fields = line.split()
                if len(fields) > 9 and fields[1] == local and fields[2] == remote:
                    return int(fields[9]), int(fields[7])
    except (OSError, ValueError):
        return None
    return None
