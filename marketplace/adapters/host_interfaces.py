"""This host's network interfaces: the addresses they carry (``ip -j addr``). What a service bound to every address
(``0.0.0.0``, ``::``) tells the others to dial, and the subnets a private-swarm node accepts, come from here."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Sequence

IpInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def interface_addresses() -> list[IpInterface]:
    """Every address of this host's network interfaces with its prefix (loopback included), in ``ip``'s order;
    empty if ``ip`` is missing or fails."""
    ip = shutil.which("ip")
    if ip is None:
        return []
    try:
        out = subprocess.run([ip, "-j", "addr"], capture_output=True, text=True, timeout=10, check=True).stdout
        links = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    found: list[IpInterface] = []
    for link in links:
        for info in link.get("addr_info", []):
            if "local" in info and "prefixlen" in info:
                found.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"))
    return found


def dialable_addresses(
    bound: IpAddress, interfaces: Sequence[IpInterface] | None = None, *, dual_stack: bool = False
) -> list[IpAddress]:
    """The addresses others may dial a socket bound to ``bound`` at: ``bound`` itself; for an unspecified one
    (``0.0.0.0``, ``::``), each address of this host's ``interfaces`` (default: :func:`interface_addresses`) of its
    family, and IPv4's too for a ``dual_stack`` IPv6 socket, the others' first and loopback last, without repeats
    or IPv6 link-local addresses (a URL cannot say their interface); its family's loopback address if none is
    known."""
    if not bound.is_unspecified:
        return [bound]
    families = {bound.version, 4} if dual_stack else {bound.version}
    found = interface_addresses() if interfaces is None else interfaces
    served = dict.fromkeys(a.ip for a in found if a.version in families and not a.ip.is_link_local)
    loopback = ipaddress.ip_address("::1" if bound.version == 6 else "127.0.0.1")
    return sorted(served, key=lambda ip: ip.is_loopback) or [loopback]
