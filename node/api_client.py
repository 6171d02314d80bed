"""Client of a running daemon's local read API (the daemon owns the DuckDB file while it runs).

The daemon writes `HOME/api.json` ({"url", "pid"}) and `HOME/api.token` (mode 0600). Requests carry
`Authorization: Bearer TOKEN`. docs/PROTOCOL.md describes the endpoints.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from memory.store import QueryResult
from node.home import API_FILE, TOKEN_FILE     # not api_server: browsing never loads uvicorn

TIMEOUT_S = 30.0


class ApiError(RuntimeError):
    """The daemon refused a request or could not be reached."""


class QueryRefused(ApiError):
    """The daemon refused a query (400): bad SQL with DuckDB's message, or past its time limit."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connect(home: Path) -> ApiClient | None:
    """A client for the daemon running on `home`, or None when no daemon runs there."""
    try:
        info = json.loads((home / API_FILE).read_text())
        token = (home / TOKEN_FILE).read_text().strip()
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return None            # not a file a daemon wrote: browse the memory file directly
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not _alive(pid):     # kill(0) would ask the group
        return None            # a file left by a daemon that died: browse the file directly
    return ApiClient(info["url"], token)


class ApiClient:
    """Talks to one daemon over HTTP on 127.0.0.1."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._token = token

    def _request(self, path: str, body: bytes | None = None,
                 content_type: str = "application/json", timeout_s: float = TIMEOUT_S) -> Any:
        request = urllib.request.Request(self.url + path, data=body,
                                         method="POST" if body is not None else "GET")
        request.add_header("Authorization", f"Bearer {self._token}")
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = exc.reason
            raise (QueryRefused if exc.code == 400 and path == "/query" else ApiError)(
                str(message)) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(f"cannot reach the daemon at {self.url}: {exc}") from exc

    def get(self, path: str) -> Any:
        """GET one of the daemon's JSON endpoints (`/status`, `/peers`, ...)."""
        return self._request(path)

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = (),
              timeout_s: float | None = None) -> QueryResult:
        """Run a read-only SELECT in the daemon (its --query-timeout unless `timeout_s`)."""
        body = {"sql": sql, "params": list(params), "timeout_s": timeout_s}
        reply = self._request("/query", json.dumps(body).encode(),
                              timeout_s=TIMEOUT_S + (timeout_s or 0))
        return QueryResult(list(reply["columns"]), [tuple(row) for row in reply["rows"]])

    def ingest(self, raws: list[bytes]) -> dict[str, Any]:
        """Hand raw records to the daemon, which validates and stores them."""
        import msgpack
        return self._request("/ingest", msgpack.packb(raws, use_bin_type=True),
                             "application/msgpack")

    def publish(self, kind: str, body: dict[str, Any]) -> str:
        """Have the daemon sign `body` as this node's next `kind` record and publish it; its id."""
        reply = self._request("/publish", json.dumps({"kind": kind, "body": body}).encode())
        return str(reply["id"])

    def close(self) -> None:
        """Nothing to release (one HTTP request per call)."""
