"""`swarm dashboard`: serve the dashboard for a home on 127.0.0.1 until Ctrl-C.

When a daemon runs on the home it owns the memory file, so the dashboard reads through its API
(the daemon's own local app serves the same pages too); otherwise it opens the file read-only.
"""
from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware

from memory.store import Reader
from node.api_server import LOCAL_HOSTS, GracefulServer, serving_config
from swarm.web.app import dashboard_app, warm_up


def local_app(reader: Reader, home: Path | None) -> Starlette:
    """The dashboard (with `home`'s trust roots), answering only requests that name this machine
    (no DNS rebinding)."""
    app = dashboard_app(reader, home)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS)
    return app


def serve(reader: Reader, home: Path | None, port: int,
          on_listening: Callable[[str], None]) -> None:
    """Serve until interrupted (uvicorn handles Ctrl-C here: this process is only the dashboard)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    on_listening(f"http://127.0.0.1:{sock.getsockname()[1]}/")
    warm_up(reader, home)                  # the first page should not pay the first computation
    server: GracefulServer | None = None
    # a page still computing at Ctrl-C answers 503, not a logged traceback (QuietStop)
    server = GracefulServer(serving_config(
        local_app(reader, home), lambda: server is not None and server.should_exit))
    server.run(sockets=[sock])
