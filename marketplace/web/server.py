"""Run the web app with uvicorn in a background thread (``marketplace web``, the demo, the browser tests)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

#: Pending connections the kernel queues before refusing (a burst of page loads opens many at once).
_BACKLOG = 2048
#: How long an idle keep-alive connection stays open. uvicorn's 5 s default loses requests under load: a
#: client reuses a connection in the instant the server closes it ("server disconnected without a response").
_KEEP_ALIVE_SECONDS = 75


@dataclass
class BackgroundServer:
    """A uvicorn server running in a daemon thread; :meth:`stop` shuts it down."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int
    _sock: socket.socket = field(repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stops accepting, lets the requests in flight finish for up to ``timeout`` seconds, then
        drops them (``force_exit``) and waits up to 2 s more for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(2.0)
        self._sock.close()

    def wait(self) -> None:
        """Blocks until the server stops (signals still reach the calling thread)."""
        while self.thread.is_alive():
            self.thread.join(0.5)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_background(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 30.0,
    log_level: str = "warning",
    graceful_shutdown: float = 3.0,
) -> BackgroundServer:
    """Serves ``app`` on ``host:port`` (0 = a free port) from a daemon thread; returns once it accepts requests.

    uvicorn never touches signals here (it handles them only in the main thread): the caller decides when to
    stop. Once stopping, requests still in flight after ``graceful_shutdown`` seconds are cancelled."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(_BACKLOG)
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=graceful_shutdown,
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
        backlog=_BACKLOG,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"web-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the web server exited during startup (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the web server did not start within {startup_timeout}s")
        time.sleep(0.02)
    return BackgroundServer(server, thread, host, bound_port, sock)
