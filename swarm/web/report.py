"""`swarm report`: the dashboard's views of one track as one self-contained HTML file.

Scripts, styles and data are inlined: the file opens with the network off, by mail or attached
to an issue. Links between views become anchors inside the file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from memory.store import Reader
from swarm.conclusions import Conclusions
from swarm.web import views
from swarm.web.app import SCRIPTS, STATIC, script_json, shell

MAX_RUN_PAGES = 0        # run pages are not inlined (a track may have thousands); the table is


def sections(reader: Reader, home: Path | None, track: str | None) -> list[dict[str, Any]]:
    """Every view of the track as `home`'s node concludes it, in reading order, each with its
    data and anchor (one `Conclusions`: the verdicts are computed once for all of them)."""
    c = Conclusions(reader, home)
    chosen = views.pick_track(reader, track, trusted=views.trusted_authors(c))
    out = [{"view": "overview", "anchor": "overview", "data": views.overview(c, chosen)},
           {"view": "leaderboard", "anchor": "leaderboard", "data": views.leaderboard(c, chosen)},
           {"view": "claims", "anchor": "claims", "data": views.claims(c, chosen)},
           {"view": "knobs", "anchor": "knobs", "data": views.knobs(c, chosen)}]
    for claim in out[0]["data"]["claims"]:
        out.append({"view": "claim", "anchor": f"claims-{claim['claim']}",
                    "data": views.claim(c, claim["claim"])})
    out.append({"view": "runs", "anchor": "runs", "data": views.runs(c, chosen)})
    out.append({"view": "trust", "anchor": "trust", "data": views.trust(c)})
    return out


def _inline_script(text: str) -> str:
    # A script's text may not contain "</script" in any case; escaping the slash keeps the
    # JavaScript the same.
    return "<script>" + re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE) + "</script>"


def render(reader: Reader, home: Path | None, track: str | None) -> str:
    """The report's HTML."""
    # The data holds any author's text: escaped for a script element (swarm.web.app.script_json).
    data = script_json({"sections": sections(reader, home, track)})
    assets = "<style>" + (STATIC / "app.css").read_text() + "</style>"
    assets += "".join(_inline_script((STATIC / name).read_text()) for name in SCRIPTS)
    assets += _inline_script(f"window.SWARM_REPORT = {data};")
    return shell("overview", {}, "./", inline=assets)
