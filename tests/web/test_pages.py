"""The dashboard's pages and `swarm report` in a real headless Chromium (Debian's package).

Each page loads with no console error, requests nothing outside 127.0.0.1, draws its charts (SVG
marks counted) and shows the same numbers as the CLI's --json. Screenshots are kept in
$SWARM_TEST_ARTEFACTS (default: the test's tmp dir), never in the repository.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memory import codec, records as R, synthetic
from memory.store import ReadOnlyMemory, Store
from node.home import memory_path
from swarm.web.serve import local_app
from tests.web.browser import Browser, find_chromium
from tests.web.conftest import cli_json, history, served

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get "
                                "install chromium; `make` installs it where it can)")
DRAWN = ("!!document.querySelector('main[data-drawn]') && Array.from("
         "document.querySelectorAll('.chart')).every(c => c.querySelector('svg .role-mark'))")
MARKS = "Array.from(document.querySelectorAll('.chart')).map(c => c.querySelectorAll('svg .role-mark > *').length)"


def _values(table: str, key: str) -> str:
    return (f"Array.from(document.querySelectorAll('table[data-table={table}] td[data-key={key}]'))"
            ".map(td => Number(td.dataset.value))")


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    path = Path(os.environ.get("SWARM_TEST_ARTEFACTS", tmp_path / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def site(history_home: Path) -> Iterator[str]:
    """The dashboard of `history_home` served by uvicorn on 127.0.0.1 (as `swarm dashboard`)."""
    yield from _serve(history_home)


def _serve(home: Path) -> Iterator[str]:
    memory = ReadOnlyMemory(memory_path(home))
    try:
        with served(local_app(memory, home)) as port:
            yield f"http://127.0.0.1:{port}/"
    finally:
        memory.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    b = Browser(CHROMIUM)
    yield b
    b.close()


def _load(browser: Browser, url: str, shot: Path) -> list[int]:
    """Open `url`, wait for it to be drawn, check errors and requests; its marks per chart."""
    browser.open(url)
    browser.wait_for(DRAWN)
    marks = browser.evaluate(MARKS)
    browser.screenshot(shot)
    assert browser.errors() == []
    origin = url.split("/")[0] + "//" + url.split("/")[2] + "/"
    assert [u for u in browser.requested_urls() if not u.startswith((origin, "data:"))] == []
    return marks


def test_every_page_draws_with_the_clis_numbers(site: str, browser: Browser, artefacts: Path) -> None:
    board = cli_json("leaderboard")
    found = cli_json("findings")
    claims = found["claims"]
    runs = cli_json("runs", "--limit", "500")
    authors = cli_json("trust")
    marks = _load(browser, site, artefacts / "overview.png")
    assert len(marks) == 3 and all(n > 0 for n in marks)
    assert marks[0] >= len(runs)                         # every run is a mark on the best chart
    marks = _load(browser, site + "leaderboard", artefacts / "leaderboard.png")
    assert marks and marks[0] > 0
    assert browser.evaluate(_values("leaderboard", "mean")) == pytest.approx([r["mean"] for r in board])
    assert browser.evaluate(_values("leaderboard", "n")) == [r["n"] for r in board]
    assert browser.evaluate("Array.from(document.querySelectorAll('table[data-table=leaderboard] "
                            "tbody tr')).map(r => r.cells[7].textContent)") == [
        "untrusted" if not r["trusted"] else "verified" if r["verified"] else "" for r in board]
    _load(browser, site + "claims", artefacts / "claims.png")
    for table in ("claims", "untrusted_claims"):
        assert browser.evaluate(_values(table, "p_value")) == pytest.approx(
            [c["p_value"] for c in found[table]])
    _load(browser, site + "trust", artefacts / "trust.png")
    assert browser.evaluate(_values("trust", "runs")) == [a["runs"] for a in authors]
    assert browser.evaluate(_values("trust", "influence")) == pytest.approx(
        [a["influence"] for a in authors])
    assert "Influence: the author's share of the sane finished runs" in browser.evaluate(
        "document.getElementById('main').textContent")       # the column is explained
    assert _load(browser, site + "knobs", artefacts / "knobs.png")[0] > 0
    _load(browser, site + "runs", artefacts / "runs.png")
    assert browser.evaluate(_values("runs", "val_bpb")) == pytest.approx([r["val_bpb"] for r in runs])
    claim = next(c for c in claims if c["status"] == "verified")
    assert _load(browser, site + f"claims/{claim['claim']}", artefacts / "claim.png")
    assert browser.evaluate(_values("claim", "effect")) == pytest.approx([claim["effect"]])
    assert browser.evaluate(_values("claim", "p_value")) == pytest.approx([claim["p_value"]])
    _load(browser, site + f"runs/{runs[0]['id']}", artefacts / "run.png")
    assert browser.evaluate(_values("run", "val_bpb")) == pytest.approx([runs[0]["val_bpb"]])


AXIS_LABELS = ("Array.from(document.querySelectorAll('.chart')[0].querySelectorAll("
               "'.role-axis-label text')).map(t => t.textContent)")


def test_a_strangers_names_and_stamps_do_not_spoof_the_overview(
        history_home: Path, browser: Browser, artefacts: Path) -> None:
    """A node named with a bidi override and zero-width characters: on the page, each is U+FFFD
    (a name that reads otherwise than it shows, or like another's, is seen for what it is). Nodes
    named as a trusted node ("node-0") or like one by a homoglyph (a Greek omicron in "nοde-1")
    never print as its name does: each of the pair carries its key's tail, and the strangers
    read untrusted. A run stamped in 1970 at val_bpb 7.9 (sane, untrusted): the chart's axes
    still span what counts."""
    stranger, twin, homoglyph = synthetic.keypairs(3, seed=4242)
    name = "alice\u200b\u202egpj.exe\u2066"
    run = synthetic.run_body(synthetic.HISTORY_TRACK, synthetic.HISTORY_BASE, 1, 7.9)

    def node(key: Any, called: str, seq: int) -> R.Record:
        return codec.sign(key, "node", seq, R.NodeBody(name=called, hardware=run.hardware,
                                                        software={}, addrs=[], capabilities=[]))
    with Store(memory_path(history_home), helpers=0) as store:
        assert store.add([node(stranger, name, 1), codec.sign(stranger, "run", 2, run, ts=1),
                          node(twin, "node-0", 1), node(homoglyph, "n\u03bfde-1", 1)]
                         ).accepted == 4
    for url in _serve(history_home):
        _load(browser, url, artefacts / "spoof.png")
    labels = browser.evaluate(AXIS_LABELS)
    years = [int(x) for x in labels if x.isdigit() and len(x) == 4]     # ticks of a long axis
    bpbs = [float(x) for x in labels if "." in x and x.replace(".", "").isdigit()]
    assert not [y for y in years if y < 2000] and bpbs and max(bpbs) < 2
    rows = browser.evaluate("Array.from(document.querySelectorAll('table[data-table=peers] "
                            "tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))")
    by_name = {r[1]: r for r in rows}
    assert f"alice\ufffd\ufffdgpj.exe\ufffd:\u2026{stranger.peer_id[-8:]}" in by_name
    assert name not in by_name and "node-0" not in by_name and "n\u03bfde-1" not in by_name
    honest = {r.body.name: r.author for r in history() if r.kind == "node"}
    for key, called in ((twin, "node-0"), (homoglyph, "n\u03bfde-1")):
        assert by_name[f"{called}:\u2026{key.peer_id[-8:]}"][2] == "untrusted"
    assert by_name[f"node-0:\u2026{honest['node-0'][-8:]}"][2] == "root"     # both tagged
    # a name that is not plain ASCII always carries its tail, so the original may stay bare
    assert by_name["node-1"][2] == by_name["node-2"][2] == "root"


def test_the_report_renders_offline(history_home: Path, tmp_path: Path, artefacts: Path) -> None:
    from typer.testing import CliRunner

    from swarm.cli import app
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert CHROMIUM is not None
    offline = Browser(CHROMIUM, offline=True)
    try:
        offline.open(out.as_uri())
        offline.wait_for(DRAWN)
        marks = offline.evaluate(MARKS)
        offline.screenshot(artefacts / "report.png")
        assert offline.errors() == [] and all(n > 0 for n in marks)
        assert [u for u in offline.requested_urls() if not u.startswith(("file://", "data:"))] == []
        board = cli_json("leaderboard")
        shown = offline.evaluate(_values("leaderboard", "mean"))
        assert shown == pytest.approx([r["mean"] for r in board])
        sections = offline.evaluate("document.querySelectorAll('.report-part').length")
        found = cli_json("findings")
        # overview, leaderboard, claims, knobs, one per claim (trusted or not), runs, trust
        assert sections == 4 + len(found["claims"]) + len(found["untrusted_claims"]) + 2
        assert offline.evaluate(_values("trust", "runs")) == [a["runs"] for a in cli_json("trust")]
        anchors = offline.evaluate("Array.from(document.querySelectorAll('a')).map(a => "
                                   "a.getAttribute('href')).filter(h => !h.startsWith('#'))")
        assert anchors == []                        # every link stays inside the file
    finally:
        offline.close()


FINDING_PARTS = ("['.finding-title', '.finding-about', '.finding-text'].map(s => "
                 "document.querySelector(s) && document.querySelector(s).textContent)")


def test_the_knobs_finding_reads_as_a_heading(site: str, browser: Browser, history_home: Path,
                                              tmp_path: Path, artefacts: Path) -> None:
    """The knobs page (and the report's) printed a finding's title, time, author, standing and
    text as one paragraph, `title (time, by …X, untrusted here): text`: now the title is a
    heading, who and when a line of their own, the text a paragraph after them."""
    from typer.testing import CliRunner

    from swarm.cli import app
    (finding,) = cli_json("findings")["findings"]
    about = f"finding {finding['id'][:8]}, "
    _load(browser, site + "knobs", artefacts / "knobs-finding.png")
    title, by, text = browser.evaluate(FINDING_PARTS)
    assert title == f"Finding: {finding['title']}" and text == finding["text"]
    assert by.startswith(about) and by.endswith(" here)") and finding["author"][-8:] in by
    out = tmp_path / "report.html"
    CliRunner().invoke(app, ["report", "--out", str(out)], catch_exceptions=False)
    browser.open(out.as_uri())
    browser.wait_for(DRAWN)
    assert browser.evaluate(FINDING_PARTS) == [title, by, text]


MARKS_ROOM = ("(() => { const c = document.querySelectorAll('.chart')[0];"
              " const axes = Array.from(c.querySelectorAll('.role-axis-domain line, "
              ".role-axis-domain path')).map(e => e.getBoundingClientRect());"
              " const x = axes.reduce((a, r) => r.width > a.width ? r : a);"
              " const marks = Array.from(c.querySelectorAll('.role-mark path'))"
              ".map(e => e.getBoundingClientRect());"
              " return [x.left, x.right, marks.length, Math.min(...marks.map(r => r.left)),"
              " Math.max(...marks.map(r => r.right))]; })()")


def test_the_best_chart_shows_its_first_and_newest_runs_whole(site: str, browser: Browser,
                                                              artefacts: Path) -> None:
    """The overview's time axis ended at the newest run, whose mark sat on the plot's edge, cut
    in half (and began at the first counted run, cut likewise)."""
    _load(browser, site, artefacts / "overview-edges.png")
    left, right, marks, first, last = browser.evaluate(MARKS_ROOM)
    assert marks > 0 and right - left > 100
    assert left <= first and last <= right, (left, first, last, right)


ALIGN = ("['effect', 'measured_effect', 'effect_in_sd', 'p_value'].map(k => { const td = "
         "document.querySelector('table[data-table=claim] td[data-key=' + k + ']'); "
         "return td && [getComputedStyle(td).textAlign, Number(td.dataset.value)]; })")


def test_a_claims_numbers_line_up(site: str, browser: Browser, artefacts: Path) -> None:
    """A claim page's `effect in noise sds` sat on the left of the value column, the effects
    and p above and below it on the right."""
    claim = next(c for c in cli_json("findings")["claims"] if c["status"] == "verified")
    _load(browser, site + f"claims/{claim['claim']}", artefacts / "claim-numbers.png")
    cells = browser.evaluate(ALIGN)
    assert all(cells) and len({align for align, _ in cells}) == 1, cells
    assert cells[0][1] == pytest.approx(claim["effect"])
