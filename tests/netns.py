"""Separate hosts on one machine: each role in its own Linux network namespace, all on one switch.

``with Hosts(["chain", "owner", ...]) as hosts:`` creates, for this run only,

- a *switch* namespace holding a bridge ``br0``;
- one namespace per role, with loopback up and an ``eth0`` that is one end of a veth pair whose other
  end is a port of the bridge; the role's address is ``10.77.0.N/24`` on that ``eth0``.

Nothing is created or addressed in the namespace the test runs in: the veth pairs are made inside the
switch namespace with their peer end moved straight into the role's, so the test's own namespace has no
route to the switch and cannot reach any role. A role reaches another only at the other's ``10.77.0.N``
address; what a role serves on ``127.0.0.1`` is its own (every namespace has its own loopback).

:meth:`Host.popen` and :meth:`Host.run` start a command inside a role's namespace (``ip netns exec``).
Leaving the ``with`` block, also on an error, kills every process in each namespace (``ip netns pids``:
SIGTERM, then SIGKILL) and deletes the namespaces. Names carry the creating process's pid and a random
suffix (``mh<pid>x<hex>-<role>``), so parallel runs do not collide, and namespaces left behind by a run
that was killed (its pid gone) are swept on the next start.

Where network namespaces are not permitted (not root, no ``ip``, a container without ``CAP_NET_ADMIN``),
or when ``MARKETPLACE_TEST_NETNS=0``, the same object runs every role in the test's own namespace on
``127.0.0.1`` (each service on its own port) and says so in :attr:`Hosts.mode` and :attr:`Hosts.reason`;
``MARKETPLACE_TEST_NETNS=1`` makes that an error instead. In that mode the processes started through a
host are killed by process group when the block is left.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

NETNS_ENV = "MARKETPLACE_TEST_NETNS"
SUBNET = ipaddress.IPv4Network("10.77.0.0/24")
LOOPBACK = "127.0.0.1"
_PREFIX = "mh"
_NAME = re.compile(rf"^{_PREFIX}(\d+)x[0-9a-f]+-")

Mode = Literal["netns", "loopback"]


class NetnsError(RuntimeError):
    """A namespace, link or address could not be set up (the command and its output are in the message)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs ``ip ARGS``; raises :class:`NetnsError` with its output if it fails and ``check``."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespace_pids(netns: str) -> list[int]:
    """Every process whose network namespace is ``netns`` (``ip netns pids``)."""
    done = _ip("netns", "pids", netns, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def kill_namespace(netns: str, grace: float = 5.0) -> None:
    """SIGTERMs every process in ``netns``, SIGKILLs what is left after ``grace`` seconds, then deletes it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = namespace_pids(netns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            for pid in pids:  # reap our own children (else they stay listed as zombies)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            pids = [p for p in namespace_pids(netns) if _pid_alive(p)]
            time.sleep(0.05)
        if not pids:
            break
    _ip("netns", "delete", netns, check=False)


def sweep_stale() -> list[str]:
    """Deletes namespaces of this harness whose creating process is gone (a run that was killed);
    returns their names."""
    done = _ip("netns", "list", check=False)
    swept = []
    for line in done.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            kill_namespace(name, grace=1.0)
            swept.append(name)
    return swept


@dataclass
class Host:
    """One role's machine: its namespace (None on loopback) and the address others reach it at."""

    role: str
    address: str
    netns: str | None
    _started: list[subprocess.Popen[str]] = field(default_factory=list, repr=False)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    def popen(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[str]:
        """Starts ``argv`` on this host (text mode, its own process group); ``kwargs`` go to ``Popen``."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
            self.argv(argv), env=dict(env) if env is not None else None, text=True, start_new_session=True, **kwargs
        )
        self._started.append(process)
        return process

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        timeout: float = 120.0,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``argv`` on this host to completion (in ``cwd``), stdout and stderr captured together; with
        ``check`` raises :class:`AssertionError` showing the output when it exits non-zero."""
        process = self.popen(argv, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            out, _ = process.communicate()
            raise AssertionError(f"{self.role}: {' '.join(argv)} timed out after {timeout:.0f} s:\n{out}") from None
        if check and process.returncode != 0:
            raise AssertionError(f"{self.role}: {' '.join(argv)} exited {process.returncode}:\n{out}")
        return subprocess.CompletedProcess(process.args, process.returncode, out, "")

    def stop_all(self) -> None:
        """Kills the process group of everything started through this host (loopback mode's cleanup)."""
        for process in self._started:
            _kill_group(process)
        self._started.clear()


def _kill_group(process: subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGTERM the process group of ``process`` (its own session), SIGKILL it after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(grace)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # what else is left in the group
            return
        except subprocess.TimeoutExpired:
            continue


class Hosts:
    """Hosts for ``roles`` on one switch (see the module docstring); a context manager.

    ``hosts[role]`` is a :class:`Host`; :attr:`mode` is ``"netns"`` or ``"loopback"`` and :attr:`reason`
    says why namespaces were not used."""

    def __init__(self, roles: Sequence[str]) -> None:
        if len(set(roles)) != len(roles) or not roles:
            raise ValueError(f"roles must be distinct and not empty: {roles}")
        if len(roles) > SUBNET.num_addresses - 2:
            raise ValueError(f"at most {SUBNET.num_addresses - 2} roles on {SUBNET}")
        self.roles = list(roles)
        self.run_id = f"{_PREFIX}{os.getpid()}x{secrets.token_hex(3)}"
        self.switch = f"{self.run_id}-switch"
        self.mode: Mode = "loopback"
        self.reason = ""
        self.hosts: dict[str, Host] = {}
        self._created: list[str] = []

    def __getitem__(self, role: str) -> Host:
        return self.hosts[role]

    @property
    def namespaces(self) -> list[str]:
        """The namespaces this run created and has not deleted yet."""
        return list(self._created)

    def _loopback(self, reason: str) -> None:
        if os.environ.get(NETNS_ENV) == "1":
            raise NetnsError(f"{NETNS_ENV}=1 but network namespaces cannot be used: {reason}")
        self.mode, self.reason = "loopback", reason
        self.hosts = {role: Host(role, LOOPBACK, None) for role in self.roles}

    def _namespaces(self) -> None:
        sweep_stale()
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i, role in enumerate(self.roles):
            netns, port = f"{self.run_id}-{role}", f"p{i}"
            address = str(SUBNET.network_address + i + 1)
            self._add_ns(netns)
            _ip("-n", netns, "link", "set", "lo", "up")
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", netns, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0")
            _ip("-n", netns, "link", "set", "eth0", "up")
            self.hosts[role] = Host(role, address, netns)
        self.mode = "netns"

    def _add_ns(self, netns: str) -> None:
        _ip("netns", "add", netns)
        self._created.append(netns)

    def __enter__(self) -> Hosts:
        if os.environ.get(NETNS_ENV) == "0":
            self._loopback(f"{NETNS_ENV}=0")
        elif shutil.which("ip") is None:
            self._loopback("no `ip` command (iproute2)")
        else:
            try:
                self._namespaces()
            except NetnsError as exc:
                self.close()
                self._loopback(str(exc))
        return self

    def close(self) -> None:
        """Kills every process of every host and deletes every namespace of this run (idempotent)."""
        for host in self.hosts.values():
            host.stop_all()
        for netns in reversed(self._created):
            kill_namespace(netns)
        self._created.clear()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
