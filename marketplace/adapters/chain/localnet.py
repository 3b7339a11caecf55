"""The detached local chain behind ``marketplace chain up/down/status`` and its state file.

``.state/chain.json`` records the running anvil's pid, url and port so later commands (and the
``local`` network profile) can find it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from marketplace.adapters.chain.anvil import ANVIL_CHAIN_ID, AnvilError, AnvilNode, pid_alive, rpc_chain_id
from marketplace.adapters.processes import terminate_pid
from marketplace.adapters.toolchain import project_root

DEFAULT_PORT = 8545


class ChainState(BaseModel):
    """What ``chain up`` records about the detached anvil."""

    pid: int
    url: str
    port: int
    chain_id: int = ANVIL_CHAIN_ID
    state_path: str | None = None
    log_path: str | None = None
    started_at: str = ""


class ChainStatus(BaseModel):
    """Result of :func:`chain_status`."""

    running: bool
    answering: bool
    state: ChainState | None = None
    block_number: int | None = None


def state_dir(root: Path | None = None) -> Path:
    """``<root>/.state`` (``MARKETPLACE_STATE_DIR`` overrides)."""
    env = os.environ.get("MARKETPLACE_STATE_DIR")
    return Path(env) if env else (root or project_root()) / ".state"


def state_file(root: Path | None = None) -> Path:
    """Path of the chain state file."""
    return state_dir(root) / "chain.json"


def read_chain_state(path: Path | None = None) -> ChainState | None:
    """The recorded chain, or None when there is no (valid) state file."""
    path = path or state_file()
    try:
        return ChainState.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def write_chain_state(state: ChainState, path: Path | None = None) -> Path:
    """Record ``state`` (atomically)."""
    path = path or state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)
    return path


def clear_chain_state(path: Path | None = None) -> None:
    """Delete the state file if present."""
    (path or state_file()).unlink(missing_ok=True)


def _is_anvil(pid: int) -> bool:
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"anvil" in cmdline.read_bytes()
    except OSError:
        return pid_alive(pid)


def running_state(path: Path | None = None) -> ChainState | None:
    """The recorded chain if its process is still alive (a stale file is removed)."""
    state = read_chain_state(path)
    if state is None:
        return None
    if pid_alive(state.pid) and _is_anvil(state.pid):
        return state
    clear_chain_state(path)
    return None


def chain_up(
    port: int | None = DEFAULT_PORT,
    *,
    block_time: float | None = None,
    persist: Path | None = None,
    path: Path | None = None,
) -> ChainState:
    """Start a detached anvil (``port`` None or 0 picks a free one) and record it.

    ``persist`` is a state dump file anvil loads at start and writes on shutdown.
    """
    existing = running_state(path)
    if existing is not None:
        raise AnvilError(f"a local chain is already running at {existing.url} (pid {existing.pid})")
    log_path = (path or state_file()).parent / "anvil.log"
    node = AnvilNode(port or None, block_time=block_time, state_path=persist, log_path=log_path)
    node.start(detached=True)
    state = ChainState(
        pid=node.detach(),
        url=node.url,
        port=node.port,
        chain_id=node.chain_id,
        state_path=str(persist) if persist else None,
        log_path=str(log_path),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_chain_state(state, path)
    return state


def chain_down(path: Path | None = None, timeout: float = 10.0) -> ChainState | None:
    """Stop the recorded anvil (SIGTERM so it dumps its state, SIGKILL after ``timeout``).

    Returns the state that was stopped, or None if nothing was running.
    """
    state = running_state(path)
    if state is None:
        return None
    terminate_pid(state.pid, timeout, pid_alive)
    clear_chain_state(path)
    return state


def chain_status(path: Path | None = None) -> ChainStatus:
    """Whether the recorded chain's process lives and answers JSON-RPC."""
    state = running_state(path)
    if state is None:
        return ChainStatus(running=False, answering=False)
    answering = rpc_chain_id(state.url) is not None
    block = _block_number(state.url) if answering else None
    return ChainStatus(running=True, answering=answering, state=state, block_number=block)


def _block_number(url: str) -> int | None:
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=1.0) as response:
            return int(json.loads(response.read())["result"], 16)
    except (OSError, ValueError, KeyError):
        return None
