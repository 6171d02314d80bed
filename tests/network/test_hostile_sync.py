"""Records that arrive by sync are rationed (node/syncquota.py): a responder serving a flood of fresh
keys gets at most its quota stored, then drops and a pause (never strikes: an honest grown memory
is past the budget too); an honest catch-up of many authors
arrives whole. The nodes run with every sync budget scaled down ($SWARM_SYNC_QUOTA_SCALE), the
memories with them, so the ratios are those of the bench memory against the real budgets."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from memory.crypto import Keypair
from memory.store import Store
from node.home import memory_path
from node.syncquota import SCALE_ENV, SyncQuotaConfig, flood_bound
from tests.network.hostile import HAVE_KEY
from tests.network.launcher import STARTED, ids_of, launch, make_records, wait_for

FLOOD_KEYS = 2000
SCALE = 0.0025               # 500 never-seen authors per peer an hour, 2.7 MB of their records
HOSTILE = [sys.executable, "-m", "tests.network.hostile"]
WAIT_S = 120                 # generous: a loaded 2-core machine; each wait ends when it holds


def _memory(home: Path, raws: list[bytes]) -> None:
    memory_path(home).parent.mkdir(parents=True, exist_ok=True)
    with Store(memory_path(home)) as store:
        assert store.ingest(raws).accepted == len(raws)


def _count(node, track: str) -> int:
    return node.query("SELECT count(*) FROM hypotheses WHERE track = ?", [track])["rows"][0][0]


def _quota_drops(node) -> dict[str, int]:
    rows = node.query("SELECT reason, n FROM rejections WHERE reason LIKE 'quota_sync%'")["rows"]
    return dict(rows)


def test_a_sync_responder_serving_fresh_keys_gets_its_quota_then_drops_and_a_pause(
        tmp_path: Path, network: str) -> None:
    flood = [r for _ in range(FLOOD_KEYS) for r in make_records(1, Keypair.generate(), track="flood")]
    _memory(tmp_path / "hostile", flood)       # a node serves what it holds: a perfect flooder
    env = {SCALE_ENV: str(SCALE)}
    start = time.monotonic()
    hostile = launch(tmp_path / "hostile", network)
    a = launch(tmp_path / "a", network, [hostile.addr], env=env)
    b = launch(tmp_path / "b", network, [a.addr], env=env)
    wait_for(lambda: _quota_drops(a), WAIT_S, "sync quota drops counted on a")
    peers = {p["peer_id"]: p for p in a.request("/peers")}
    good = make_records(5)
    b.ingest(good)                                        # an honest peer's records still arrive
    wait_for(lambda: a.has_all(ids_of(good)), WAIT_S, "honest records on a")
    config = SyncQuotaConfig().scaled(SCALE)
    bound = flood_bound(config, time.monotonic() - start, 1, max(len(r) for r in flood))
    stored = _count(a, "flood")
    assert 0 < stored <= bound < FLOOD_KEYS / 3
    # counted by reason, each refused record once: the pull that dropped them paused the next
    drops = _quota_drops(a).get("quota_sync_new_authors", 0)
    served = hostile.query("SELECT count(*) FROM records")["rows"][0][0]   # its own ones too
    assert 0 < drops <= served - stored
    time.sleep(5)                    # 5 sync intervals: the hostile peer is not pulled again (a
    # pull would drop ~1,500 more); b, which took its own share of the flood, may offer a few
    assert _quota_drops(a).get("quota_sync_new_authors", 0) - drops < 100
    assert not any(p["banned_until"] for p in a.request("/peers"))
    assert peers and a.status()["host_restarts"] == 0


def test_an_honest_catch_up_of_many_authors_arrives_whole_without_drops_or_strikes(
        tmp_path: Path, network: str) -> None:
    # half the never-seen authors a peer may introduce in an hour, as the bench memory is of
    # the real budget (100,000 of 200,000), 3 records each
    config = SyncQuotaConfig().scaled(SCALE * 4)
    authors = int(config.new_authors_per_hour // 2)
    honest = [r for _ in range(authors) for r in make_records(3, Keypair.generate(), track="old")]
    _memory(tmp_path / "seed", honest)
    seed = launch(tmp_path / "seed", network)
    fresh = launch(tmp_path / "fresh", network, [seed.addr], env={SCALE_ENV: str(SCALE * 4)})
    wait_for(lambda: _count(fresh, "old") == len(honest), WAIT_S,
             "the whole memory on the fresh node")
    assert not _quota_drops(fresh)
    assert all(p["rejected"] == 0 and not p["banned_until"] for p in fresh.request("/peers"))


def test_records_refused_over_quota_are_not_asked_for_again_in_a_loop(
        tmp_path: Path, network: str) -> None:
    # a memory a little past the budget: the refused records would be asked for by every pull,
    # but a pull that dropped records pauses pulls from that peer (60 s at first)
    over = 100
    limit = int(SyncQuotaConfig().scaled(SCALE).new_authors_per_hour)
    honest = [r for _ in range(limit + over) for r in make_records(1, Keypair.generate(),
                                                                     track="old")]
    _memory(tmp_path / "seed", honest)
    seed = launch(tmp_path / "seed", network)
    node = launch(tmp_path / "node", network, [seed.addr], env={SCALE_ENV: str(SCALE)})
    # drops are counted as each batch is read and saved every second: wait for the whole pull's
    wait_for(lambda: sum(_quota_drops(node).values()) >= over, WAIT_S,
             "the first pull's drops counted")
    first = _quota_drops(node)
    assert over <= sum(first.values()) <= over + 5 and _count(node, "old") <= limit
    time.sleep(8)                                   # 8 sync intervals: no pull from the seed
    assert _quota_drops(node) == first
    assert not any(p["banned_until"] for p in node.request("/peers"))


def test_a_have_summary_of_overlapping_gaps_is_refused_and_counted(
        tmp_path: Path, network: str) -> None:
    """`/swarm/sync/1.0.0`: a have-summary whose gaps overlap (here 20,000 copies of the whole
    range) made the responder join every record with every gap: 4.6 CPU seconds for 10,000 gaps
    on 2,000 records, 395 s for 100,000, and an 8 MB frame holds ~1.6 million. Gaps must be
    ascending and apart (docs/PROTOCOL.md): this one is refused at its second gap, and the peer
    gets a strike; an honest peer still pulls."""
    records = make_records(50, HAVE_KEY)
    _memory(tmp_path / "a", records)
    a = launch(tmp_path / "a", network)
    hostile = subprocess.Popen([*HOSTILE, "have:20000:50", a.addr, network],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    STARTED.append(hostile)
    out, err = hostile.communicate(timeout=240)
    attacks = {r["attack"]: r["outcome"] for r in map(json.loads, out.splitlines())}
    assert "connect" in attacks and "done" in attacks, err[-2000:]
    assert not isinstance(attacks["sync-have-gaps"], dict), attacks      # reset, not answered
    wait_for(lambda: _peer(a, attacks["connect"]).get("rejected", 0) >= 1, WAIT_S,
             "the refused summary counted against the hostile peer")
    b = launch(tmp_path / "b", network, [a.addr])            # honest sync is unaffected
    wait_for(lambda: b.has_all(ids_of(records)), WAIT_S, "a's records on b")


def _peer(node, peer_id: str) -> dict:
    return next((p for p in node.request("/peers") if p["peer_id"] == peer_id), {})
