"""Addresses: whether a host is this machine only (loopback).

One check for both sides: the gateway refuses to listen on a public address without a key and
trusts loopback clients on its control routes; the supervisor warns when a provider listens on
anything but loopback.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8, ``::1`` (bracketed or with a ``%zone``) and an
    IPv4-mapped loopback (``::ffff:127.0.0.1``); False for anything else, names included."""
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))
