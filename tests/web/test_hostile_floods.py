"""A flood of strangers' records keeps every dashboard view bounded, the trusted rows whole.

Keys are free: 5,000 strangers' claims made the overview (every node's home page) take 5 s to
draw, and 5,000 fresh seeds and 5,000 assessments of one claim made its page 4.7 MB and 18 s.
Each list now shows every trusted author's rows and the newest MAX_STRANGERS of the others,
saying how many it left out.
"""
from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from memory import canonical, codec, records as R, synthetic
from memory.store import ReadOnlyMemory, Store
from node.home import memory_path
from swarm.conclusions import MAX_STRANGERS
from swarm.web.app import dashboard_app

EXTRA = 30               # strangers' rows past the bound, of each kind


def _flood(home: Path, claim: str, diff: dict) -> None:
    """MAX_STRANGERS + EXTRA strangers' claims, fresh seeds of `claim` (its own config: untrusted
    seeds of a leaderboard row too) and assessments of it, one key each."""
    n = MAX_STRANGERS + EXTRA
    keys = synthetic.keypairs(n, seed=8080)
    config = {**synthetic.HISTORY_BASE, **diff}
    base = canonical.config_hash(synthetic.HISTORY_BASE)
    records = []
    for i, key in enumerate(keys):
        mine = {"init_scale": 3.0 + i}
        records.append(codec.sign(key, "claim", 1, R.ClaimBody(
            track=synthetic.HISTORY_TRACK, baseline_hash=base,
            candidate_hash=canonical.config_hash({**synthetic.HISTORY_BASE, **mine}), diff=mine,
            baseline_runs=[], candidate_runs=[], effect=-0.5, summary="mine is better")))
        records.append(codec.sign(key, "run", 2, synthetic.run_body(
            synthetic.HISTORY_TRACK, config, seed=10_000 + i, val_bpb=1.9, purpose="verify",
            ref=claim)))
        records.append(codec.sign(key, "assessment", 3, R.AssessmentBody(
            claim=claim, verdict="not_supported", test="welch", p_value=0.5, q_value=0.5,
            effect=0.0, noise_floor=0.01, n=2, reason="within noise")))
    with Store(memory_path(home), helpers=0) as store:
        assert store.add(records).accepted == len(records)


def test_a_flood_of_strangers_testimony_leaves_every_view_bounded(history_home: Path) -> None:
    memory = ReadOnlyMemory(memory_path(history_home))
    try:
        with TestClient(dashboard_app(memory, history_home), base_url="http://127.0.0.1") as c:
            verified = next(x["claim"] for x in c.get("/json/claims").json()["claims"]
                            if x["status"] == "verified")
            before = [c.get(p).json() for p in ("/json/overview", f"/json/claims/{verified}")]
    finally:
        memory.close()
    _flood(history_home, verified, before[1]["claim"]["diff"])
    memory = ReadOnlyMemory(memory_path(history_home))
    try:
        with TestClient(dashboard_app(memory, history_home), base_url="http://127.0.0.1") as c:
            overview, claims, board, page = [c.get(p).json() for p in (
                "/json/overview", "/json/claims", "/json/leaderboard",
                f"/json/claims/{verified}")]
    finally:
        memory.close()
    trusted = [x for x in before[0]["claims"] if x["trusted"]]
    assert [x for x in overview["claims"] if x["trusted"]] == trusted       # all still there
    assert len(overview["claims"]) <= len(before[0]["claims"]) + MAX_STRANGERS
    assert overview["untrusted_claims_omitted"] >= EXTRA
    # runs per hour: one bar per trusted node, every stranger's runs in one (author None)
    hours = overview["runs_per_hour"]
    assert {h["author"] for h in hours} == {h["author"] for h in before[0]["runs_per_hour"]} | {None}
    assert sum(h["runs"] for h in hours) == sum(h["runs"] for h in before[0]["runs_per_hour"]) + (
        MAX_STRANGERS + EXTRA)
    assert sum(overview["counts"]["untrusted_claims"].values()) >= MAX_STRANGERS + EXTRA
    assert len(claims["untrusted_claims"]) == MAX_STRANGERS
    assert claims["untrusted_claims_omitted"] == len(before[0]["claims"]) - len(trusted) + EXTRA
    strangers = [s for s in board["seeds"] if not s["counts"]]
    assert len(strangers) <= MAX_STRANGERS * len(board["rows"])
    assert board["untrusted_seeds_omitted"] >= EXTRA
    fresh = [e for e in page["evidence"] if e["side"] == "verify"]
    trusted_fresh = [e for e in before[1]["evidence"] if e["side"] == "verify"]
    assert trusted_fresh and fresh[:len(trusted_fresh)] == trusted_fresh    # all still there
    assert len(fresh) == len(trusted_fresh) + MAX_STRANGERS
    assert page["omitted"] == {"verify_runs": EXTRA, "assessments": EXTRA, "verifications": 0}
    assert before[1]["assessments"] == [a for a in page["assessments"]
                                        if a["author_status"] in ("root", "trusted")]
    assert len(page["assessments"]) == len(before[1]["assessments"]) + MAX_STRANGERS


def test_a_strangers_busier_track_is_not_the_home_page(history_home: Path) -> None:
    """The dashboard (and `swarm report`) open on the busiest track: a stranger's made-up track
    with more runs than the real one became every node's home page, no baseline, no claim."""
    from swarm.reader import open_reader
    from swarm.web.report import sections

    (stranger,) = synthetic.keypairs(1, seed=8181)
    with Store(memory_path(history_home), helpers=0) as store:
        real = store.query("SELECT count(*) FROM runs").rows[0][0]
        flood = [codec.sign(stranger, "run", i + 1, synthetic.run_body(
            "tinystories-cpu2", synthetic.HISTORY_BASE, seed=i, val_bpb=1.9))
            for i in range(real + 10)]
        assert store.add(flood).accepted == len(flood)
    memory = ReadOnlyMemory(memory_path(history_home))
    try:
        with TestClient(dashboard_app(memory, history_home), base_url="http://127.0.0.1") as c:
            overview = c.get("/json/overview").json()
            assert overview["tracks"][0]["track"].startswith("tinystories-cpu2")    # busiest
            assert overview["track"] == synthetic.HISTORY_TRACK
            for view in ("leaderboard", "claims", "knobs"):
                assert c.get(f"/json/{view}").json()["track"] == synthetic.HISTORY_TRACK
            chosen = c.get("/json/overview", params={"track": "tinystories-cpu2"}).json()
            assert chosen["track"].startswith("tinystories-cpu2")       # still there, asked
    finally:
        memory.close()
    with open_reader(history_home) as reader:
        assert sections(reader, history_home, None)[0]["data"]["track"] == synthetic.HISTORY_TRACK
