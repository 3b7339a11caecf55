"""How the embedded node joins a swarm: multiaddrs, the private-swarm key and the Kubo config.

Pure functions (no network, no Kubo library), used by :mod:`kubo_embed` when the node starts and by
the CLI. The default settings keep the node on loopback: it listens on ``/ip4/127.0.0.1/tcp/0``,
dials nobody, and its address filters refuse every non-loopback address.

A *private swarm* is Kubo's pre-shared-key network: every node holds the same ``swarm.key`` file
(``/key/swarm/psk/1.0.0/``, ``/base16/``, 64 hex digits) and libp2p refuses connections from nodes
without it. The key's *fingerprint* (:func:`swarm_key_fingerprint`) may be published so that
participants can check they hold the same key without revealing it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiformats import multibase, multihash

from marketplace.adapters.host_interfaces import interface_addresses
from marketplace.adapters.ipfs.errors import StorageError

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_LISTEN = "/ip4/127.0.0.1/tcp/0"
SWARM_KEY_HEADER = "/key/swarm/psk/1.0.0/"
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

# The public bootstrap peers of Kubo 0.22, as the embedded library writes them into a new repo.
KUBO_DEFAULT_BOOTSTRAP = (
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
    "/ip4/104.131.131.82/udp/4001/quic/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
)

_ADDR = re.compile(r"^/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d{1,5})$")
_PEER_ADDR = re.compile(r"^(?P<addr>/.+?)/(?:p2p|ipfs)/(?P<id>[1-9A-HJ-NP-Za-km-z]+)/?$")


class SwarmConfigError(StorageError, ValueError):
    """A listen address, peer address or swarm key the node cannot use."""


# --- multiaddrs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TcpAddr:
    """A TCP multiaddr ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>``."""

    proto: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"/{self.proto}/{self.host}/tcp/{self.port}"

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The IP address, or None for a DNS name."""
        return ipaddress.ip_address(self.host) if self.proto in ("ip4", "ip6") else None


@dataclass(frozen=True)
class PeerAddr:
    """A peer's full multiaddr ``<tcp multiaddr>/p2p/<peer id>``."""

    addr: TcpAddr
    peer_id: str

    def __str__(self) -> str:
        return f"{self.addr}/p2p/{self.peer_id}"


def parse_tcp_addr(text: str) -> TcpAddr:
    """A TCP multiaddr; raises :class:`SwarmConfigError` for anything else (QUIC, paths, bad IPs, ports)."""
    match = _ADDR.match(text.strip())
    if not match:
        raise SwarmConfigError(
            f"not a TCP multiaddr: {text!r} (expected /ip4/<ip>/tcp/<port>, /ip6/<ip>/tcp/<port> "
            "or /dns4/<name>/tcp/<port>)"
        )
    proto, host, port = match.group(1), match.group(2), int(match.group(3))
    if port > 65535:
        raise SwarmConfigError(f"port out of range in {text!r}")
    if proto in ("ip4", "ip6"):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError as exc:
            raise SwarmConfigError(f"bad IP address in {text!r}: {exc}") from exc
        if (proto == "ip4") != (ip.version == 4):
            raise SwarmConfigError(f"{host} is not an /{proto} address in {text!r}")
    return TcpAddr(proto, host, port)


def check_peer_id(peer_id: str) -> str:
    """``peer_id`` if it is a base58 libp2p peer ID (``Qm...`` or ``12D3...``), else :class:`SwarmConfigError`."""
    try:
        code, digest, *_ = multihash.unwrap_raw(multibase.get("base58btc").raw_decoder(peer_id))
    except Exception as exc:  # the multiformats decoders raise several unrelated types
        raise SwarmConfigError(f"not a peer ID: {peer_id!r} ({exc})") from exc
    if code not in (0x00, 0x12) or not digest:
        raise SwarmConfigError(f"not a peer ID: {peer_id!r} (multihash code {code:#x})")
    return peer_id


def parse_peer_addr(text: str) -> PeerAddr:
    """A peer's multiaddr with its ID, e.g. ``/ip4/10.0.0.2/tcp/4001/p2p/Qm...`` (``/ipfs/`` accepted)."""
    match = _PEER_ADDR.match(text.strip())
    if not match:
        raise SwarmConfigError(f"peer address {text!r} has no /p2p/<peer id> part (get it with `marketplace ipfs id`)")
    return PeerAddr(parse_tcp_addr(match.group("addr")), check_peer_id(match.group("id")))


def split_peer_addr(text: str) -> tuple[str, str]:
    """``(transport address, peer id)`` of a multiaddr as Kubo reports connected peers (``.../p2p/<id>``
    or the embedded library's ``.../<id>``); the address may be any transport."""
    parts = text.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-2] in ("p2p", "ipfs"):
        return "/".join(parts[:-2]), parts[-1]
    return "/".join(parts[:-1]), parts[-1]


# --- the private-swarm key ----------------------------------------------------------------------


def format_swarm_key(key: bytes) -> str:
    """The text of a Kubo ``swarm.key`` file holding the 32-byte ``key``."""
    if len(key) != 32:
        raise SwarmConfigError(f"a swarm key is 32 bytes, not {len(key)}")
    return f"{SWARM_KEY_HEADER}\n/base16/\n{key.hex()}\n"


def parse_swarm_key(text: str) -> bytes:
    """The 32 bytes of a Kubo ``swarm.key`` file's text (``/base16/`` encoding only)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) != 3 or lines[0] != SWARM_KEY_HEADER or lines[1] != "/base16/":
        raise SwarmConfigError(f"not a swarm key file: expected {SWARM_KEY_HEADER!r}, '/base16/' and 64 hex digits")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", lines[2]):
        raise SwarmConfigError("not a swarm key file: the key must be 64 hex digits")
    return bytes.fromhex(lines[2])


def read_swarm_key(path: Path) -> bytes:
    """The key of the ``swarm.key`` file at ``path``."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SwarmConfigError(f"cannot read swarm key {path}: {exc}") from exc
    return parse_swarm_key(text)


def new_swarm_key(path: Path) -> bytes:
    """Write a fresh random swarm key to ``path`` (mode 0600; refuses to overwrite); return the key."""
    path = Path(path)
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise SwarmConfigError(f"{path} exists already: not overwriting a swarm key") from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(format_swarm_key(key))
    return key


def swarm_key_fingerprint(key: bytes) -> str:
    """A public fingerprint of a swarm key: the first 16 bytes of SHA-256 over its 32 bytes, as 32 hex digits.

    Publishing it reveals nothing usable about the key (a preimage of SHA-256); two participants whose
    fingerprints agree hold the same key."""
    return hashlib.sha256(key).hexdigest()[:32]


# --- the node's swarm settings and its Kubo config -----------------------------------------------


@dataclass(frozen=True)
class ConnLimits:
    """Kubo's connection manager (``Swarm.ConnMgr``, type ``basic``).

    When the node holds ``high_water`` connections or more, it closes connections down to
    ``low_water`` (at most once every 10 s), sparing those younger than ``grace_seconds`` and the
    peers it protects: its ``--peer`` peers (Kubo's ``Peering.Peers``). The defaults are Kubo's own
    (32, 96, 20 s): the point is that they are written down and that the configured peers are
    protected, so a holder of the swarm key who opens many connections cannot have them trimmed."""

    low_water: int = 32
    high_water: int = 96
    grace_seconds: float = 20.0

    def __post_init__(self) -> None:
        if not 1 <= self.low_water <= self.high_water:
            raise SwarmConfigError(  # libp2p's connection manager never trims with a low water of 0
                f"connection limits: need 1 <= low water ({self.low_water}) <= high water ({self.high_water})"
            )
        if not self.grace_seconds > 0 or self.grace_seconds == float("inf"):
            raise SwarmConfigError(f"connection grace period must be positive seconds, not {self.grace_seconds}")

    def kubo_config(self) -> dict[str, Any]:
        """The ``Swarm.ConnMgr`` section of Kubo's config."""
        return {
            "Type": "basic",
            "LowWater": self.low_water,
            "HighWater": self.high_water,
            "GracePeriod": f"{self.grace_seconds:g}s",
        }


@dataclass(frozen=True)
class SwarmSettings:
    """How the node takes part in a swarm.

    ``listen``: TCP multiaddrs to listen on. ``peers``: peers to stay connected to (dialled by the
    running node, see :mod:`peer_keeper`, and protected from trimming as Kubo's ``Peering.Peers``).
    ``allowed``: the networks the address filters let through besides loopback (the subnets of the
    listen addresses and the peers' addresses, see :func:`allowed_networks`). ``public``: join the
    public IPFS network (Kubo's default bootstrap peers, DHT routing, no address filters);
    incompatible with a private swarm key. ``conn``: the connection manager's limits.
    """

    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    peers: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    public: bool = False
    private: bool = False
    conn: ConnLimits = ConnLimits()

    def __post_init__(self) -> None:
        for addr in self.listen:
            parse_tcp_addr(addr)
        for peer in self.peers:
            parse_peer_addr(peer)
        for net in self.allowed:
            ipaddress.ip_network(net, strict=False)
        if not self.listen:
            raise SwarmConfigError("the node needs at least one listen address")
        if self.public and self.private:
            raise SwarmConfigError("a node in a private swarm (swarm key) cannot join the public network")


def deny_filters(allowed: Iterable[IpNetwork]) -> list[str]:
    """Kubo ``Swarm.AddrFilters`` refusing every address outside 127.0.0.0/8 and ``allowed``.

    The result is the complement of the allowed networks, as few CIDR blocks as
    :meth:`ipaddress.IPv4Network.address_exclude` gives, IPv4 first, e.g. for loopback alone
    ``/ip4/0.0.0.0/ipcidr/2 ... /ip4/128.0.0.0/ipcidr/1, /ip6/::/ipcidr/0``."""
    keep = [_LOOPBACK, *allowed]
    out: list[str] = []
    for version, everything in ((4, ipaddress.ip_network("0.0.0.0/0")), (6, ipaddress.ip_network("::/0"))):
        blocks: list[IpNetwork] = [everything]
        for net in (n for n in keep if n.version == version):
            nxt: list[IpNetwork] = []
            for block in blocks:
                if net.subnet_of(block):  # type: ignore[arg-type]
                    nxt.extend(block.address_exclude(net))  # type: ignore[arg-type]
                elif not block.subnet_of(net):  # type: ignore[arg-type]
                    nxt.append(block)
            blocks = nxt
        out += [f"/ip{version}/{b.network_address}/ipcidr/{b.prefixlen}" for b in sorted(blocks)]  # type: ignore[type-var]
    return out


def peering_peers(peers: Sequence[str]) -> list[dict[str, Any]]:
    """Kubo ``Peering.Peers`` entries (``{"ID", "Addrs"}``, one per peer ID) for full peer multiaddrs."""
    by_id: dict[str, list[str]] = {}
    for text in peers:
        peer = parse_peer_addr(text)
        addrs = by_id.setdefault(peer.peer_id, [])
        if str(peer.addr) not in addrs:
            addrs.append(str(peer.addr))
    return [{"ID": pid, "Addrs": addrs} for pid, addrs in by_id.items()]


def swarm_config(cfg: dict[str, Any], settings: SwarmSettings) -> dict[str, Any]:
    """Rewrite a Kubo config (in place, returned) for ``settings``.

    Always: no mDNS, no relays, no announce overrides, QUIC and WebTransport off (listen addresses are
    TCP), the connection manager of ``settings.conn``. ``settings.peers`` are Kubo's ``Peering.Peers``,
    which its connection manager never trims, and never its ``Bootstrap`` list: the node dials them
    once it runs (:mod:`peer_keeper`), before Kubo's peering service would (see there). Unless
    ``settings.public``: no bootstrap peers, routing
    ``none`` (content comes from connected peers over bitswap), no NAT port mapping, AutoNAT off,
    no reproviding, and address filters refusing everything but loopback and ``settings.allowed``.
    With ``public``: Kubo's default bootstrap peers, DHT routing, NAT port
    mapping, no address filters."""
    cfg.setdefault("Discovery", {})["MDNS"] = {"Enabled": False}
    addresses = cfg.setdefault("Addresses", {})
    addresses["Swarm"] = list(settings.listen)
    addresses["Announce"] = []
    addresses["NoAnnounce"] = []
    swarm = cfg.setdefault("Swarm", {})
    swarm["RelayClient"] = {"Enabled": False}
    swarm["RelayService"] = {"Enabled": False}
    network = swarm.setdefault("Transports", {}).setdefault("Network", {})
    network.update({"QUIC": False, "WebTransport": False, "Websocket": False, "TCP": True})
    swarm["ConnMgr"] = settings.conn.kubo_config()
    # Peering protects the peers from the connection manager; Kubo dials them only 7.5 s or more after it
    # starts, when the node has connected them itself (see peer_keeper.py: a connection made while Kubo
    # starts, as Bootstrap peers are dialled, can be missed by its bitswap).
    cfg["Peering"] = {"Peers": peering_peers(settings.peers) or None}
    routing = cfg.setdefault("Routing", {})
    if settings.public:
        cfg["Bootstrap"] = list(KUBO_DEFAULT_BOOTSTRAP)
        swarm["DisableNatPortMap"] = False
        swarm["AddrFilters"] = None
        cfg["AutoNAT"] = {}
        routing["Type"] = "dht"
        cfg.setdefault("Reprovider", {}).pop("Interval", None)
    else:
        cfg["Bootstrap"] = []
        swarm["DisableNatPortMap"] = True
        swarm["AddrFilters"] = deny_filters(ipaddress.ip_network(n, strict=False) for n in settings.allowed)
        cfg["AutoNAT"] = {"ServiceMode": "disabled"}
        routing["Type"] = "none"
        cfg.setdefault("Reprovider", {})["Interval"] = "0"
    return cfg


# --- which networks to allow (reads the host's interfaces and DNS) ---------------------------------


def interface_networks() -> list[IpNetwork]:
    """The subnets of this host's network interfaces (``ip -j addr``; empty if ``ip`` is missing)."""
    return [address.network for address in interface_addresses()]


def _resolve(addr: TcpAddr) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if addr.ip is not None:
        return [addr.ip]
    family = {"dns4": socket.AF_INET, "dns6": socket.AF_INET6}.get(addr.proto, socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, family, socket.SOCK_STREAM)
    except OSError as exc:
        raise SwarmConfigError(f"cannot resolve {addr}: {exc}") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def allowed_networks(
    listen: Sequence[str], peers: Sequence[str], interfaces: Sequence[IpNetwork] | None = None
) -> list[str]:
    """The networks a non-public node must accept: the subnet each listen address lies in (per this
    host's interfaces; every interface's subnet for ``0.0.0.0``/``::``; a /24 or /64 around an address
    no interface has), and each peer's address (resolved if it is a DNS name) as a single host."""
    nets = list(interface_networks() if interfaces is None else interfaces)
    allowed: list[IpNetwork] = []
    for text in listen:
        ip = parse_tcp_addr(text).ip
        if ip is None or ip.is_loopback:
            continue
        if ip.is_unspecified:
            allowed += [n for n in nets if n.version == ip.version and not n.network_address.is_loopback]
            continue
        around = [n for n in nets if ip in n]
        allowed += around or [ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False)]
    for text in peers:
        for ip in _resolve(parse_peer_addr(text).addr):
            if not ip.is_loopback:
                allowed.append(ipaddress.ip_network(ip))
    unique = dict.fromkeys(str(n) for n in allowed)
    return list(unique)


def parse_network(text: str) -> str:
    """A CIDR network such as ``203.0.113.0/24`` or ``0.0.0.0/0``, normalized; :class:`SwarmConfigError` if not one."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError as exc:
        raise SwarmConfigError(f"not a network: {text!r} (expected CIDR such as 203.0.113.0/24)") from exc


def build_settings(
    listen: Sequence[str] = (),
    peers: Sequence[str] = (),
    public: bool = False,
    private: bool = False,
    allow: Sequence[str] = (),
    conn: ConnLimits | None = None,
) -> SwarmSettings:
    """The :class:`SwarmSettings` for the node's flags: ``listen`` defaults to :data:`DEFAULT_LISTEN`, and
    unless ``public`` the allowed networks are those of :func:`allowed_networks` (reads interfaces,
    resolves peer names) plus ``allow`` (CIDR networks the user opens explicitly); ``conn`` defaults to
    :class:`ConnLimits`'s defaults."""
    listen = tuple(listen) or (DEFAULT_LISTEN,)
    extra = [parse_network(n) for n in allow]
    if public and extra:
        raise SwarmConfigError("--allow has no effect with --public (a public node filters no address)")
    allowed = () if public else tuple(dict.fromkeys([*allowed_networks(listen, peers), *extra]))
    return SwarmSettings(listen, tuple(peers), allowed, public, private, conn or ConnLimits())
