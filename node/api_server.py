"""The daemon's local read API: a tiny HTTP/1.1 server on 127.0.0.1 (stdlib asyncio only).

While `swarm join` runs it owns the DuckDB file, so browsing commands ask it instead of opening the
file. It writes `HOME/api.json` = {"url", "pid"} (removed at clean shutdown) and `HOME/api.token`
(mode 0600); every request must carry `Authorization: Bearer TOKEN`.

    POST /query   {"sql": str, "params": list}  -> {"columns": [...], "rows": [[...]]} | 400 {"error"}
    GET  /status                                -> what `swarm status` shows
    GET  /peers                                 -> [{peer_id, addrs, last_seen, received, ...}]
    POST /ingest  msgpack list of raw records   -> {"accepted", "duplicate", "rejected"}
    GET  /arrivals?since=MS                     -> [[record_id, stored_at_ms], ...] (benchmarks)
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

API_FILE = "api.json"
TOKEN_FILE = "api.token"
MAX_BODY = 32 * 1024 * 1024         # an import batch; larger requests get 413
HEADER_TIMEOUT_S = 10.0

Handler = Callable[["Request"], Awaitable[tuple[int, Any]]]


class HttpError(Exception):
    """An error answered to the client with `status` and a JSON {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Request:
    """One parsed request."""

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        parts = urlsplit(target)
        self.method, self.path, self.headers, self.body = method, parts.path, headers, body
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}

    def json(self) -> Any:
        """The body as JSON, or HttpError 400."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from exc


class ApiServer:
    """Serve `routes` {(method, path): handler} on 127.0.0.1 with bearer-token auth."""

    def __init__(self, home: Path, routes: dict[tuple[str, str], Handler], port: int = 0) -> None:
        self.home, self.routes, self.port = home, routes, port
        self.token = secrets.token_hex(32)
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen, write the token and api.json; return the URL."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{self.port}"
        _write_private(self.home / TOKEN_FILE, self.token + "\n")
        _write_private(self.home / API_FILE, json.dumps({"url": url, "pid": os.getpid()}) + "\n")
        return url

    async def stop(self) -> None:
        """Remove api.json, stop accepting and close the listener."""
        (self.home / API_FILE).unlink(missing_ok=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader), HEADER_TIMEOUT_S)
            status, payload = await self._dispatch(request)
        except HttpError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the server
            log.warning("API request failed: %r", exc, exc_info=True)
            status, payload = 500, {"error": f"internal error: {type(exc).__name__}"}
        await _respond(writer, status, payload)

    async def _dispatch(self, request: Request) -> tuple[int, Any]:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise HttpError(401, "missing or wrong token (see HOME/api.token)")
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            raise HttpError(404, f"no endpoint {request.method} {request.path}")
        return await handler(request)


async def _read_request(reader: asyncio.StreamReader) -> Request:
    line = (await reader.readline()).decode("latin-1").split()
    if len(line) != 3:
        raise HttpError(400, "bad request line")
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        if len(headers) > 100:
            raise HttpError(400, "too many headers")
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise HttpError(413, f"body over {MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    return Request(line[0].upper(), line[1], headers, body)


async def _respond(writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
    body = json.dumps(payload, default=str).encode()
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n")
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()
    except ConnectionError:
        pass


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            413: "Payload Too Large", 500: "Internal Server Error"}


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only (created 0600, replaced atomically)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
