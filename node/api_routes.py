"""The endpoints of the local API (node/api_server.py), bound to a running daemon.

    POST /query   {"sql", "params"?, "timeout_s"?} -> {"columns", "rows"} | 400 {"error"}
    GET  /status                                -> what `swarm status` shows (+ "reads" counters)
    GET  /peers                                 -> [{peer_id, addrs, last_seen, received, ...}]
    POST /ingest  msgpack list of raw records   -> {"accepted", "duplicate", "rejected"}
    POST /publish {"kind", "body"}              -> {"id", "seq"} (the daemon signs)
    GET  /arrivals?since=MS                     -> [[record_id, stored_at_ms], ...] (benchmarks)

Queries run on cursors of their own in a small pool (`Reads`), never under the store's write lock,
each with a time limit; a client that goes away has its query interrupted.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import duckdb
import msgpack
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from memory.store import DiskFull, QueryResult, QueryTimeout, ReadQuery
from node.api_server import HttpError, JsonResponse, read_body

if TYPE_CHECKING:
    from node.daemon import Daemon

log = logging.getLogger(__name__)
MAX_ROWS = 100_000
READ_WORKERS = 4            # queries running at once; more wait for a slot
DEFAULT_QUERY_TIMEOUT_S = 5.0
MAX_QUERY_TIMEOUT_S = 3600.0


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


def sql_error(exc: BaseException) -> str:
    """DuckDB's own message for a bad query (its exceptions live in `_duckdb`, not `duckdb`)."""
    return str(exc).strip()


class Reads:
    """The API's queries: a few at once, each on its own cursor, time-limited and cancellable."""

    def __init__(self, open_read: Callable[[], ReadQuery], timeout_s: float) -> None:
        self.open_read, self.timeout_s = open_read, timeout_s
        self._pool = ThreadPoolExecutor(READ_WORKERS, thread_name_prefix="api-query")
        self.counts = {"running": 0, "done": 0, "failed": 0, "timed_out": 0, "cancelled": 0}

    async def run(self, request: Request, sql: str, params: list[Any],
                  timeout_s: float | None) -> QueryResult:
        """Run `sql`; HttpError 400 for a bad query or one past its time limit."""
        read = self.open_read()
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool, read.run, sql, params, timeout_s or self.timeout_s)
        gone = asyncio.create_task(_client_gone(request))
        self.counts["running"] += 1
        try:
            await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not job.done():
                read.cancel()             # the client went away: stop the query, free its memory
            return await self._outcome(job, read)
        finally:
            if not job.done():
                read.cancel()             # this request was cancelled (shutdown)
                # and nobody awaits the query's end: without this, its InterruptException was
                # logged as "Future exception was never retrieved", with a traceback
                job.cancel()
            self.counts["running"] -= 1
            gone.cancel()

    async def _outcome(self, job: Awaitable[QueryResult], read: ReadQuery) -> QueryResult:
        try:
            result = await job
        except QueryTimeout as exc:
            self.counts["timed_out"] += 1
            raise HttpError(400, str(exc)) from exc
        except ValueError as exc:                 # not a single SELECT (memory.sqlguard)
            self.counts["failed"] += 1
            raise HttpError(400, str(exc)) from exc
        except duckdb.Error as exc:
            if read.cancelled:
                self.counts["cancelled"] += 1
                raise HttpError(499, "query cancelled: the client went away") from exc
            self.counts["failed"] += 1
            raise HttpError(400, sql_error(exc)) from exc
        self.counts["done"] += 1
        return result

    def close(self) -> None:
        """Stop the pool's threads once their queries end."""
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _client_gone(request: Request) -> None:
    """Return when the client disconnects (the body has been read: only that message is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await read_body(request) or b"null")
    except ValueError as exc:
        raise HttpError(400, f"body is not JSON: {exc}") from exc


def _query_args(body: Any) -> tuple[str, list[Any], float | None]:
    if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
        raise HttpError(400, 'expected {"sql": str, "params": list, "timeout_s": number}')
    params = body.get("params") or []
    if not isinstance(params, list):
        raise HttpError(400, "params must be a list")
    timeout = body.get("timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout <= MAX_QUERY_TIMEOUT_S):
        raise HttpError(400, f"timeout_s must be a number of seconds in (0, {MAX_QUERY_TIMEOUT_S:g}]")
    return body["sql"], params, timeout


def routes(daemon: Daemon, query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S) -> list[BaseRoute]:
    """The API's routes for `daemon`; its queries stop after `query_timeout_s` unless asked."""
    reads = Reads(daemon.store.read, query_timeout_s)

    async def query(request: Request) -> Response:
        sql, params, timeout = _query_args(await _json_body(request))
        result = await reads.run(request, sql, params, timeout)
        rows = [[jsonable(v) for v in row] for row in result.rows[:MAX_ROWS]]
        return JsonResponse({"columns": list(result.columns), "rows": rows})

    async def status(request: Request) -> Response:
        return JsonResponse({**await daemon.status(), "reads": dict(reads.counts)})

    async def peers(request: Request) -> Response:
        return JsonResponse(await daemon.peer_table())

    async def ingest(request: Request) -> Response:
        raws = _raw_records(await read_body(request))
        try:
            report = await daemon.ingest_and_announce(raws)
        except DiskFull as exc:             # 507 Insufficient Storage, with the one line
            raise HttpError(507, str(exc)) from None
        return JsonResponse({"accepted": report.accepted, "duplicate": report.duplicate,
                             "rejected": dict(report.rejected)})

    async def publish(request: Request) -> Response:
        record = await _publish(daemon, await _json_body(request))
        return JsonResponse({"id": record.id, "seq": record.seq})

    async def arrivals(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError as exc:
            raise HttpError(400, "since must be milliseconds") from exc
        return JsonResponse(await asyncio.to_thread(daemon.arrivals.since, since))

    return [Route("/query", query, methods=["POST"]), Route("/status", status),
            Route("/peers", peers), Route("/ingest", ingest, methods=["POST"]),
            Route("/publish", publish, methods=["POST"]), Route("/arrivals", arrivals)]


def _raw_records(body: bytes) -> list[bytes]:
    try:
        raws = msgpack.unpackb(body, raw=False)
    except Exception as exc:  # noqa: BLE001 - any decode failure is the client's
        raise HttpError(400, f"body is not a msgpack list of records: {exc}") from exc
    if not isinstance(raws, list) or not all(isinstance(r, bytes) for r in raws):
        raise HttpError(400, "body must be a msgpack list of raw records (bytes)")
    return raws


async def _publish(daemon: Daemon, payload: Any) -> Any:
    # Another process of this node (e.g. `swarm run`) hands over a body; the daemon signs it,
    # since it alone allocates this identity's seqs.
    import pydantic

    from memory.records import BODIES
    from node.daemon import PublishError
    if not isinstance(payload, dict) or payload.get("kind") not in BODIES:
        raise HttpError(400, f"expected {{kind, body}} with kind one of {', '.join(BODIES)}")
    try:
        body = BODIES[payload["kind"]].model_validate(payload.get("body"))
    except pydantic.ValidationError as exc:
        raise HttpError(400, f"invalid {payload['kind']} body: {exc.errors()[0]['msg']}") from exc
    try:
        return await daemon.publish(payload["kind"], body)
    except PublishError as exc:
        raise HttpError(500, str(exc)) from exc
