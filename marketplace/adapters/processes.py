"""The processes the project starts (anvil, the IPFS node), and how a command stops them and itself.

Starting: :func:`start_child` starts a child that belongs to the command, unless ``detached``:

- an owned child runs in its own process group (a terminal's Ctrl-C reaches only the command,
  which then stops its children in order) with Linux's parent-death signal set to SIGTERM, so it
  also ends when the command is killed outright (SIGKILL, a crash); the command keeps it in a
  registry until :func:`terminate` has stopped it, and stops whatever is left at exit;
- a detached child (``marketplace chain up``, ``marketplace ipfs up``) runs in its own session,
  outlives the command and is not tracked: its ``down`` command stops it by pid
  (:func:`terminate_pid`).

Stopping: :func:`terminate` stops a child politely (SIGTERM lets anvil dump its state and Kubo
close its repo), then forcibly if it lingers. Inside :func:`stop_on_signals` the first SIGINT or
SIGTERM raises :class:`Interrupted` in the main thread, so the ``with`` blocks that own children
stop them in order before the command exits with 130 or 143. A second signal ends the process at
once, by the signal's default action (the kernel's, so it works even while native code holds the
GIL; the shell reports 130 or 143; the children get their parent-death signal). A command still
alive ``grace`` seconds after the first signal (its main thread or its exit stuck) has its owned
children killed and is ended the same way, by a watchdog thread that learns of signals through
:func:`signal.set_wakeup_fd` (Python runs its handlers only when the main thread gets back to Python
code).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PARENT_DEATH_SIGNAL = signal.SIGTERM
_PR_SET_PDEATHSIG = 1
_SA_RESETHAND = 0x80000000

_owned: set[subprocess.Popen[Any]] = set()
_owned_lock = threading.Lock()
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by ``signum`` (SIGINT or SIGTERM); raised in the main thread by
    :func:`stop_on_signals`. A :class:`KeyboardInterrupt`, so that code which stops on Ctrl-C stops
    on SIGTERM the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        """``SIGINT`` or ``SIGTERM``."""
        return signal.Signals(self.signum).name


def _libc() -> ctypes.CDLL | None:
    """Linux's libc (``prctl``, ``sigaction``), loaded once, before any fork: a child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()
_PRCTL: Callable[..., int] | None = getattr(_LIBC, "prctl", None)


# --- starting -----------------------------------------------------------------------------------


def _die_with(parent: int) -> Callable[[], None]:
    """The ``preexec_fn`` of an owned child: ask the kernel for SIGTERM when the parent ends, and end
    at once if the parent already ended between the fork and this call."""

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _from_a_lasting_thread(popen: Callable[[], subprocess.Popen[Any]]) -> subprocess.Popen[Any]:
    """Runs ``popen`` in the main thread or in a spawner thread that lives as long as the process: the
    parent-death signal fires when the *thread* that forked the child ends, not the process."""
    global _spawner
    if threading.current_thread() is threading.main_thread():
        return popen()
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(1, thread_name_prefix="child-spawner")
    return _spawner.submit(popen).result()


def start_child(cmd: Sequence[str], *, detached: bool = False, **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Starts ``cmd`` (``popen_kwargs`` go to :class:`subprocess.Popen`) as an owned child, or with
    ``detached`` in its own session, untracked, to outlive this process."""
    if detached:
        return subprocess.Popen(cmd, start_new_session=True, **popen_kwargs)

    def popen() -> subprocess.Popen[Any]:
        process = subprocess.Popen(cmd, process_group=0, preexec_fn=_die_with(os.getpid()), **popen_kwargs)
        with _owned_lock:
            _owned.add(process)
        return process

    return _from_a_lasting_thread(popen)


def disown(process: subprocess.Popen[Any]) -> None:
    """Stops tracking ``process`` (it was stopped, or is deliberately left running)."""
    with _owned_lock:
        _owned.discard(process)


# --- stopping ------------------------------------------------------------------------------------


def terminate(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM a child process, SIGKILL it if it has not exited after ``timeout`` seconds."""
    try:
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    finally:
        disown(process)


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


def kill_owned() -> None:
    """SIGKILLs every owned child still running, with its process group; does not wait."""
    with _owned_lock:
        children = [p for p in _owned if p.returncode is None]
    for process in children:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            process.kill()


@atexit.register
def stop_owned(timeout: float = 5.0) -> None:
    """Stops the owned children still running (:func:`terminate`); runs at exit, for the children of a
    start that was interrupted before its ``with`` block took them over."""
    with _owned_lock:
        children = list(_owned)
    for process in children:
        terminate(process, timeout)


# --- stopping the command itself ---------------------------------------------------------------


class _Sigaction(ctypes.Structure):
    """glibc's and musl's ``struct sigaction`` on x86-64 and arm64."""

    _fields_ = [
        ("sa_handler", ctypes.c_void_p),
        ("sa_mask", ctypes.c_ulong * 16),
        ("sa_flags", ctypes.c_uint),
        ("sa_restorer", ctypes.c_void_p),
    ]


def _one_shot(signum: int) -> bool:
    """Makes the handler now installed for ``signum`` one-shot (``SA_RESETHAND``): the kernel restores the
    default action (ending the process) as it delivers the signal, so the next one ends the process even
    while the main thread runs native code that holds the GIL (ezkl proving does, for seconds), when no
    Python code can run. False where this is not known to work (then the watchdog has to do)."""
    if _LIBC is None or platform.machine() not in ("x86_64", "aarch64"):
        return False
    action = _Sigaction()
    if _LIBC.sigaction(signum, None, ctypes.byref(action)) != 0:
        return False
    action.sa_flags |= _SA_RESETHAND
    return bool(_LIBC.sigaction(signum, ctypes.byref(action), None) == 0)


def _default_action(signum: int) -> None:
    """Restores ``signum``'s default action (ending the process) from any thread (``signal.signal``
    works in the main thread only)."""
    if _LIBC is not None:
        _LIBC.signal(ctypes.c_int(signum), ctypes.c_void_p(0))  # SIG_DFL


class _Watchdog:
    """A daemon thread reading the signal wakeup socket. At the first stop signal it gives both stop
    signals their default action back (the next one ends the process, even if the main thread never
    gets to run Python code again) and arms a deadline; at the deadline it ends the process."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.thread = threading.Thread(target=self._run, name="stop-watchdog", daemon=True)

    def _run(self) -> None:
        first: int | None = None
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.reader], [], [], timeout)
            if not ready:
                if first is not None:
                    _end_by(first, f"still stopping after {self.grace:g} s")
                continue
            try:
                data = self.reader.recv(64)
            except BlockingIOError:
                continue
            except OSError:
                return
            if 0 in data:  # disarmed: the command ended without a stop signal
                return
            signums = [signum for signum in data if signum in STOP_SIGNALS]
            if signums and first is None:
                for signum in STOP_SIGNALS:
                    _default_action(signum)
                first, deadline = signums[0], time.monotonic() + self.grace

    def disarm(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.send(b"\0")
        self.thread.join(5)
        self.reader.close()
        self.writer.close()


def _end_by(signum: int, why: str) -> None:
    """Kills the owned children, says so in one line and ends the process by ``signum``'s default action
    (exit status: ended by that signal; a shell reports 128 + its number). No cleanup, no traceback: the
    main thread may hold any lock, so this writes straight to stderr."""
    kill_owned()
    with contextlib.suppress(OSError):
        os.write(2, f"\nstopped ({signal.Signals(signum).name}; {why}: forced)\n".encode())
    _default_action(signum)
    os.kill(os.getpid(), signum)
    time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)  # where the default action could not be restored


@contextlib.contextmanager
def stop_on_signals(grace: float = 10.0) -> Iterator[None]:
    """Within the block (main thread only), SIGINT and SIGTERM stop the command:

    - the first raises :class:`Interrupted` in the main thread, so the ``with`` blocks stop their
      children in order; the caller then exits (130 or 143: :attr:`Interrupted.exit_code`);
    - a second one ends the process at once, by the signal's default action: the handlers are one-shot
      (:func:`_one_shot`: done by the kernel, so even while native code holds the GIL), and the watchdog
      restores the default action of the other stop signal too. Owned children get their parent-death
      signal;
    - a process still running ``grace`` seconds after the first (its main thread or its exit stuck) has
      its owned children SIGKILLed and is ended by the first signal's default action.

    Leaving the block without a signal restores the previous handlers."""
    watchdog = _Watchdog(grace)
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise Interrupted(signum)

    # The watchdog first: a signal that arrives while a thread starts would raise inside ``Thread.start``,
    # before the block is entered, and leave the process without its watchdog.
    watchdog.thread.start()
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        _one_shot(signum)
    previous_fd = signal.set_wakeup_fd(watchdog.writer.fileno(), warn_on_full_buffer=False)
    try:
        yield
    finally:
        if not stopping:  # after a signal the watchdog stays, until the process ends
            signal.set_wakeup_fd(previous_fd)
            for signum, old in previous.items():
                signal.signal(signum, old)
            watchdog.disarm()
