"""The daemon's local app: one Starlette app served by uvicorn inside the daemon's asyncio loop.

While `swarm join` runs it owns the DuckDB file, so browsing commands ask it instead of opening the
file. It writes `HOME/api.json` = {"url", "pid"} (removed at clean shutdown) and `HOME/api.token`
(mode 0600). The API's endpoints (node/api_routes.py) need `Authorization: Bearer TOKEN`; the token
is checked from the headers before any body is read, and a body over `MAX_BODY` is refused unread.
Apps mounted later by a start-up hook (the dashboard, swarm/web/) are read-only and need no token.
Every request must name 127.0.0.1 or localhost as its Host, so a web page cannot reach the app
through a DNS name that resolves to this machine (DNS rebinding).

We keep uvicorn's own server loop but not its signal handling: the daemon owns SIGINT/SIGTERM.
uvicorn never closes a connection that has sent no whole request head (it only times out idle
keep-alive connections after a response), so a slow client (slowloris) could hold every file
descriptor of the daemon, libp2p's included: `HeadDeadline` closes a connection without a request
head within `HEAD_S`, and past `MAX_CONNECTIONS` open connections a new one is closed at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from node.home import API_FILE, TOKEN_FILE

log = logging.getLogger(__name__)

MAX_BODY = 32 * 1024 * 1024         # an import batch; larger requests get 413
LOCAL_HOSTS = ["127.0.0.1", "localhost"]
GRACE_S = 2.0                       # at stop, requests in flight get this long to finish
STOP_S = 5.0
HEAD_S = 10.0                       # to send a whole request head, from connecting or a response
MAX_CONNECTIONS = 256               # open at once (a dashboard tab holds one or two)


class HttpError(Exception):
    """An error answered to the client with `status` and a JSON {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class JsonResponse(Response):
    """JSON as the old server wrote it (NaN allowed, unknown types as strings)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str).encode()


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request's body, or HttpError 413 as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    # `Connection: close`: the unread body is never read; the connection ends with the answer.
    response = JsonResponse({"error": message}, status_code=status, headers={"connection": "close"})
    await response(scope, _no_receive, send)


STOPPING = "the node is stopping"


class QuietStop:
    """ASGI middleware (outermost): a request that the server's stop ends gets 503, no traceback.

    uvicorn's graceful stop waits a moment for the requests in flight (a dashboard page that
    aggregates every run, a long query, a live event stream), then cancels them, logging each
    with a traceback as "Exception in ASGI application" and answering 500: a node stopped under
    load filled its log with them. Once `stopping()` is true, a request that ends by an exception
    (the cancellation included) answers 503 "the node is stopping" if it had not started its
    answer, else ends the answer begun (an event stream), and logs one debug line; before that,
    errors go on as they were.
    """

    def __init__(self, app: ASGIApp, stopping: Callable[[], bool]) -> None:
        self.app, self.stopping = app, stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        sent = {"started": False, "ended": False}

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                sent["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                sent["ended"] = True
            await send(message)
        try:
            await self.app(scope, receive, sending)
        except (Exception, asyncio.CancelledError) as exc:
            if not self.stopping():
                raise
            # the task ends here, answered: nothing awaits it but uvicorn, which only forgets it
            log.debug("request %s ended by the stop: %r", scope.get("path"), exc)
            if not sent["started"]:
                await _refuse(scope, send, 503, STOPPING)
            elif not sent["ended"]:        # uvicorn logs an ERROR for an answer left unended
                await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _no_receive() -> Any:
    raise RuntimeError("the gate never reads a refused request's body")


class TokenGate:
    """ASGI middleware: the API's paths need the bearer token, checked before any body is read."""

    def __init__(self, app: ASGIApp, token: str, protected: set[str]) -> None:
        self.app, self.protected = app, protected
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.protected:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"authorization", b""), self._expected):
            return await _refuse(scope, send, 401, "missing or wrong token (see HOME/api.token)")
        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            return await _refuse(scope, send, 400, "bad Content-Length")
        if length > MAX_BODY:
            return await _refuse(scope, send, 413, f"body over {MAX_BODY} bytes")
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return JsonResponse({"error": str(exc)}, status_code=exc.status)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JsonResponse({"error": f"no endpoint {request.method} {request.url.path}"},
                        status_code=404)


async def _internal(request: Request, exc: Exception) -> Response:
    log.warning("API request %s failed: %r", request.url.path, exc, exc_info=True)
    return JsonResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


def build_app(routes: list[BaseRoute], token: str) -> Starlette:
    """The local app: `routes` behind the token gate, on local Host names only."""
    protected = {getattr(route, "path", "") for route in routes}
    return Starlette(
        routes=list(routes),
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS),
                    Middleware(TokenGate, token=token, protected=protected)],
        exception_handlers={HttpError: _http_error, 404: _not_found, 405: _not_found,
                            Exception: _internal})


class HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head (`HEAD_S`, from the connection
    or from the last response) and a cap on open connections (`MAX_CONNECTIONS`)."""

    head_s = HEAD_S
    max_connections = MAX_CONNECTIONS
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.close()                 # connection_lost forgets it
            return
        self._arm()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:           # a whole request head arrived
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()                           # before: a pipelined request disarms it again
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class GracefulServer(uvicorn.Server):
    """uvicorn's server whose stop gives the requests in flight `GRACE_S`, then cancels the rest
    itself (`QuietStop` answers them 503). uvicorn's own graceful timeout (set to `STOP_S`) stays
    the backstop: reached, it logs an ERROR line ("Cancel N running task(s)") for what is only a
    stop under load."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        late = asyncio.get_running_loop().call_later(GRACE_S, self._cancel_requests)
        try:
            await super().shutdown(sockets)
        finally:
            late.cancel()

    def _cancel_requests(self) -> None:
        for task in list(self.server_state.tasks):
            task.cancel()


def serving_config(app: ASGIApp, stopping: Callable[[], bool]) -> uvicorn.Config:
    """uvicorn's settings for the local apps: `app` behind `QuietStop`, warnings only, no
    lifespan, `HeadDeadline` connections, the graceful stop's backstop at `STOP_S`."""
    return uvicorn.Config(QuietStop(app, stopping), log_level="warning", access_log=False,
                          lifespan="off", http=HeadDeadline, ws="none",
                          timeout_graceful_shutdown=STOP_S)


class _DaemonOwnedSignals(GracefulServer):
    """The server without uvicorn's signal handlers (the daemon's loop handles the signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class AppServer:
    """Serve a Starlette app with uvicorn as a task of the running asyncio loop, on 127.0.0.1."""

    def __init__(self, app: Starlette, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app, self.host, self.port = app, host, port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        """Listen and serve; return the URL once uvicorn accepts connections."""
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = _DaemonOwnedSignals(serving_config(self.app, self._stopping))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()             # re-raise the start-up failure
                raise OSError(f"the local app on {self.url} stopped at start-up")
            await asyncio.sleep(0.01)
        return self.url

    def _stopping(self) -> bool:
        return self._server is not None and self._server.should_exit

    def mount(self, path: str, app: ASGIApp) -> None:
        """Serve `app` under `path` (after the existing routes; no token: read-only apps only)."""
        self.app.router.routes.append(Mount(path, app=app))

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (`GRACE_S`), answer the rest 503 (see
        `QuietStop`), close the listener."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), GRACE_S + STOP_S)
        except asyncio.TimeoutError:
            self._server.force_exit = True
            await asyncio.gather(self._task, return_exceptions=True)


class ApiServer(AppServer):
    """The local API: `routes` behind a fresh bearer token; writes api.token and api.json."""

    def __init__(self, home: Path, routes: list[BaseRoute], port: int = 0) -> None:
        self.home = home
        self.token = secrets.token_hex(32)
        super().__init__(build_app(routes, self.token), port)

    async def start(self) -> str:
        """Listen, write the token and api.json; return the URL."""
        url = await super().start()
        _write_private(self.home / TOKEN_FILE, self.token + "\n")
        _write_private(self.home / API_FILE, json.dumps({"url": url, "pid": os.getpid()}) + "\n")
        return url

    async def stop(self) -> None:
        """Remove api.json, then stop serving."""
        (self.home / API_FILE).unlink(missing_ok=True)
        await super().stop()


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only (created 0600, replaced atomically)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
