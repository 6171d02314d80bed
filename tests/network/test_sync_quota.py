"""Sync quotas (node/syncquota.py) without a network: buckets, standing, refunds, pauses."""
from __future__ import annotations

import time

import trio

from memory.crypto import Keypair
from node.quota import Quotas
from node.syncquota import (Head, SyncQuotaConfig, SyncQuotas, SyncRation, flood_bound,
                            read_heads)
from tests.network.launcher import make_records

SIZE = 700
SMALL = SyncQuotaConfig().scaled(0.01)       # 2,000 new authors, 10.7 MB of them, an hour


def _fresh(n: int, per_author: int = 1, size: int = SIZE) -> list[Head]:
    return [Head(f"id{i}", f"key{i // per_author}", size) for i in range(n * per_author)]


def test_a_fresh_key_flood_gets_the_documented_bound_then_drops() -> None:
    sync = SyncQuotas(Quotas(), SMALL)
    start = time.monotonic()
    keep, drops = sync.admit("hostile", _fresh(20_000))
    elapsed = time.monotonic() - start
    assert 0 < sum(keep) <= flood_bound(SMALL, elapsed, 1, SIZE)
    assert sum(keep) >= SMALL.new_authors_per_hour            # the whole allowance, no less
    assert drops == {"quota_sync_new_authors": 20_000 - sum(keep)}
    assert sync.counts() == drops
    # another peer's budget is its own: the flood costs honest peers nothing
    assert all(sync.admit("honest", _fresh(10))[0])


def test_a_backdated_flood_is_bounded_by_bytes_whatever_its_timestamps() -> None:
    # records' own ts play no part: standing comes from when this node met the author
    config = SyncQuotaConfig(new_authors_per_hour=1e9, new_bytes_per_hour=1e6)
    sync = SyncQuotas(Quotas(), config)
    keep, drops = sync.admit("hostile", _fresh(10_000, size=1000))
    assert sum(keep) == 1000 and drops == {"quota_sync_new_bytes": 9000}
    assert sync.quotas.first_seen("key0") >= time.time() - 60     # met now, not when stamped


def test_an_honest_catch_up_the_shape_of_the_bench_fits_with_room_to_spare() -> None:
    # the bench memory scaled down 100x: 10,000 records by 1,000 authors, 6.8 MB
    sync = SyncQuotas(Quotas(), SMALL)
    keep, drops = sync.admit("seed", _fresh(1000, per_author=10, size=680))
    assert all(keep) and not drops
    # and at full size, with the real budgets: 1,000,000 records by 100,000 authors
    full = SyncQuotas(Quotas(), SyncQuotaConfig())
    for chunk in range(10):
        heads = [Head(f"{chunk}-{i}", f"key{i % 100_000}", 680) for i in range(100_000)]
        assert all(full.admit("seed", heads)[0])


def test_authors_with_standing_skip_the_new_author_budgets_but_not_their_own() -> None:
    quotas = Quotas()
    quotas.know("old", time.time() - 7200, 10)
    config = SyncQuotaConfig(new_bytes_per_hour=1000, author_bytes_per_hour=50_000)
    sync = SyncQuotas(quotas, config)
    keep, drops = sync.admit("p", [Head(f"{i}", "old", 1000) for i in range(60)])
    assert sum(keep) == 50 and drops == {"quota_sync_author": 10}
    assert sync.admit("p", [Head("n", "new", 1000), Head("n2", "new", 1000)])[0] == [True, False]


def test_the_peer_bytes_budget_caps_everything_one_peer_serves() -> None:
    quotas = Quotas()
    quotas.know("old", time.time() - 7200, 10)
    sync = SyncQuotas(quotas, SyncQuotaConfig(peer_bytes_per_hour=5000))
    keep, drops = sync.admit("p", [Head(f"{i}", "old", 1000) for i in range(8)])
    assert sum(keep) == 5 and drops == {"quota_sync_peer": 3}


def test_records_already_held_give_their_bytes_back() -> None:
    sync = SyncQuotas(Quotas(), SyncQuotaConfig(new_bytes_per_hour=3000))
    heads = [Head(f"{i}", f"k{i}", 1000) for i in range(3)]
    assert all(sync.admit("p", heads)[0])
    sync.refund("p", heads)                                   # all three were duplicates
    assert all(sync.admit("p", [Head(f"x{i}", f"k{i}", 1000) for i in range(3)])[0])


def test_a_pull_that_dropped_records_pauses_pulls_from_that_peer() -> None:
    sync = SyncQuotas(Quotas(), SyncQuotaConfig(new_authors_per_hour=1))
    sync.admit("p", _fresh(3))
    assert sync.may_pull("p")
    sync.finished("p", {"quota_sync_new_authors": 2})
    assert not sync.may_pull("p") and sync.may_pull("other")
    first = sync._peers["p"].pause_s
    sync._peers["p"].paused_until = 0.0
    sync.finished("p", {"quota_sync_new_authors": 2})
    assert sync._peers["p"].pause_s == 2 * first                 # backs off further
    sync.finished("p", {})
    assert sync._peers["p"].pause_s == 0.0


def test_a_ration_reads_real_records_and_leaves_unreadable_ones_to_ingest() -> None:
    raws = [r for _ in range(5) for r in make_records(2, Keypair.generate())]
    heads = read_heads(raws + [b"\x00garbage"])
    assert len({h.author for h in heads[:-1]}) == 5 and heads[-1] == Head(None, None, 8)
    sync = SyncQuotas(Quotas(), SyncQuotaConfig(new_authors_per_hour=3))
    seen: list[dict[str, int]] = []
    ration = SyncRation(sync, "p", seen.append)
    kept = trio.run(ration.admit, raws + [b"\x00garbage"])
    assert len(kept) == 7 and kept[-1] == b"\x00garbage"       # 3 authors x 2, and the garbage
    assert seen == [{"quota_sync_new_authors": 4}] and ration.dropped == seen[0]
    ration.settle(1, [])                                       # none stored: bytes refunded
    ration.finish()
    assert not sync.may_pull("p")


def test_an_author_met_by_sync_starts_small_in_gossip_too() -> None:
    quotas = Quotas()
    SyncQuotas(quotas, SMALL).admit("p", [Head("i", "met", 100)])
    burst = quotas.config.author_burst * quotas.config.new_author_factor
    admitted = [quotas.admit("g", "met", 100)[0] for _ in range(int(burst) + 5)]
    assert "quota_author" in admitted
