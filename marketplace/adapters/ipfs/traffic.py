"""Bytes this process exchanged with its swarm peers, measured on its own TCP sockets (Linux).

The embedded library does not export libp2p's bandwidth counters. What the node can measure
honestly is its TCP connections: every TCP socket of this process that is connected and is not
one of the RPC server's (local port ``exclude_port``) belongs to libp2p. For each, the kernel's
``tcp_info`` gives ``bytes_acked`` (bytes sent and acknowledged by the peer) and
``bytes_received``. :class:`TcpTraffic` samples them (every second in a thread, and on each
read) and keeps the last values of connections that closed, so the totals are the bytes sent and
received on all libp2p connections since the node started — payload plus libp2p's own framing
(Noise encryption, yamux, identify, bitswap want-lists), and minus whatever a connection exchanged
after the last sample before it closed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

_TCP_INFO_LEN = 232
_BYTES_ACKED = 120  # offsetof(struct tcp_info, tcpi_bytes_acked), Linux >= 4.1
_BYTES_RECEIVED = 128  # offsetof(struct tcp_info, tcpi_bytes_received)


@dataclass(frozen=True)
class Traffic:
    """Totals of the swarm's TCP connections: bytes sent (acknowledged) and received, live connections,
    and the bytes per second out and in over the last sampling interval (at least half a second)."""

    bytes_out: int
    bytes_in: int
    connections: int
    rate_out: float = 0.0
    rate_in: float = 0.0


def _socket_fds() -> dict[int, str]:
    """This process's file descriptors that are sockets, with their inode (``socket:[N]``)."""
    found: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError, ValueError):
                target = os.readlink(f"/proc/self/fd/{name}")
                if target.startswith("socket:"):
                    found[int(name)] = target
    return found


def _tcp_counters(fd: int, exclude_port: int | None) -> tuple[int, int] | None:
    """``(bytes_acked, bytes_received)`` of the connected TCP socket ``fd``, None for other sockets."""
    try:
        dup = os.dup(fd)
    except OSError:
        return None
    try:
        sock = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return None
    with sock:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return None
        try:
            sock.getpeername()
            if exclude_port is not None and sock.getsockname()[1] == exclude_port:
                return None
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
        except OSError:
            return None
    if len(info) < _BYTES_RECEIVED + 8:
        return None
    acked, received = struct.unpack_from("=QQ", info, _BYTES_ACKED)
    return int(acked), int(received)


class TcpTraffic:
    """Running totals of this process's libp2p TCP traffic; see the module docstring."""

    def __init__(self, exclude_port: int | None = None, interval: float = 1.0) -> None:
        self.exclude_port = exclude_port
        self.interval = interval
        self._live: dict[str, tuple[int, int]] = {}
        self._closed_out = 0
        self._closed_in = 0
        self._lock = threading.Lock()
        self._mark = (time.monotonic(), 0, 0)
        self._rates = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> Traffic:
        """Read every connection's counters now and return the totals."""
        now: dict[str, tuple[int, int]] = {}
        for fd, inode in _socket_fds().items():
            counters = _tcp_counters(fd, self.exclude_port)
            if counters is not None:
                now[inode] = counters
        with self._lock:
            for inode, (sent, got) in self._live.items():
                if inode not in now:
                    self._closed_out += sent
                    self._closed_in += got
            self._live = now
            out = self._closed_out + sum(s for s, _ in now.values())
            received = self._closed_in + sum(r for _, r in now.values())
            t, out0, in0 = self._mark
            if time.monotonic() - t >= 0.5:
                seconds = time.monotonic() - t
                self._rates = ((out - out0) / seconds, (received - in0) / seconds)
                self._mark = (time.monotonic(), out, received)
            return Traffic(out, received, len(now), *self._rates)

    def start(self) -> None:
        """Sample every ``interval`` seconds in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, name="ipfs-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
