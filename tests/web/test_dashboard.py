"""Every JSON view of the dashboard through Starlette's TestClient, against a real memory."""
from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from memory import codec, synthetic
from memory.store import ReadOnlyMemory, Store
from node.home import memory_path
from roles import trust, verdicts
from swarm.conclusions import Conclusions
from swarm.web import views
from swarm.web.app import dashboard_app, warm_up
from tests.web.conftest import FAKE_DIFF, cli_json, served


@pytest.fixture
def client(history_home: Path):
    memory = ReadOnlyMemory(memory_path(history_home))
    app = dashboard_app(memory, history_home)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client
    memory.close()


def _fake(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["diff"] == FAKE_DIFF]


def test_overview_shows_the_verified_best_derived_here(client: TestClient,
                                                       history_home: Path) -> None:
    data = client.get("/json/overview").json()
    board = cli_json("leaderboard")
    assert data["track"] == synthetic.HISTORY_TRACK
    assert [step["what"] for step in data["best"]] == ["baseline", "init_scale=2.0"]
    verified = next(r for r in board if r["verified"])
    # The step sits at the claim's evidence (its counted runs and the verifiers' fresh seeds),
    # as the nodes' best() ranks it; the leaderboard's mean also has the config's later runs.
    claim = next(c for c in cli_json("findings")["claims"] if c["status"] == "verified")
    memory = ReadOnlyMemory(memory_path(history_home))
    try:
        evidence = memory.query(
            "SELECT avg(val_bpb) FROM runs WHERE id IN (SELECT unnest(?::VARCHAR[])) OR "
            "(purpose = 'verify' AND ref = ? AND author <> ? AND status = 'ok')",
            [claim["counted"], claim["claim"], claim["author"]]).rows[0][0]
    finally:
        memory.close()
    assert data["best"][1]["val_bpb"] == pytest.approx(evidence)
    assert data["best"][1]["val_bpb"] == pytest.approx(verified["mean"], abs=verified["std"])
    assert data["best"][0]["val_bpb"] == pytest.approx(data["baseline"]["mean"])
    # The fabricated claim (far lower val_bpb) is counted apart and never becomes the best.
    assert data["counts"]["claims"] == {"verified": 1, "not_supported": 1}
    assert data["counts"]["untrusted_claims"] == {"supported": 1}
    assert min(step["val_bpb"] for step in data["best"]) > 1.6
    assert {m["purpose"] for m in data["marks"]} >= {"baseline", "screen", "confirm", "verify"}
    assert [m["val_bpb"] for m in data["marks"] if not m["counts"]] == pytest.approx(
        [1.505, 1.504, 1.503, 1.502, 1.501, 1.5])
    assert len(data["peers"]) == 3 and sum(r["runs"] for r in data["runs_per_hour"]) == len(
        data["marks"])
    assert {r["role"] for r in data["role_mix"]} >= {"experimenter", "verifier"}
    assert client.get("/json/overview", params={"track": "tinystories-cpu"}).json() == data


def test_leaderboard_rows_are_the_clis(client: TestClient) -> None:
    data = client.get("/json/leaderboard").json()
    assert data["rows"] == cli_json("leaderboard")
    assert data["rows"][0]["diff"] == {"init_scale": 2.0} and data["rows"][0]["verified"]
    (fake,) = _fake(data["rows"])
    assert fake["rank"] is None and not fake["trusted"] and data["rows"][-1] == fake
    per_config: dict[str, list[bool]] = {}
    for seed in data["seeds"]:
        per_config.setdefault(seed["config_hash"], []).append(seed["counts"])
    # Every seed that counts for a ranked row, and the untrusted row's seeds, marked as such.
    assert {h: v.count(True) or v.count(False) for h, v in per_config.items()} == {
        r["config_hash"]: r["n"] for r in data["rows"]}
    assert per_config[fake["config_hash"]] == [False] * 6
    assert data["baseline"]["n"] == 16


def test_claims_are_the_findings_claims_trusted_and_untrusted_apart(client: TestClient) -> None:
    cli = cli_json("findings")
    data = client.get("/json/claims").json()
    assert data["claims"] == cli["claims"] and data["untrusted_claims"] == cli["untrusted_claims"]
    assert _fake(data["untrusted_claims"]) and not _fake(data["claims"])
    assert sorted(c["status"] for c in data["claims"]) == ["not_supported", "verified"]


def test_claim_page_explains_which_evidence_counted(client: TestClient) -> None:
    cli = cli_json("findings")
    for claim in cli["claims"] + cli["untrusted_claims"]:
        data = client.get(f"/json/claims/{claim['claim']}").json()
        assert data["claim"] == claim
        shown = cli_json("show", claim["claim"])["here"]
        assert {k: data["claim"][k] for k in shown} == shown
        sides = {(e["side"], e["counts"]) for e in data["evidence"]}
        assert {("baseline", True), ("candidate", True)} <= sides
        # Screening runs are cited but set aside, with the reason.
        screens = [e for e in data["evidence"] if e["side"] == "candidate" and not e["counts"]]
        assert all("screening" in e["why_not"] for e in screens)
        assert len(screens) == len(claim["excluded"])
        assert data["why"] and data["baseline"]["n"] == 16
        if claim["status"] == "verified":
            assert data["verifications"][0]["author_status"] == "root"
            assert [e["counts"] for e in data["evidence"] if e["side"] == "verify"] == [True, True]
            assert data["effect_in_sd"] < -1
    fake = _fake(cli["untrusted_claims"])[0]
    data = client.get(f"/json/claims/{fake['claim']}").json()
    assert data["why"].startswith("provisional") and not data["claim"]["trusted"]
    assert client.get("/json/claims/" + "0" * 64).status_code == 404


def test_trust_view_is_the_clis(client: TestClient, history_home: Path) -> None:
    data = client.get("/json/trust").json()
    assert data["authors"] == cli_json("trust")
    statuses = sorted(a["status"] for a in data["authors"])
    assert statuses == ["root", "root", "root", "untrusted"]
    assert data["own"] is None                          # this home has no key of its own yet


def test_roots_are_read_per_request(client: TestClient, history_home: Path) -> None:
    """Unpinning the history's authors (`swarm trust remove`) changes the next answer."""
    for author in [a["author"] for a in cli_json("trust") if a["status"] == "root"]:
        assert trust.unpin(history_home, author)
    data = client.get("/json/overview").json()
    assert data["counts"]["claims"] == {} and data["best"] == []
    assert all(not r["trusted"] for r in client.get("/json/leaderboard").json()["rows"])
    assert client.get("/json/claims").json() == {
        "track": synthetic.HISTORY_TRACK, "untrusted_claims_omitted": 0,
        **{k: v for k, v in cli_json("findings").items() if k != "findings"}}


def test_one_request_computes_the_verdicts_once(client: TestClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = verdicts.get
    monkeypatch.setattr(verdicts, "get", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    claim_id = cli_json("findings")["claims"][0]["claim"]
    calls.clear()
    for path in ["/json/overview", "/json/leaderboard", f"/json/claims/{claim_id}", "/json/claims"]:
        client.get(path)
        assert calls == [synthetic.HISTORY_TRACK], path
        calls.clear()


def test_the_warm_up_computes_what_the_first_page_needs(history_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`swarm dashboard` (on a home without a daemon) warms the verdicts as it starts: the first
    requests then compute nothing, and answer what they would have answered alone."""
    memory = ReadOnlyMemory(memory_path(history_home))
    try:
        verdicts.forget()
        app = TestClient(dashboard_app(memory, history_home), base_url="http://127.0.0.1")
        alone = [app.get(p).json() for p in ("/json/leaderboard", "/json/overview")]
        verdicts.forget()
        warm_up(memory, history_home).join(timeout=120)
        made = []
        real = verdicts.Verdicts.__init__
        monkeypatch.setattr(verdicts.Verdicts, "__init__",
                            lambda self, *a, **k: made.append(a[1]) or real(self, *a, **k))
        assert [app.get(p).json() for p in ("/json/leaderboard", "/json/overview")] == alone
        assert made == []
        # ...and every author's runs grouped by config: a change of trust will not group them.
        held = Conclusions(memory, history_home).track(views.pick_track(memory, None))
        assert held.agg._grouped_runs.sums is not None
    finally:
        memory.close()


def test_a_warm_up_ended_by_the_memory_closing_logs_no_warning(
        history_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A node stopped while its dashboard warmed up logged "dashboard warm-up failed" with a
    traceback: the memory closed under it ("the memory is closed"), which is no failure."""
    memory = ReadOnlyMemory(memory_path(history_home))
    memory.close()
    verdicts.forget()
    warm_up(memory, history_home).join(timeout=120)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_knobs_runs_and_a_run_without_a_curve(client: TestClient) -> None:
    knobs = client.get("/json/knobs").json()
    assert {e["knob"] for e in knobs["effects"]} == {"init_scale", "n_layer", "lr", "activation", "n_embd"}
    assert all(e["lo"] < e["effect"] < e["hi"] for e in knobs["effects"])
    assert knobs["never_tried"] == [] and knobs["finding"]["author_status"] == "root"
    runs = client.get("/json/runs", params={"purpose": "verify"}).json()["runs"]
    assert len(runs) == 2 and all(r["diff"] == {"init_scale": 2.0} for r in runs)
    cli_runs = cli_json("runs", "--limit", "500")
    every = client.get("/json/runs").json()["runs"]
    assert {r["id"] for r in every} == {r["id"] for r in cli_runs}
    assert {r["author_status"] for r in every if r["diff"] == FAKE_DIFF} == {"untrusted"}
    run = client.get(f"/json/runs/{runs[0]['id']}").json()
    assert run["body"]["purpose"] == "verify" and not run["curve"]   # no curve points
    assert run["here"] == cli_json("show", runs[0]["id"])["here"] and run["here"]["counts"]
    assert client.get("/json/runs/" + "0" * 64).status_code == 404


def test_pages_are_shells_that_load_only_local_assets(client: TestClient) -> None:
    for path in ["/", "/leaderboard", "/claims", "/knobs", "/runs", "/trust", "/runs/abc",
                 "/claims/abc"]:
        page = client.get(path)
        assert page.status_code == 200 and "swarmDashboard.start()" in page.text
        assert "http" not in page.text.replace("http://127.0.0.1", "")
        assert '<a href="/trust">Trust</a>' in page.text
    for asset in ["app.js", "app.css", "vendor/vega.min.js", "vendor/LICENSE.vega-lite"]:
        assert client.get(f"/static/{asset}").status_code == 200


def test_live_events_announce_new_records(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.duckdb", helpers=0)
    store.add(synthetic.history()[:5])
    counts = []
    with served(dashboard_app(store, tmp_path / "home")) as port, \
            httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=60) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                counts.append(int(line.split('"records": ')[1].rstrip("}")))
                if len(counts) == 1:
                    store.add(synthetic.history()[5:8])
                else:
                    break
    assert counts == [5, 8]
    store.close()


def test_a_flood_of_strangers_runs_cannot_push_the_counted_ones_off_the_chart(
        history_home: Path) -> None:
    """The overview draws the newest runs: a key publishing more runs than it draws, all newer
    than any real one, used to leave it no run that counts here (only the stranger's)."""
    memory = ReadOnlyMemory(memory_path(history_home))
    try:
        before = dashboard_app(memory, history_home)
        with TestClient(before, base_url="http://127.0.0.1") as c:
            counted = [m for m in c.get("/json/overview").json()["marks"] if m["counts"]]
        newest = memory.query("SELECT max(ts) FROM records").rows[0][0]
    finally:
        memory.close()
    (flooder,) = synthetic.keypairs(1, seed=4242)
    config = {**synthetic.HISTORY_BASE, "n_head": 2}
    flood = [codec.sign(flooder, "run", i + 1, synthetic.run_body(
        synthetic.HISTORY_TRACK, config, seed=i, val_bpb=1.9, purpose="screen"),
        ts=newest + 10 * (i + 1)) for i in range(views.MAX_MARKS + 10)]
    with Store(memory_path(history_home), helpers=0) as store:
        assert store.add(flood).accepted == len(flood)
    memory = ReadOnlyMemory(memory_path(history_home))
    try:
        with TestClient(dashboard_app(memory, history_home), base_url="http://127.0.0.1") as c:
            marks = c.get("/json/overview").json()["marks"]
    finally:
        memory.close()
    assert counted and [m for m in marks if m["counts"]] == counted
    strangers = [m for m in marks if not m["counts"]]
    assert 0 < len(strangers) <= views.MAX_MARKS // 4
    assert [m["ts"] for m in marks] == sorted((m["ts"] for m in marks), reverse=True)
