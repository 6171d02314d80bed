"""Refuse what other web sites' pages ask of the dashboard (ASGI middleware).

The dashboard listens on 127.0.0.1, and any web page the user has open may still send it
requests: `fetch(..., {mode: "no-cors"})`, an image, an iframe, an EventSource. The browser
hides the answers from that page (no CORS header), but the dashboard computed them: a page
looping over `/json/overview` kept this machine's CPU busy on the node's verdicts, and its event
streams ended the user's own (MAX_EVENT_STREAMS, oldest first). Browsers say where a request comes
from in `Sec-Fetch-Site` (Chrome 76+, Firefox 90+, Safari 16.4+): one from another site (or
another port's "same-site" app) is refused with 403, except a top-level navigation to a page (a
link followed to the dashboard: its shell costs nothing, and its own requests are then
same-origin). A request without the header (curl, a script, an older browser) is served.
"""
from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

FOREIGN = {b"cross-site", b"same-site"}
NOT_PAGES = ("/json/", "/events", "/static/")


class SameOriginOnly:
    """Serve requests from the dashboard's own pages (and from no page at all); refuse others'."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _foreign(scope):
            response = PlainTextResponse("cross-site request refused", status_code=403)
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def _foreign(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    if headers.get(b"sec-fetch-site") not in FOREIGN:
        return False
    path = scope["path"][len(scope.get("root_path", "")):] or "/"     # inside a mount, too
    page = not path.startswith(NOT_PAGES)
    return not (page and headers.get(b"sec-fetch-dest") == b"document")
