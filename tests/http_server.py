"""A threaded HTTP server on 127.0.0.1 for the tests' stand-ins of remote endpoints (RPC proxies in front of
anvil): start, answer, stop, written once."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from marketplace.adapters.chain.anvil import free_port


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no request log, and :meth:`answer`. Headers and body go out in two writes, so
    Nagle's algorithm is off: with it each answer waited ~40 ms for the client's delayed ACK."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        """Sends ``payload`` with ``status``."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class LoopbackServer:
    """Serves ``handler`` on a free port of 127.0.0.1 from a daemon thread until :meth:`close`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
