"""Start, find and stop the project's local IPFS node process.

:class:`LocalIpfsNode` runs ``python -m marketplace.adapters.ipfs.node`` as a child process (tests,
scripts) or detached (``marketplace ipfs up``). The node writes a JSON state file once it is
ready; :func:`node_up`, :func:`node_down` and :func:`node_status` work from that file, and
:func:`resolve_api_url` picks the node to talk to: an explicit URL, then ``$MARKETPLACE_IPFS_API``
(a user's own ``ipfs daemon``, e.g. ``http://127.0.0.1:5001``), then the local node's state file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.swarm import ConnLimits
from marketplace.adapters.processes import start_child, terminate, terminate_pid

API_ENV = "MARKETPLACE_IPFS_API"
HOME_ENV = "MARKETPLACE_IPFS_HOME"
STATE_NAME = "node.json"


class NodeStartError(StorageError):
    """The local IPFS node process did not come up."""


def write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temp file and rename, so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def default_home() -> Path:
    """Directory of the local node (repo, state file, log): ``$MARKETPLACE_IPFS_HOME`` or ./.marketplace/ipfs."""
    return Path(os.environ.get(HOME_ENV) or Path.cwd() / ".marketplace" / "ipfs")


def _pid_is_node(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"marketplace.adapters.ipfs.node" in cmdline


def _ping(api_url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        return httpx.post(f"{api_url}/api/v0/version", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class NodeOptions:
    """How a node joins its swarm and bounds its fetches (the node command's swarm flags).

    ``listen`` (TCP multiaddrs; default ``/ip4/127.0.0.1/tcp/0``), ``peers`` (full multiaddrs
    ``.../p2p/<id>`` to stay connected to), ``allow`` (more CIDR networks the address filters let
    through), ``swarm_key`` (a ``swarm.key`` file: private swarm), ``public`` (join the public IPFS
    network). ``fetch_timeout`` (seconds) and ``max_fetch_bytes`` bound fetches from the swarm (None: the
    node's defaults, 30 s and 1 GiB). ``conn_limits``: Kubo's connection manager (None:
    :class:`~marketplace.adapters.ipfs.swarm.ConnLimits`'s defaults)."""

    listen: Sequence[str] = ()
    peers: Sequence[str] = ()
    allow: Sequence[str] = ()
    swarm_key: Path | None = None
    public: bool = False
    fetch_timeout: float | None = None
    max_fetch_bytes: int | None = None
    conn_limits: ConnLimits | None = None

    def argv(self) -> list[str]:
        """These options as the node command's flags."""
        args: list[str] = []
        for addr in self.listen:
            args += ["--listen", addr]
        for peer in self.peers:
            args += ["--peer", peer]
        for net in self.allow:
            args += ["--allow", net]
        if self.swarm_key:
            args += ["--swarm-key", str(Path(self.swarm_key).resolve())]
        if self.public:
            args.append("--public")
        if self.fetch_timeout is not None:
            args += ["--fetch-timeout", str(self.fetch_timeout)]
        if self.max_fetch_bytes is not None:
            args += ["--max-fetch-bytes", str(self.max_fetch_bytes)]
        if self.conn_limits is not None:
            args += ["--conn-low-water", str(self.conn_limits.low_water)]
            args += ["--conn-high-water", str(self.conn_limits.high_water)]
            args += ["--conn-grace", str(self.conn_limits.grace_seconds)]
        return args


class LocalIpfsNode:
    """The project's IPFS node as a process: ``with LocalIpfsNode(repo) as node: node.api_url``.

    ``port=0`` lets the node pick a free RPC port. ``detach=True`` starts it in its own session so it
    outlives this process (what ``marketplace ipfs up`` does). The repo keeps pinned data across
    restarts. ``options``: how it joins its swarm and bounds its fetches (:class:`NodeOptions`; default:
    loopback only, dialling nobody).
    """

    def __init__(
        self,
        repo: Path,
        port: int = 0,
        host: str = "127.0.0.1",
        state_file: Path | None = None,
        log_file: Path | None = None,
        startup_timeout: float = 60.0,
        detach: bool = False,
        *,
        options: NodeOptions | None = None,
    ) -> None:
        self.repo = Path(repo).resolve()
        self.port = port
        self.host = host
        self.options = options or NodeOptions()
        self.state_file = Path(state_file or self.repo.parent / f"{self.repo.name}.{STATE_NAME}").resolve()
        self.log_file = Path(log_file or self.repo.parent / f"{self.repo.name}.log").resolve()
        self.startup_timeout = startup_timeout
        self.detach = detach
        self.process: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}
        self.start_seconds: float | None = None

    @property
    def api_url(self) -> str:
        """Base URL of the node's RPC API, e.g. ``http://127.0.0.1:40123``."""
        if not self.state:
            raise NodeStartError("the node is not running")
        return str(self.state["api_url"])

    @property
    def peer_id(self) -> str:
        """The node's libp2p peer ID."""
        if not self.state:
            raise NodeStartError("the node is not running")
        return str(self.state["peer_id"])

    @property
    def swarm_addresses(self) -> list[str]:
        """The node's swarm multiaddrs with ``/p2p/<id>``: what other nodes pass as ``--peer``."""
        if not self.state:
            raise NodeStartError("the node is not running")
        return [str(a) for a in self.state.get("swarm_addresses", [])]

    def command(self) -> list[str]:
        """The node's command line."""
        cmd = [sys.executable, "-m", "marketplace.adapters.ipfs.node", "--repo", str(self.repo)]
        cmd += ["--host", self.host, "--port", str(self.port), "--state-file", str(self.state_file)]
        cmd += self.options.argv()
        return cmd

    def start(self) -> str:
        """Start the node, wait until it answers, and return its API URL."""
        t0 = time.monotonic()
        self.repo.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.unlink(missing_ok=True)
        cmd = self.command()
        env = dict(os.environ)
        project_root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (project_root, env.get("PYTHONPATH")) if p)
        with self.log_file.open("ab") as log:
            self.process = start_child(
                cmd, detached=self.detach, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = t0 + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NodeStartError(f"IPFS node exited with code {self.process.returncode}: {self._log_tail()}")
            if self.state_file.exists():
                with contextlib.suppress(ValueError, OSError):
                    state = json.loads(self.state_file.read_text())
                    if state.get("pid") == self.process.pid and _ping(state["api_url"]):
                        self.state = state
                        self.start_seconds = time.monotonic() - t0
                        return self.api_url
            time.sleep(0.05)
        self.stop()
        raise NodeStartError(f"IPFS node not ready after {self.startup_timeout:.0f} s: {self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the node (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process is not None:
            terminate(self.process, timeout)
        self.process = None
        self.state = {}

    def client(self, **kwargs: Any) -> Any:
        """An :class:`~marketplace.adapters.ipfs.ipfs.IpfsClient` for this node."""
        from marketplace.adapters.ipfs.ipfs import IpfsClient

        return IpfsClient(self.api_url, **kwargs)

    def __enter__(self) -> LocalIpfsNode:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- state-file helpers for `marketplace ipfs up/down/status` ---------------------------------


@dataclass(frozen=True)
class NodeStatus:
    """What ``marketplace ipfs status`` reports."""

    running: bool
    api_url: str | None = None
    pid: int | None = None
    repo: str | None = None
    kubo_version: str | None = None
    detail: str = ""
    peer_id: str | None = None
    swarm_addresses: list[str] = field(default_factory=list)
    swarm_key_fingerprint: str | None = None
    public: bool = False


def read_state(home: Path | None = None) -> dict[str, Any] | None:
    """The local node's state file as a dict, or None when there is none."""
    path = (home or default_home()) / STATE_NAME
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def node_status(home: Path | None = None) -> NodeStatus:
    """Whether the local node of ``home`` is running and answering."""
    state = read_state(home)
    if not state:
        return NodeStatus(False, detail="not started (no state file)")
    pid = int(state.get("pid", 0))
    alive = _pid_is_node(pid)
    answering = alive and _ping(str(state["api_url"]))
    detail = "running" if answering else ("process alive but not answering" if alive else "stale state file")
    return NodeStatus(
        answering,
        state.get("api_url"),
        pid,
        state.get("repo"),
        state.get("kubo_version"),
        detail,
        state.get("peer_id"),
        list(state.get("swarm_addresses") or []),
        state.get("swarm_key_fingerprint"),
        bool(state.get("public")),
    )


def node_up(
    home: Path | None = None,
    port: int = 0,
    startup_timeout: float = 60.0,
    *,
    options: NodeOptions | None = None,
) -> NodeStatus:
    """Start the local node in the background with these swarm ``options`` (see :class:`NodeOptions`),
    or report the one already running (its settings stay as they are: stop it first to change them)."""
    home = (home or default_home()).resolve()
    status = node_status(home)
    if status.running:
        return status
    node = LocalIpfsNode(
        home / "repo",
        port=port,
        state_file=home / STATE_NAME,
        log_file=home / "node.log",
        startup_timeout=startup_timeout,
        detach=True,
        options=options,
    )
    node.start()
    return node_status(home)


def node_down(home: Path | None = None, timeout: float = 15.0) -> bool:
    """Stop the local node of ``home``; False if none was running."""
    home = (home or default_home()).resolve()
    state = read_state(home)
    state_path = home / STATE_NAME
    if not state:
        return False
    pid = int(state.get("pid", 0))
    if not _pid_is_node(pid):
        state_path.unlink(missing_ok=True)
        return False
    terminate_pid(pid, timeout, _pid_is_node)
    state_path.unlink(missing_ok=True)
    return True


def resolve_api_url(explicit: str | None = None, home: Path | None = None) -> str:
    """The RPC URL to use: ``explicit``, else ``$MARKETPLACE_IPFS_API``, else the local node's."""
    if explicit:
        return explicit
    if os.environ.get(API_ENV):
        return os.environ[API_ENV]
    state = read_state(home)
    if state and _pid_is_node(int(state.get("pid", 0))):
        return str(state["api_url"])
    raise NodeStartError(
        f"no IPFS node: run `marketplace ipfs up`, or set {API_ENV} to your daemon's RPC URL "
        "(e.g. http://127.0.0.1:5001)"
    )
