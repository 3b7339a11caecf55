"""Run a local anvil EVM node as a subprocess, and expose anvil's well-known dev accounts."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import IO

from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.adapters.processes import disown, start_child, terminate
from marketplace.adapters.toolchain import anvil_binary

DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337
LOCALHOST = "127.0.0.1"


class AnvilError(RuntimeError):
    """anvil could not be started, or did not answer in time."""


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rpc_chain_id(url: str, timeout: float = 1.0) -> int | None:
    """Ask ``url`` for ``eth_chainId``; None when nothing answers."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(json.loads(response.read())["result"], 16)
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None


@lru_cache(maxsize=4)
def _derive(n: int, mnemonic: str) -> tuple[LocalAccount, ...]:
    Account.enable_unaudited_hdwallet_features()
    return tuple(Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n))


def dev_accounts(n: int = 10, mnemonic: str = DEFAULT_MNEMONIC) -> list[LocalAccount]:
    """Return anvil's first ``n`` dev accounts (public, well-known keys: local chains only)."""
    return list(_derive(n, mnemonic))


class AnvilNode:
    """An anvil process on 127.0.0.1; use as a context manager or call start()/stop().

    ``state_path`` makes anvil load the state from that file (if present) and dump it there on
    exit, so a local chain survives restarts. Anvil is this process's child: it is stopped with it, also
    when this process is killed (:func:`~marketplace.adapters.processes.start_child`); ``start(detached=True)``
    starts it in its own session instead, so it outlives this Python process (``marketplace chain up``).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = LOCALHOST,
        chain_id: int = ANVIL_CHAIN_ID,
        block_time: float | None = None,
        state_path: Path | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.chain_id = chain_id
        self.block_time = block_time
        self.state_path = state_path
        self.log_path = log_path
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """HTTP JSON-RPC endpoint."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        """The anvil command line."""
        cmd = [
            str(anvil_binary()),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--silent",
        ]
        if self.block_time is not None:
            cmd += ["--block-time", f"{self.block_time:g}"]
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path)]
        return cmd + list(self.extra_args)

    def start(self, *, detached: bool = False) -> AnvilNode:
        """Start anvil and block until it answers ``eth_chainId`` (or raise :class:`AnvilError`)."""
        if self.process is not None:
            raise AnvilError(f"anvil already running (pid {self.process.pid})")
        if rpc_chain_id(self.url, timeout=0.3) is not None:
            raise AnvilError(f"something already answers JSON-RPC at {self.url}")
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("wb")
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = start_child(
            self.command(), detached=detached, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_ready()
        return self

    def _output(self) -> str:
        """The tail of anvil's combined stdout/stderr (for error messages)."""
        if self.log_path is not None and self.log_path.is_file():
            return self.log_path.read_text(errors="replace")[-4000:]
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self._output()
                self._cleanup()
                raise AnvilError(f"anvil exited with code {self.process.returncode}: {output.strip()}")
            if rpc_chain_id(self.url, timeout=0.5) is not None:
                return
            time.sleep(0.02)
        output = self._output()
        self.stop()
        raise AnvilError(f"anvil did not answer at {self.url} within {self.startup_timeout}s: {output.strip()}")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate anvil (SIGTERM lets it dump ``state_path``), then kill if it lingers."""
        if self.process is not None:
            terminate(self.process, timeout)
        self._cleanup()
        self.process = None

    def detach(self) -> int:
        """Forget the process without stopping it (it keeps running); return its pid."""
        if self.process is None:
            raise AnvilError("anvil is not running")
        pid = self.process.pid
        disown(self.process)
        # Mark the Popen as settled so its finaliser does not warn "still running": the
        # process is deliberately left behind (``marketplace chain down`` stops it by pid).
        self.process.returncode = 0
        self.process = None
        self._cleanup()
        return pid

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> AnvilNode:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.process else "stopped"
        return f"AnvilNode({self.url}, {state})"


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process; reaps it if it is our exited child."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True
