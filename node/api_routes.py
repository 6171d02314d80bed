"""The endpoints of the local read API (node/api_server.py), bound to a running daemon."""
from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import logging
import uuid
from typing import TYPE_CHECKING, Any

import msgpack

from node.api_server import Handler, HttpError, Request

if TYPE_CHECKING:
    from node.daemon import Daemon

log = logging.getLogger(__name__)
MAX_ROWS = 100_000


def jsonable(value: Any) -> Any:
    """A DuckDB value as JSON: bytes as hex, decimals as float, times as ISO strings."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def routes(daemon: Daemon) -> dict[tuple[str, str], Handler]:
    """The route table for `daemon`."""

    async def query(request: Request) -> tuple[int, Any]:
        from memory.sqlguard import check_read_only

        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
            raise HttpError(400, 'expected {"sql": str, "params": list}')
        params = body.get("params") or []
        if not isinstance(params, list):
            raise HttpError(400, "params must be a list")
        try:
            check_read_only(body["sql"])
            result = await daemon.in_reader(daemon.store.query, body["sql"], params)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - DuckDB errors are the user's SQL
            if type(exc).__module__.startswith("duckdb"):
                raise HttpError(400, str(exc).splitlines()[0]) from exc
            raise
        rows = [[jsonable(v) for v in row] for row in result.rows[:MAX_ROWS]]
        return 200, {"columns": list(result.columns), "rows": rows}

    async def status(request: Request) -> tuple[int, Any]:
        return 200, await daemon.status()

    async def peers(request: Request) -> tuple[int, Any]:
        return 200, daemon.peers.snapshot()

    async def ingest(request: Request) -> tuple[int, Any]:
        try:
            raws = msgpack.unpackb(request.body, raw=False)
        except Exception as exc:  # noqa: BLE001 - any decode failure is the client's
            raise HttpError(400, f"body is not a msgpack list of records: {exc}") from exc
        if not isinstance(raws, list) or not all(isinstance(r, bytes) for r in raws):
            raise HttpError(400, "body must be a msgpack list of raw records (bytes)")
        report = await daemon.ingest_and_announce(raws)
        return 200, {"accepted": report.accepted, "duplicate": report.duplicate,
                     "rejected": dict(report.rejected)}

    async def publish(request: Request) -> tuple[int, Any]:
        # Another process of this node (e.g. `swarm run`) hands over a body; the daemon signs it,
        # since it alone allocates this identity's seqs.
        import pydantic

        from memory.records import BODIES
        payload = request.json()
        if not isinstance(payload, dict) or payload.get("kind") not in BODIES:
            raise HttpError(400, f"expected {{kind, body}} with kind one of {', '.join(BODIES)}")
        try:
            body = BODIES[payload["kind"]].model_validate(payload.get("body"))
        except pydantic.ValidationError as exc:
            raise HttpError(400, f"invalid {payload['kind']} body: {exc.errors()[0]['msg']}") from exc
        from node.daemon import PublishError
        try:
            record = await daemon.publish(payload["kind"], body)
        except PublishError as exc:
            raise HttpError(500, str(exc)) from exc
        return 200, {"id": record.id, "seq": record.seq}

    async def arrivals(request: Request) -> tuple[int, Any]:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError as exc:
            raise HttpError(400, "since must be milliseconds") from exc
        return 200, await asyncio.to_thread(daemon.arrivals.since, since)

    return {("POST", "/query"): query, ("GET", "/status"): status, ("GET", "/peers"): peers,
            ("POST", "/ingest"): ingest, ("POST", "/publish"): publish,
            ("GET", "/arrivals"): arrivals}
