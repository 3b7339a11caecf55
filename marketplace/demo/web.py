"""The demo with the web UI left running: run the demo job on a local stack, then serve the UI for it
until Ctrl-C (the chain and the IPFS node stay up as long as the UI does; a KeyboardInterrupt, or
:class:`~marketplace.adapters.processes.Interrupted` for SIGTERM, stops the UI, then the stack, and
propagates)."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from rich.console import Console

from marketplace.demo.job import DemoConfig, DemoResult, LocalStack, local_stack, run_demo
from marketplace.web.main import create_app
from marketplace.web.server import BackgroundServer, serve_in_background
from marketplace.web.settings import WebSettings


def serve_stack(stack: LocalStack, db_path: Path, host: str = "127.0.0.1", port: int = 8000) -> BackgroundServer:
    """Serves the web UI for ``stack``'s deployment; falls back to a free port if ``port`` is taken."""
    settings = WebSettings(
        rpc_url=stack.chain_url,
        deployment=stack.deployment,
        db_path=db_path,
        ipfs_api=stack.ipfs_api,
        network="local",
        sync_interval=1.0,
    )
    app = create_app(settings)
    try:
        return serve_in_background(app, host, port)
    except OSError:  # port in use
        return serve_in_background(app, host, 0)


def run_demo_with_web(
    config: DemoConfig,
    console: Console | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    stop: threading.Event | None = None,
) -> DemoResult:
    """Runs the demo job, then serves the web UI (printing its URL) until ``stop`` is set (returns the
    result) or a KeyboardInterrupt (Ctrl-C) ends the wait (propagates, once the UI and the stack are stopped)."""
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="marketplace-demo-") as tmp:
        workdir = config.workdir or Path(tmp)
        console.print("starting a local chain" + ("" if config.ipfs_api else " and IPFS node"))
        with local_stack(workdir, config.trainers + 3, config.ipfs_api) as stack:
            console.print(f"chain [bold]{stack.chain_url}[/bold]   IPFS API [bold]{stack.ipfs_api}[/bold]")
            with serve_stack(stack, workdir / "web-index.sqlite", host, port) as server:
                console.print(f"web UI: [bold]{server.url}/projects[/bold] (watch the job as it runs)")
                result = run_demo(config, console, stack)
                console.print(
                    f"\nweb UI: [bold]{server.url}/projects/{result.project_id}[/bold]  "
                    f"(all projects: {server.url}/projects; Ctrl-C stops the UI, the chain and IPFS)"
                )
                stop = stop or threading.Event()
                while not stop.wait(1.0):  # short waits keep Ctrl-C responsive
                    pass
    return result
