"""Which TCP sockets a set of processes listens on, cheaply.

psutil's ``net_connections`` parses all of ``/proc/net/tcp`` and ``tcp6`` for every process it
is asked about; on a machine with a few thousand sockets (TIME_WAIT ones included: every probe
leaves one) that cost 14-20 ms a call, most of an idle supervisor's CPU. Here the kernel is
asked for the listening sockets alone (``NETLINK_SOCK_DIAG`` with a state filter, a few
hundred microseconds), once per call, and each process's ``/proc/<pid>/fd`` says which of them
it holds. Where netlink is refused, the ``/proc/net`` tables are read instead (the slow way,
still once per call rather than once per process). Linux only; elsewhere psutil answers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
from collections.abc import Iterable

import psutil

Listen = tuple[str, int]  # (ip, port)

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states, id
_MESSAGE = struct.Struct("=BBBB2s2s16s16sIQIIIII")  # inet_diag_msg (sport/dport big-endian)


def listening(pids: Iterable[int]) -> set[Listen]:
    """The (ip, port) pairs on which any of ``pids`` listens (TCP). Blocking: reads /proc."""
    pids = list(pids)
    if not sys.platform.startswith("linux"):
        return _with_psutil(pids)
    table = _diag_listens()
    if table is None:
        table = _proc_net_listens()
    held = set()
    for pid in pids:
        held |= _socket_inodes(pid)
    return {table[i] for i in held if i in table}


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets ``pid`` holds open (none if it is gone or not ours to read)."""
    out = set()
    folder = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(folder):
            with contextlib.suppress(OSError):
                target = os.readlink(f"{folder}/{fd}")
                if target.startswith("socket:["):
                    out.add(int(target[8:-1]))
    return out


def _diag_listens() -> dict[int, Listen] | None:
    """inode → (ip, port) of every listening TCP socket, from the kernel; None if refused."""
    out: dict[int, Listen] = {}
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(1.0)
            for family in (socket.AF_INET, socket.AF_INET6):
                if not _dump(sock, family, out):
                    return None
    except OSError:
        return None
    return out


def _dump(sock: socket.socket, family: int, out: dict[int, Listen]) -> bool:
    """One family's listening sockets into ``out``; False when the kernel answers an error."""
    body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
    sock.sendto(_HEADER.pack(_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY,
                             _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + body, (0, 0))
    while True:
        data = sock.recv(65536)
        at = 0
        while at + _HEADER.size <= len(data):
            length, kind, _, _, _ = _HEADER.unpack_from(data, at)
            if kind == _NLMSG_DONE:
                return True
            if kind == _NLMSG_ERROR or length < _HEADER.size:
                return False
            msg = _MESSAGE.unpack_from(data, at + _HEADER.size)
            fam, sport, src, inode = msg[0], msg[4], msg[6], msg[-1]
            raw = src[:4] if fam == socket.AF_INET else src
            out[inode] = (socket.inet_ntop(fam, raw), int.from_bytes(sport, "big"))
            at += (length + 3) & ~3


def _proc_net_listens() -> dict[int, Listen]:
    """The same table from ``/proc/net/tcp`` and ``tcp6`` (state ``0A`` is LISTEN)."""
    out: dict[int, Listen] = {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        with contextlib.suppress(OSError), open(f"/proc/net/{name}", "rb") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == b"0A":
                    hex_ip, hex_port = fields[1].split(b":")
                    out[int(fields[9])] = (_proc_ip(hex_ip, family), int(hex_port, 16))
    return out


def _proc_ip(hex_ip: bytes, family: int) -> str:
    """/proc/net prints addresses as 32-bit words in host order."""
    raw = bytes.fromhex(hex_ip.decode())
    words = b"".join(struct.pack("=I", int.from_bytes(raw[i:i + 4], "big"))
                     for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, words)


def _with_psutil(pids: list[int]) -> set[Listen]:
    out = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(pid).net_connections(kind="tcp"):
                if c.status == psutil.CONN_LISTEN and c.laddr:
                    out.add((c.laddr.ip, c.laddr.port))
    return out
