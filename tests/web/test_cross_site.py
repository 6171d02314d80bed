"""What the dashboard serves by where a request comes from (`Sec-Fetch-Site`, as browsers send
it; tests/web/test_hostile_pages.py drives the same in real Chromium)."""
from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from memory.store import ReadOnlyMemory
from node.home import memory_path
from swarm.web.app import dashboard_app


def test_only_another_sites_navigation_to_a_page_is_served(history_home: Path) -> None:
    def status(path: str, **headers: str) -> int:
        return client.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()}
                          ).status_code
    memory = ReadOnlyMemory(memory_path(history_home))
    try:
        with TestClient(dashboard_app(memory, history_home), base_url="http://127.0.0.1") as client:
            # no header (curl, a script), the dashboard's own pages, a link followed from elsewhere
            assert status("/json/trust") == 200
            assert status("/json/trust", sec_fetch_site="same-origin", sec_fetch_dest="empty") == 200
            assert status("/claims", sec_fetch_site="cross-site", sec_fetch_mode="navigate",
                          sec_fetch_dest="document") == 200
            # another site's (or another port's, same-site) script, image or frame
            for site in ("cross-site", "same-site"):
                assert status("/json/trust", sec_fetch_site=site, sec_fetch_dest="empty") == 403
                assert status("/json/trust", sec_fetch_site=site, sec_fetch_dest="document") == 403
                assert status("/claims", sec_fetch_site=site, sec_fetch_dest="iframe") == 403
                assert status("/static/app.js", sec_fetch_site=site, sec_fetch_dest="script") == 403
    finally:
        memory.close()
