"""Issue 10 end to end on loopback: two honest nodes and a hostile node with three keys that
publishes a fabricated, verified-looking claim. The records reach every node (the SQL views
testify `verified`), yet neither honest node shows the fake as a verified finding or on top."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from memory import canonical, codec, records as R, synthetic
from memory.crypto import Keypair
from node.identity import load_or_create
from swarm.bench.nodes import launch, wait_for
from swarm.cli import app

TRACK = "e2e-trust"
BASE = {"lr": 0.003, "n_layer": 3}
TINY = {"lr": 0.003, "n_layer": 1}
cli = CliRunner(env={"COLUMNS": "200"})


def _run(key: Keypair, seq: int, config: dict, seed: int, bpb: float, purpose: str,
         ref: str | None = None) -> R.Record:
    return codec.sign(key, "run", seq, synthetic.run_body(TRACK, config, seed, bpb, purpose=purpose,
                                                          ref=ref))


def _fabricated(base_ids: list[str]) -> tuple[str, list[bytes]]:
    a, b, c = (Keypair.generate() for _ in range(3))
    runs = [_run(a, i + 1, TINY, i, 0.50, "confirm") for i in range(6)]
    claim = codec.sign(a, "claim", 7, R.ClaimBody(
        track=TRACK, baseline_hash=canonical.config_hash(BASE), candidate_hash=canonical.config_hash(TINY),
        diff={"n_layer": 1}, baseline_runs=base_ids, candidate_runs=[r.id for r in runs],
        effect=-0.5, summary="tiny is great"))
    fresh = [_run(c, i + 1, TINY, 100 + i, 0.50, "verify", claim.id) for i in range(3)]
    extra = [codec.sign(b, "assessment", 1, R.AssessmentBody(
                 claim=claim.id, verdict="supported", test="sequential", p_value=1e-9,
                 q_value=1e-9, effect=-0.5, noise_floor=0.002, n=6, reason="fine")),
             codec.sign(c, "verification", 4, R.VerificationBody(
                 claim=claim.id, outcome="confirmed", replay_run=runs[0].id, replay_match=True,
                 runs=[r.id for r in fresh], effect=-0.5, reason="reproduced"))]
    return claim.id, [r.raw for r in runs + [claim] + fresh + extra]


def _json(*args: str) -> object:
    result = cli.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    return json.loads(result.stdout)


def test_hostile_three_key_claim_never_shows_verified_on_honest_nodes(tmp_path: Path) -> None:
    network = f"test-{uuid.uuid4().hex[:8]}"
    a = launch(tmp_path / "a", network)
    b = launch(tmp_path / "b", network, [a.addr])
    bad = launch(tmp_path / "bad", network, [a.addr])
    wait_for(lambda: all(n.status()["peers"] >= 1 for n in (a, b, bad)), 120, "connections")
    key = load_or_create(a.home)                       # node a's own key: its honest baseline
    honest = [_run(key, 100 + i, BASE, i, 1.0 + 0.002 * (i % 3), "baseline") for i in range(8)]
    assert a.ingest([r.raw for r in honest])["accepted"] == 8
    claim, raws = _fabricated([r.id for r in honest])
    assert bad.ingest(raws)["accepted"] == len(raws)
    ids = {codec.decode(r).id for r in raws} | {r.id for r in honest}
    wait_for(lambda: all(n.has_all(ids) for n in (a, b, bad)), 120, "records on every node")
    assert cli.invoke(app, ["trust", "add", key.peer_id, "--home", str(b.home)]).exit_code == 0
    for node in (a, b):
        home = str(node.home)
        said = _json("sql", "SELECT status FROM claim_status WHERE claim = ?".replace(
            "?", f"'{claim}'"), "--json", "--home", home)
        assert said == [{"status": "verified"}]          # the testimony reached the node
        found = _json("findings", "--json", "--home", home)
        assert all(c["claim"] != claim for c in found["claims"])
        assert [c["status"] for c in found["untrusted_claims"] if c["claim"] == claim] \
            in (["supported"], ["pending"])
        board = _json("leaderboard", "--json", "--home", home)
        ranked = [r for r in board if r["rank"] is not None]
        assert ranked and ranked[0]["config"] == BASE
        assert any(r["config"] == TINY and r["trusted"] is False for r in board)
        shown = _json("show", claim[:16], "--json", "--home", home)
        assert shown["here"]["trusted"] is False
