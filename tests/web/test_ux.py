"""What a newcomer sees: a phone-width screen, an empty home, a page that follows new records.

Real headless Chromium (tests/web/browser.py); assertions on the DOM and its text, never on speed.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from memory import synthetic
from memory.store import Store
from node.home import memory_path
from swarm.web.app import dashboard_app
from tests.web.browser import Browser
from tests.web.conftest import cli_json, served
from tests.web.test_pages import (CHROMIUM, _load, _serve, _values, artefacts, browser,  # noqa: F401
                                   site)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH")
WIDE = "document.documentElement.scrollWidth"
# the lines each table cell holding just a short peer id ("…" + 8 chars) takes on screen
PEER_LINES = ("Array.from(document.querySelectorAll('td')).filter(td => "
              "/^\u2026\\S{8}$/.test(td.textContent)).map(td => { const r = document.createRange(); "
              "r.selectNodeContents(td); return new Set(Array.from(r.getClientRects())"
              ".map(x => Math.round(x.bottom))).size; })")
# the same for each peer's name in the peers table (`node-2` broke after its "-" at 390 px)
NAME_LINES = ("Array.from(document.querySelectorAll('table[data-table=peers] td:nth-child(2)'))"
              ".map(td => { const r = document.createRange(); r.selectNodeContents(td); "
              "return new Set(Array.from(r.getClientRects()).map(x => Math.round(x.bottom))).size; })")
# the section under a heading: its text, and whether it holds a table
SECTION = ("(() => {{ const h = Array.from(document.querySelectorAll('h2')).find(h => "
           "h.textContent === {heading!r}); return [h.parentNode.textContent.slice("
           "h.textContent.length), !!h.parentNode.querySelector('table')]; }})()")


def _texts(role: str) -> str:
    return (f"Array.from(document.querySelectorAll('.chart')[0].querySelectorAll("
            f"'.role-axis-{role} text')).map(t => t.textContent)")


def test_a_phone_sees_what_was_found_without_sideways_scrolling(
        site: str, browser: Browser, artefacts: Path) -> None:
    """At 390 px every page fits the screen's width (wide tables scroll inside themselves, short
    peer ids each on one line), the overview says the verified best first, and the time axis
    reads as the tables do (24-hour)."""
    browser.viewport(390, 844)
    for page in ("", "leaderboard", "claims", "knobs", "runs", "trust"):
        _load(browser, site + page, artefacts / f"narrow-{page or 'overview'}.png")
        assert browser.evaluate(WIDE) <= 390, page
        if page in ("runs", "trust"):     # a short peer id never breaks after its "…"
            lines = browser.evaluate(PEER_LINES)
            assert lines and set(lines) == {1}, (page, lines)
        if page == "leaderboard":        # the fabricator's seeds, far off, are said, not hidden
            texts = browser.evaluate("Array.from(document.querySelectorAll('.chart svg text'))"
                                     ".map(t => t.textContent)")
            assert any(t.startswith("\u25c0 6 off scale (to 1.50") for t in texts), texts
    _load(browser, site, artefacts / "narrow-overview.png")
    names = browser.evaluate(NAME_LINES)           # each node's name on one line
    assert len(names) >= 2 and set(names) == {1}, names
    (fake,) = cli_json("findings")["untrusted_claims"]
    _load(browser, site + f"claims/{fake['claim']}", artefacts / "narrow-untrusted-claim.png")
    assert browser.evaluate("document.getElementById('status').className").endswith(" untrusted")
    browser.open(site)
    browser.wait_for("!!document.querySelector('main[data-drawn] .chart svg')")
    headline = browser.evaluate("document.getElementById('headline').textContent")
    assert headline.startswith("Verified best: init_scale=2.0") and "below the baseline" in headline
    titles = browser.evaluate(_texts("title"))
    assert "time (UTC)" in titles and any("bits per byte" in t for t in titles), titles
    times = [t for t in browser.evaluate(_texts("label")) if ":" in t]
    assert times and all(re.fullmatch(r"\d\d-\d\d \d\d:\d\d", t) for t in times), times


def test_an_empty_home_says_so(home: Path, browser: Browser, artefacts: Path) -> None:
    """A fresh node: the overview explains that nothing has arrived yet, and a table with no rows
    says "none yet" instead of standing as bare headers."""
    with Store(memory_path(home), helpers=0):
        pass
    for url in _serve(home):
        browser.open(url)
        browser.wait_for("!!document.querySelector('main[data-drawn]')")
        browser.screenshot(artefacts / "empty.png")
        assert browser.errors() == []
        assert browser.evaluate("document.getElementById('headline').textContent").startswith(
            "Nothing yet")
        assert browser.evaluate("document.querySelector('table[data-table=peers] tfoot')"
                                ".textContent") == "none yet"
        browser.open("about:blank")       # its event stream closed: the server stops at once
    # the same home as a report: a file never "updates by itself"
    from typer.testing import CliRunner

    from swarm.cli import app
    report = home / "report.html"
    assert CliRunner().invoke(app, ["report", "--out", str(report)]).exit_code == 0
    browser.open(report.as_uri())
    browser.wait_for("!!document.querySelector('main[data-drawn]')")
    assert browser.evaluate("document.getElementById('headline').textContent") == (
        "Nothing yet: the memory this report was made from had no runs.")


def test_one_run_a_short_id_and_a_missing_id_read_as_words(home: Path, browser: Browser) -> None:
    """The overview counted "1 runs; 1 nodes"; a run page for an id not in the memory (a link
    from another node's dashboard) said only "could not load: HTTP 404", and so did one for the
    8-character id every table shows (`swarm show` takes it)."""
    (one,) = synthetic.runs(synthetic.keypairs(1, seed=5), 1)
    with Store(memory_path(home), helpers=0) as store:
        store.add([one])
    for url in _serve(home):
        browser.open(url)
        browser.wait_for("!!document.querySelector('main[data-drawn]')")
        assert browser.evaluate("document.querySelector('.counts').textContent").startswith(
            "1 run; 0 nodes;")
        # nothing verified: a sentence, as other empty sections say, not a bare table
        text, table = browser.evaluate(SECTION.format(heading="Verified best, step by step"))
        assert (text, table) == ("nothing verified yet", False)
        browser.open(url + "runs/" + one.id[:8].upper())
        browser.wait_for("!!document.querySelector('main[data-drawn]')")
        assert browser.evaluate(_values("run", "val_bpb")) == [one.body.metrics.val_bpb]
        for page, what in (("runs/4cad0873", "run"), ("claims/" + "ab" * 32, "claim")):
            browser.open(url + page)
            browser.wait_for("document.getElementById('main').textContent.includes('could not')")
            text = browser.evaluate("document.getElementById('main').textContent")
            wanted = page.split("/")[1]
            assert text == f"could not load: no {what} with id {wanted} in this memory", text
        browser.open("about:blank")


def test_a_path_that_is_no_page_says_so_and_lists_the_pages(home: Path, browser: Browser) -> None:
    """A mistyped address showed Starlette's bare "Not Found"; now a page names the pages. Any
    text in the path stays text."""
    Store(memory_path(home), helpers=0).close()
    for url in _serve(home):
        browser.open(url + "leaderbord%3Cb%3Ex")
        browser.wait_for("!!document.querySelector('main[data-view=missing]')")
        text = browser.evaluate("document.getElementById('main').textContent")
        assert text.startswith("There is no page at /leaderbord<b>x here. The pages: Overview, "
                               "Leaderboard,"), text
        assert browser.evaluate("document.querySelectorAll('main a').length") == 6
        assert browser.evaluate("document.querySelectorAll('main b').length") == 0
        browser.open("about:blank")


def test_the_overview_follows_new_records(tmp_path: Path, browser: Browser) -> None:
    """Records added while the page is open show on it without a reload."""
    store = Store(tmp_path / "m.duckdb", helpers=0)
    records = synthetic.history()
    store.add(records[:30])
    with served(dashboard_app(store, tmp_path / "home")) as port:
        try:
            browser.open(f"http://127.0.0.1:{port}/")
            browser.wait_for("document.getElementById('live').textContent.includes('30 records')")
            before = browser.evaluate("document.querySelector('p.counts').textContent")
            store.add(records[30:])
            browser.wait_for(f"document.getElementById('live').textContent.includes("
                             f"'{len(records)} records')")
            browser.wait_for(f"document.querySelector('p.counts').textContent !== {before!r}")
            assert browser.evaluate("!!document.querySelector('#headline')")
            assert browser.errors() == []
        finally:
            browser.open("about:blank")             # its event stream ends before the server
    store.close()


def test_counts_of_one_are_singular_on_the_overview(tmp_path: Path, browser: Browser) -> None:
    """The live label said "live: 1 records", the track picker "(1 runs)"."""
    store = Store(tmp_path / "m.duckdb", helpers=0)
    key, other = synthetic.keypairs(2)
    store.add(synthetic.runs([key], 1, track="track-a"))
    with served(dashboard_app(store, tmp_path / "home")) as port:
        try:
            browser.open(f"http://127.0.0.1:{port}/")
            browser.wait_for("document.getElementById('live').textContent === 'live: 1 record'")
            store.add(synthetic.runs([other], 1, track="track-b"))     # a second track: a picker
            browser.wait_for("document.getElementById('live').textContent === 'live: 2 records'")
            browser.wait_for("document.querySelectorAll('#track option').length === 2")
            options = browser.evaluate("Array.from(document.querySelectorAll('#track option'))"
                                       ".map(o => o.textContent)")
            assert all(o.endswith(" (1 run)") for o in options), options
            assert browser.errors() == []
        finally:
            browser.open("about:blank")             # its event stream ends before the server
    store.close()


QUALITY = ("Array.from(document.querySelectorAll('table[data-table=run] td[data-key=quality]'))"
           ".map(td => [td.previousElementSibling.textContent, Number(td.dataset.value)])")
SAMPLES = "Array.from(document.querySelectorAll('pre.sample')).map(p => p.textContent)"


JUDGED = ("Array.from(document.querySelectorAll('table[data-table=judgements] tbody tr'))"
          ".map(r => Array.from(r.cells).map(c => c.textContent))")


def test_a_run_page_shows_its_samples_their_quality_beside_val_bpb_and_judgements(
        home: Path, browser: Browser) -> None:
    """The run page showed the samples but none of the quality measures stored beside val_bpb
    (the issue: quality beside val_bpb, samples on the dashboard), nor what judges said of them.
    A stranger's measure name and judgement are text; a measure the harness left out (nothing to
    measure) is simply absent; a judge not trusted here says so."""
    from memory import codec, records as R
    from roles import trust
    key, friend, stranger = synthetic.keypairs(3, seed=7)
    body = synthetic.run_body("t", {"lr": 0.003}, seed=1, val_bpb=1.25, extras=True)
    quality = {"distinct_1": 0.25, "ends_sentence": 0.0, "<b>odd</b>": 0.5}
    one = codec.sign(key, "run", 1, R.RunBody.model_validate(
        body.model_dump() | {"quality": quality}))
    bare = codec.sign(key, "run", 2, synthetic.run_body("t", {"lr": 0.003}, 2, 1.26))
    judged = [codec.sign(k, "judgement", 1, R.JudgementBody(
        run=one.id, judge="claude-test", rubric="stories-v2", scores=scores, reason=reason),
        ts=1_700_000_000_000 + i) for i, (k, scores, reason) in enumerate([
            (friend, {"coherence": 6.0, "grammar": 7.0}, "simple"),
            (stranger, {"<i>x</i>": 10.0}, "<b>perfect</b>")])]
    with Store(memory_path(home), helpers=0) as store:
        store.add([one, bare, *judged])
    trust.pin(home, friend.peer_id, note="test")
    for url in _serve(home):
        browser.open(url + "runs/" + one.id)
        browser.wait_for("!!document.querySelector('main[data-drawn]')")
        assert browser.errors() == []
        assert browser.evaluate(_values("run", "val_bpb")) == [1.25]
        assert browser.evaluate(QUALITY) == [[f"quality: {k}", v] for k, v in sorted(quality.items())]
        assert not browser.evaluate("!!document.querySelector('main b')")    # the name is text
        shown = cli_json("show", one.id, "--home", str(home))["body"]["samples"]
        assert browser.evaluate(SAMPLES) == [s["prompt"] + "▸" + s["text"] for s in shown]
        assert shown and "there was a little dog named max." in browser.evaluate(SAMPLES)[0]
        rows = browser.evaluate(JUDGED)
        assert [r[1:] for r in rows] == [
            ["trusted", "coherence 6, grammar 7", "claude-test", "stories-v2", "simple"],
            ["untrusted", "<i>x</i> 10", "claude-test", "stories-v2", "<b>perfect</b>"]]
        assert rows[0][0].endswith(friend.peer_id[-8:]) and not browser.evaluate(
            "!!document.querySelector('main i')")
        browser.open(url + "runs/" + bare.id)                      # a run without them
        browser.wait_for("!!document.querySelector('main[data-drawn]')")
        assert browser.evaluate(QUALITY) == [] and browser.evaluate(SAMPLES) == []
        assert browser.evaluate(JUDGED) == []
        browser.open("about:blank")
