"""Which client a request comes from, for the limits the server keeps per client (pins without a wallet, IPFS
fetches for visitors).

A client is its network address as the server sees it (behind a reverse proxy, start uvicorn with
``--proxy-headers``), but an IPv6 host usually holds a whole /64 and picks addresses in it at will: an IPv6 client
is its /64, an IPv4 client its address (an IPv4-mapped IPv6 address ``::ffff:a.b.c.d`` is the IPv4 address it
maps). Anything that is not an IP address (a Unix socket, a test client's name) is kept as it is.
"""

from __future__ import annotations

import ipaddress

#: The prefix an IPv6 client is known by: what one site is usually given.
IPV6_PREFIX = 64


def client_key(host: str | None) -> str:
    """The key of the client at ``host`` (see the module docstring): ``"192.0.2.7"``, ``"2001:db8:1:2::/64"``;
    ``"unknown"`` when the server does not know the address."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) names no other host
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)
