"""`swarm report`: the dashboard's views of one track as one self-contained HTML file.

Scripts, styles and data are inlined: the file opens with the network off, by mail or attached
to an issue. Links between views become anchors inside the file.
"""
from __future__ import annotations

import json
from typing import Any

from memory.store import Reader
from swarm.web import views
from swarm.web.app import SCRIPTS, STATIC, shell

MAX_RUN_PAGES = 0        # run pages are not inlined (a track may have thousands); the table is


def sections(reader: Reader, track: str | None) -> list[dict[str, Any]]:
    """Every view of the track, in reading order, each with its data and anchor."""
    chosen = views.pick_track(reader, track)
    out = [{"view": "overview", "anchor": "overview", "data": views.overview(reader, chosen)},
           {"view": "leaderboard", "anchor": "leaderboard", "data": views.leaderboard(reader, chosen)},
           {"view": "knobs", "anchor": "knobs", "data": views.knobs(reader, chosen)}]
    for claim in out[0]["data"]["claims"]:
        out.append({"view": "claim", "anchor": f"claims-{claim['claim']}",
                    "data": views.claim(reader, claim["claim"])})
    out.append({"view": "runs", "anchor": "runs", "data": views.runs(reader, chosen)})
    return out


def _inline_script(text: str) -> str:
    # A script's text may not contain "</script"; escaping the slash keeps the JavaScript the same.
    return "<script>" + text.replace("</script", "<\\/script") + "</script>"


def render(reader: Reader, track: str | None) -> str:
    """The report's HTML."""
    data = json.dumps({"sections": sections(reader, track)}, allow_nan=False)
    assets = "<style>" + (STATIC / "app.css").read_text() + "</style>"
    assets += "".join(_inline_script((STATIC / name).read_text()) for name in SCRIPTS)
    assets += _inline_script(f"window.SWARM_REPORT = {data};")
    return shell("overview", {}, "./", inline=assets)
