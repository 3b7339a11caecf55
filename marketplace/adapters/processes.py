"""Stopping the background services the project starts (anvil, the IPFS node): politely first
(SIGTERM lets anvil dump its state and Kubo close its repo), forcibly if they linger."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def terminate(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM a child process, SIGKILL it if it has not exited after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def terminate_pid(pid: int, timeout: float, alive: Callable[[int], bool]) -> None:
    """The same for a process that is not our child (started detached by an earlier command):
    ``alive(pid)`` says whether it still runs (and is still the process we mean)."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
