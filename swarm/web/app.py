"""The dashboard: a read-only Starlette app of pages, their JSON twins and live events.

    /                 overview          /json/overview?track=
    /leaderboard      leaderboard       /json/leaderboard?track=
    /knobs            knob effects      /json/knobs?track=
    /runs             runs table        /json/runs?track=&status=&purpose=&author=
    /runs/{id}        one run           /json/runs/{id}
    /claims           claims            /json/claims?track=   (trusted and untrusted apart)
    /claims/{id}      one claim         /json/claims/{id}
    /trust            who is trusted    /json/trust
    /events           server-sent events: `records` with the record count whenever it changes
    /static/...       app.js, app.css, vendor/ (vega, vega-lite, vega-embed with their licences)

Served by `swarm dashboard` (a memory file no daemon holds, or a running daemon through its API)
and mounted into a running `swarm join`'s local app (`mount_into`). Requests from other sites'
pages are refused (swarm/web/crosssite.py). Pages load nothing from outside 127.0.0.1; every page is the same shell that app.js fills from the JSON twin. Every view
shows this node's own verdicts: the app knows the home, whose own key and pinned keys are the
trust roots (read again on each request, so `swarm trust add` shows on the next page load).
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from memory.store import Reader, StoreError
from swarm.conclusions import Conclusions
from memory.invisible import JS_CLASS
from swarm.web import views
from swarm.web.crosssite import SameOriginOnly

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
EVENT_POLL_S = 1.0
KEEPALIVE_S = 15.0
# Live event streams open at once: each lasts as long as its tab and polls the store each second.
# A local process that opened MAX_CONNECTIONS of them (node/api_server.py) held every connection of
# the daemon's app, API included; past this cap a new stream ends the oldest one (a browser's
# EventSource reconnects by itself after `retry`), so streams never hold more than this many.
MAX_EVENT_STREAMS = 16
NodeState = Callable[[], Awaitable[dict[str, Any]]]
PAGES = {"overview": "Overview", "leaderboard": "Leaderboard", "claims": "Claims",
         "knobs": "Knob effects", "runs": "Runs", "trust": "Trust", "run": "Run", "claim": "Claim"}
NAV = [("overview", ""), ("leaderboard", "leaderboard"), ("claims", "claims"), ("knobs", "knobs"),
       ("runs", "runs"), ("trust", "trust")]


def shell(view: str, params: dict[str, Any], root: str = "/", inline: str | None = None) -> str:
    """The HTML of a page: the view's name and parameters for app.js, which draws it.

    `inline` (for `swarm report`) replaces the links to scripts and styles with their text."""
    # `invisible`: the characters app.js shows as U+FFFD in any author's text (memory/invisible.py)
    boot = script_json({"view": view, "params": params, "root": root, "invisible": JS_CLASS})
    head = inline if inline is not None else (
        f'<link rel="stylesheet" href="{root}static/app.css">' + "".join(
            f'<script src="{root}static/{name}"></script>' for name in SCRIPTS))
    # In a report (`inline`), the views are sections of one file: the links are anchors.
    nav = "".join(f'<a href="{"#" + name if inline is not None else root + path}">{PAGES[name]}</a>'
                  for name, path in NAV)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>swarm: {PAGES[view]}</title><link rel="icon" href="data:,">{head}'
            f'</head><body>'
            f'<nav>{nav}<span id="live"></span></nav><main id="main"></main>'
            f'<script type="application/json" id="boot">{boot}</script>'
            f'<script>swarmDashboard.start()</script></body></html>')


def missing_page(path: str, root: str = "/") -> str:
    """The HTML of a path that is no page: says so, and lists the pages (no script: nothing to
    load). The path is anyone's text: escaped, and cut like a missing id."""
    shown = html.escape(path if len(path) <= 64 else path[:64] + "…")
    nav = "".join(f'<a href="{root + p}">{PAGES[name]}</a>' for name, p in NAV)
    pages = ", ".join(f'<a href="{root + p}">{PAGES[name]}</a>' for name, p in NAV)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>swarm: no such page</title><link rel="icon" href="data:,">'
            f'<link rel="stylesheet" href="{root}static/app.css"></head><body><nav>{nav}</nav>'
            f'<main id="main" data-view="missing"><p class="empty">There is no page at {shown} '
            f'here. The pages: {pages}; a run is at runs/ID and a claim at claims/ID (ID: its '
            f'first characters are enough).</p></main></body></html>')


def script_json(value: Any) -> str:
    """`value` as JSON that is safe as the text of a <script> element and reads back unchanged.

    Strings come from records (any author's text) and from the URL: an escaped `<` cannot
    close the script (`</SCRIPT>` closes it too: tag names ignore case) nor open a comment,
    and `\\u003c` is still `<` to JSON.parse and to JavaScript."""
    text = json.dumps(value, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


SCRIPTS = ["vendor/vega.min.js", "vendor/vega-lite.min.js", "vendor/vega-embed.min.js", "app.js"]


class Dashboard:
    """The views over one reader with one home's trust roots; `node_state` adds the running
    node's status to the overview."""

    def __init__(self, reader: Reader, home: Path | None,
                 node_state: NodeState | None = None) -> None:
        self.reader, self.home, self.node_state = reader, home, node_state
        self._streams: list[asyncio.Event] = []     # open event streams' stop signals, oldest first

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        # DuckDB and verdict work runs in a thread: the event loop (and the daemon it may belong
        # to) stays free. One Conclusions per request: its verdicts are computed once for it.
        return await asyncio.to_thread(lambda: fn(Conclusions(self.reader, self.home), *args))

    async def overview(self, request: Request) -> Response:
        node = await self.node_state() if self.node_state is not None else None
        return _json(await self._call(views.overview, request.query_params.get("track"), node))

    async def leaderboard(self, request: Request) -> Response:
        return _json(await self._call(views.leaderboard, request.query_params.get("track")))

    async def claims(self, request: Request) -> Response:
        return _json(await self._call(views.claims, request.query_params.get("track")))

    async def trust(self, request: Request) -> Response:
        return _json(await self._call(views.trust))

    async def knobs(self, request: Request) -> Response:
        return _json(await self._call(views.knobs, request.query_params.get("track")))

    async def runs(self, request: Request) -> Response:
        q = request.query_params
        return _json(await self._call(views.runs, q.get("track"), q.get("status"),
                                      q.get("purpose"), q.get("author")))

    async def run(self, request: Request) -> Response:
        return _found(await self._call(views.run, request.path_params["id"]), "run",
                      request.path_params["id"])

    async def claim(self, request: Request) -> Response:
        return _found(await self._call(views.claim, request.path_params["id"]), "claim",
                      request.path_params["id"])

    async def events(self, request: Request) -> Response:
        return StreamingResponse(self._event_stream(request), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def _event_stream(self, request: Request) -> AsyncIterator[str]:
        stop = asyncio.Event()
        if len(self._streams) >= MAX_EVENT_STREAMS:
            self._streams.pop(0).set()
        self._streams.append(stop)
        try:
            async for event in self._events(request, stop):
                yield event
        finally:
            if stop in self._streams:
                self._streams.remove(stop)

    async def _events(self, request: Request, stop: asyncio.Event) -> AsyncIterator[str]:
        last, quiet = None, 0.0
        yield "retry: 3000\n\n"
        while not stop.is_set() and not await request.is_disconnected():
            count = await asyncio.to_thread(_record_count, self.reader)
            if count != last:
                last, quiet = count, 0.0
                yield f"event: records\ndata: {json.dumps({'records': count})}\n\n"
            elif quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(EVENT_POLL_S)
            quiet += EVENT_POLL_S


def _record_count(reader: Reader) -> int:
    return int(reader.query("SELECT count(*) FROM records").rows[0][0])


def _json(value: Any) -> Response:
    return JSONResponse(value)


def _found(value: Any, what: str, wanted: str) -> Response:
    if value is None:           # the page shows this line: the id as typed, cut (it is anyone's)
        shown = wanted if len(wanted) <= 64 else wanted[:64] + "…"
        return JSONResponse({"error": f"no {what} with id {shown} in this memory"},
                            status_code=404)
    return JSONResponse(value)


def _page(view: str, **fixed: Any) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        params = {**dict(request.query_params), **request.path_params, **fixed}
        root = request.scope.get("root_path", "").rstrip("/") + "/"
        return HTMLResponse(shell(view, params, root))
    return page


async def _not_found(request: Request, exc: Exception) -> Response:
    """A path that is no page gets a page saying so; the JSON, static and event paths keep a bare
    404 (programs read them)."""
    path = request.url.path
    if path.startswith(("/json/", "/static/", "/events")):
        return Response("Not Found", status_code=404, media_type="text/plain")
    root = request.scope.get("root_path", "").rstrip("/") + "/"
    return HTMLResponse(missing_page(path, root), status_code=404)


def dashboard_app(reader: Reader, home: Path | None,
                  node_state: NodeState | None = None) -> Starlette:
    """The dashboard's Starlette app over `reader`, concluding with `home`'s trust roots (None:
    $SWARM_HOME or ~/.swarm, as the CLI resolves it)."""
    d = Dashboard(reader, home, node_state)
    return Starlette(routes=[
        Route("/", _page("overview")), Route("/leaderboard", _page("leaderboard")),
        Route("/claims", _page("claims")), Route("/knobs", _page("knobs")),
        Route("/runs", _page("runs")), Route("/trust", _page("trust")),
        Route("/runs/{id:str}", _page("run")), Route("/claims/{id:str}", _page("claim")),
        Route("/json/overview", d.overview), Route("/json/leaderboard", d.leaderboard),
        Route("/json/claims", d.claims), Route("/json/trust", d.trust),
        Route("/json/knobs", d.knobs), Route("/json/runs", d.runs),
        Route("/json/runs/{id:str}", d.run), Route("/json/claims/{id:str}", d.claim),
        Route("/events", d.events), Mount("/static", StaticFiles(directory=STATIC)),
    ], exception_handlers={404: _not_found}, middleware=[Middleware(SameOriginOnly)])


def warm_up(reader: Reader, home: Path | None) -> threading.Thread:
    """Compute the busiest track's verdicts in the background as the server starts (the first
    computation reads every run: seconds at a million runs), so the first page finds them
    cached, and group its authors' runs by config (roles/author_sums.py: ~0.3 s of CPU
    at a million runs, after which no change of trust groups any author's runs). A request that
    arrives meanwhile waits for this computation (roles.verdicts computes one at a time) and then
    uses it: it costs at most what it would have cost alone."""
    def run() -> None:
        try:
            c = Conclusions(reader, home)
            views.leaderboard(c, None)
            views.overview(c, None)
            chosen = views.pick_track(reader, None, trusted=views.trusted_authors(c))
            v = c.track(chosen) if chosen is not None else None
            if v is not None:              # so the first change of trust pays no grouping
                v.agg.group_authors()
        except StoreError as exc:          # the node stopped meanwhile: nothing went wrong
            log.debug("dashboard warm-up ended: %s", exc)
        except Exception:                  # a warm-up that fails leaves the requests to compute
            log.warning("dashboard warm-up failed", exc_info=True)
    thread = threading.Thread(target=run, name="dashboard-warm-up", daemon=True)
    thread.start()
    return thread


def mount_into(daemon: Any) -> None:
    """Serve the dashboard from a running daemon's local app (a start-up hook of `swarm join`)."""
    daemon.api.mount("/", dashboard_app(daemon.store, daemon.home, daemon.status))
    warm_up(daemon.store, daemon.home)


def with_dashboard(start: Any | None) -> Any:
    """A `swarm join` start-up hook that mounts the dashboard, then runs `start` (the worker)."""
    def started(daemon: Any, loop: Any) -> list[Any]:
        mount_into(daemon)
        return start(daemon, loop) if start is not None else []
    return started
