"""A hostile peer cannot crash an honest node, exhaust it, or get anything invalid stored."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from memory.crypto import Keypair
from tests.network.launcher import (
    STARTED, ids_of, launch, launch_swarm, make_records, wait_for)

FRAME_TIMEOUT_S = 3
HOSTILE = [sys.executable, "-m", "tests.network.hostile"]
ENDLESS_VALID = make_records(3, Keypair(b"\x01" * 32), ts=1_700_000_000_000)      # what hostile.py repeats endlessly


def test_hostile_peer_is_contained_and_banned(tmp_path: Path, network: str) -> None:
    env = {"SWARM_SYNC_FRAME_TIMEOUT": str(FRAME_TIMEOUT_S)}
    a, b = launch_swarm(tmp_path, 2, network, env=env)
    good = make_records(10)
    a.ingest(good)
    wait_for(lambda: b.has_all(ids_of(good)), 15, "honest records on b")

    hostile = subprocess.Popen([*HOSTILE, "attack", a.addr, network],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env}, start_new_session=True)
    STARTED.append(hostile)
    out, err = hostile.communicate(timeout=90)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    attacks = {r["attack"]: r["outcome"] for r in results}
    assert "connect" in attacks, err[-2000:]
    hostile_id = attacks["connect"]
    # the stalled sync stream was cut by the node's frame deadline, not left open
    assert FRAME_TIMEOUT_S - 1 <= attacks["sync-stall"]["closed_after_s"] <= FRAME_TIMEOUT_S + 5
    assert attacks["sync-huge-length"]["closed_after_s"] < FRAME_TIMEOUT_S

    more = make_records(5)
    b.ingest(more)                                   # honest gossip still flows both ways
    wait_for(lambda: a.has_all(ids_of(good + more)), 15, "honest records after the attack")
    # stored: the honest records, the two node records, and at most the hostile's three VALID
    # records (its "endless" reply starts with them; only the repeats are refused)
    allowed = ids_of(good + more + ENDLESS_VALID)
    for node in (a, b):
        hypotheses = {row[0] for row in node.query(
            "SELECT id FROM records WHERE kind = 'hypothesis'")["rows"]}
        assert ids_of(good + more) <= hypotheses <= allowed
        assert node.status()["records"] == len(hypotheses) + 2
    print(json.dumps(attacks, indent=1))
    peers = {p["peer_id"]: p for p in a.request("/peers")}
    assert peers[hostile_id]["rejected"] >= 10
    assert peers[hostile_id]["banned_until"] is not None
    assert not peers[hostile_id]["connected"]


def test_pulling_from_a_hostile_responder_stores_nothing_invalid(tmp_path: Path, network: str) -> None:
    env = {"SWARM_SYNC_FRAME_TIMEOUT": str(FRAME_TIMEOUT_S)}
    hostile = subprocess.Popen([*HOSTILE, "serve", "-", network], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env={**os.environ, **env}, start_new_session=True)
    STARTED.append(hostile)
    listening = json.loads(hostile.stdout.readline())
    assert listening["attack"] == "listening"
    node = launch(tmp_path / "a", network, [listening["outcome"]], env=env)
    seen: dict[str, str] = {}

    def every_misbehaviour_answered() -> bool:
        while len(seen) < 5:
            event = json.loads(hostile.stdout.readline())
            seen[event["attack"]] = event["outcome"]
        return True

    wait_for(every_misbehaviour_answered, 60, "five pulls from the hostile peer")
    assert set(seen) == {f"respond-{m}" for m in ("endless", "stall", "oversize", "invalid",
                                                    "garbage")}
    assert seen["respond-endless"].startswith("cut off")    # the node stopped reading
    status = node.status()                                   # alive, and stored only valid data
    hypotheses = {row[0] for row in node.query(
        "SELECT id FROM records WHERE kind = 'hypothesis'")["rows"]}
    assert hypotheses <= ids_of(ENDLESS_VALID)
    assert status["records"] == len(hypotheses) + 1         # + its own node record
    # The hostile reports a misbehaviour once sent; the node counts it once read (a moment later).
    wait_for(lambda: any(p["rejected"] >= 5 for p in node.request("/peers")), 15,
             "five misbehaviours counted against the hostile peer")
