"""Which TCP ports a service's processes listen on, and on which address, read from ``/proc``.

Every service binds its own port on loopback, but a JVM may open more than it was asked for (a web UI,
JMX, an RPC port of its own) and some bind every interface whatever they are told. So ``stack status``
looks at what the processes actually hold: a socket is a ``socket:[<inode>]`` link in
``/proc/<pid>/fd``, and ``/proc/net/tcp`` and ``/proc/net/tcp6`` give each listening socket (state
``0A``) with its inode. Only processes this user may inspect are seen (all of them when the stack runs
as one user, or as root).
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tickflow.processes import session_members

TCP_LISTEN = "0A"
PROC_NET_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket: the address it is bound to and its port."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    @property
    def loopback(self) -> bool:
        """True for 127.0.0.0/8 and ::1, also as an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``, what
        a JVM without ``preferIPv4Stack`` shows for 127.0.0.1)."""
        address = self.address
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback

    def __str__(self) -> str:
        if isinstance(self.address, ipaddress.IPv6Address):
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The kernel prints an address as 32-bit words in host byte order (``%08X`` each); unpack them back
    into the bytes of the address in network order."""
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    packed = b"".join(struct.pack("=I", word) for word in words)
    return ipaddress.IPv4Address(packed) if len(packed) == 4 else ipaddress.IPv6Address(packed)


def parse_proc_net_tcp(text: str) -> dict[int, Listener]:
    """The listening sockets of a ``/proc/net/tcp`` or ``/proc/net/tcp6`` table, by socket inode."""
    listening: dict[int, Listener] = {}
    for line in text.splitlines()[1:]:  # the first line is the header
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        hex_address, hex_port = fields[1].split(":")
        listening[int(fields[9])] = Listener(_address(hex_address), int(hex_port, 16))
    return listening


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets a process holds open (empty when it is gone or not ours to inspect)."""
    inodes: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def listening_sockets(tables: Iterable[Path] = PROC_NET_TCP) -> dict[int, Listener]:
    """Every listening TCP socket of this network namespace, by inode."""
    listening: dict[int, Listener] = {}
    for table in tables:
        try:
            listening.update(parse_proc_net_tcp(table.read_text()))
        except OSError:  # no IPv6 in this kernel
            continue
    return listening


def session_listeners(sid: int) -> list[Listener]:
    """What the processes of a session listen on, sorted, each socket once."""
    listening = listening_sockets()
    held: set[int] = set()
    for pid in session_members(sid):
        held |= socket_inodes(pid)
    # IPv4 and IPv6 addresses do not compare with each other: sort by version first (a process may hold both)
    found = {listening[inode] for inode in held if inode in listening}
    return sorted(found, key=lambda listener: (listener.address.version, listener.address, listener.port))


def beyond_loopback(listeners: Iterable[Listener]) -> list[Listener]:
    """Those reachable from other machines: bound to the wildcard address or to an interface's."""
    return [listener for listener in listeners if not listener.loopback]
