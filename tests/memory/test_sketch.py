"""Sketches of key sets (memory/sketch.py) and sync 2.1.0's sketch requests (memory/reconcile.py):
sparse differences cost ~20 bytes per missing key, a collision or an undecodable sketch only
costs a fallback to splitting, and nothing is ever hidden from the requester."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest

from memory import reconcile, sketch
from memory.reconcile import Requester, Snapshot, answer
from memory.sketch import Sketch


def _keys(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(1, 2**64 - 1, n, dtype=np.uint64)


def test_a_sketch_difference_gives_the_keys_each_side_lacks() -> None:
    rng = np.random.default_rng(1)
    shared, only_mine, only_theirs = _keys(rng, 3000), _keys(rng, 40), _keys(rng, 7)
    salt, cells = 12345, sketch.cells_for(2 * 47)     # ample: this test is not about failures
    mine = Sketch.build(np.concatenate([shared, only_mine]), salt, cells)
    built = Sketch.build(np.concatenate([only_theirs, shared]), salt, cells)
    theirs = Sketch.decode(built.encode())
    found = sketch.difference(mine, theirs, salt)
    assert found is not None
    assert sorted(found[0]) == sorted(only_mine.tolist())
    assert sorted(found[1]) == sorted(only_theirs.tolist())


def test_too_many_differences_do_not_decode() -> None:
    rng = np.random.default_rng(2)
    salt, cells = 7, sketch.cells_for(5)
    assert sketch.difference(Sketch.build(_keys(rng, 200), salt, cells),
                             Sketch.build(_keys(rng, 0), salt, cells), salt) is None


def _colliding(salt: int, cells: int, rng: np.random.Generator) -> tuple[int, int]:
    """Two keys that fall in the same three cells of a sketch with this salt (a crafted collision:
    cheap when the salt is known and the sketch small)."""
    seen: dict[tuple[int, ...], int] = {}
    while True:
        key = int(_keys(rng, 1)[0])
        places, _ = sketch._places(key, salt, cells // 3)
        if places in seen:
            return seen[places], key
        seen[places] = key


def test_a_crafted_collision_makes_the_sketch_fail_and_the_range_is_split_instead() -> None:
    rng = np.random.default_rng(3)
    salt = 99
    a, b = _colliding(salt, sketch.MIN_CELLS, rng)
    # S holds both colliding keys, R neither: the cells hold two keys, never one, so nothing
    # decodes, S answers False and sends nothing
    theirs = Snapshot.build(np.arange(40), [a, b, *_keys(rng, 38).tolist()])
    mine_keys = [k for k in theirs.keys.tolist() if k not in (a, b)]
    mine = Snapshot.build(theirs.ts[np.isin(theirs.keys, mine_keys)], mine_keys)
    request = ["x", 0, reconcile.encode_bound(reconcile.END), salt.to_bytes(8, "big"),
               Sketch.build(mine.keys, salt, sketch.MIN_CELLS).encode()]
    replies, sent = answer(theirs, [request])
    assert replies == [False] and sent.size == 0
    # the requester falls back to splitting that range, and gets both records
    requester = Requester(mine, salt=lambda: salt.to_bytes(8, "big"))
    requester.absorb([request], replies)
    frame, got = requester.next_frame(), []
    assert frame[0][0] == "s" and requester.sketches_failed == 1
    while frame:
        replies, keys = answer(theirs, frame)
        got += keys.tolist()
        requester.absorb(frame, replies)
        frame = requester.next_frame()
    assert sorted(got) == sorted([a, b])


def test_a_hostile_sketch_costs_the_responder_nothing_but_a_refusal() -> None:
    rng = np.random.default_rng(4)
    snap = Snapshot.build(np.arange(500), _keys(rng, 500))
    end = reconcile.encode_bound(reconcile.END)
    for cells in (9, 300, sketch.MAX_CELLS - sketch.MAX_CELLS % 3):
        garbage = rng.bytes(cells * sketch.CELL_BYTES)
        replies, sent = answer(snap, [["x", 0, end, b"saltsalt", garbage]])
        assert replies[0] is False or replies[0] == sent.size    # never a key S does not hold
    for bad in (["x", 0, end, b"salt", b"\0" * 117], ["x", 0, end, b"saltsalt", b"\0" * 116],
                ["x", 0, end, b"saltsalt", b"\0" * 13 * 6], ["x", 0, end, b"saltsalt"],
                ["x", 0, end, b"saltsalt", b"\0" * 13 * 4098]):
        with pytest.raises(ValueError):
            answer(snap, [bad])
    with pytest.raises(ValueError):          # a 2.0.0 responder knows no sketches
        answer(snap, [["x", 0, end, b"saltsalt", b"\0" * 117]], v21=False)


def _exchange(mine: Snapshot, theirs: Snapshot, v21: bool, budget: int = reconcile.ROUND_BYTES
              ) -> tuple[set[int], Requester, int]:
    salts = np.random.default_rng(9)           # fixed salts: the same sketches every run
    requester, wire, got = Requester(mine, v21, lambda: salts.bytes(8)), 0, set()
    frame = requester.first()
    while frame:
        replies, keys = answer(theirs, frame, budget, v21)
        wire += len(msgpack.packb(frame)) + len(msgpack.packb(replies))
        got |= set(keys.tolist())
        requester.absorb(frame, replies)
        frame = requester.next_frame()
    return got, requester, wire


@pytest.mark.parametrize("budget", [reconcile.ROUND_BYTES, 20_000])
def test_a_scattered_difference_is_sketched_and_costs_little(budget) -> None:
    rng = np.random.default_rng(5)
    n = 60_000
    ts, keys = np.arange(n) + 1_700_000_000_000, _keys(rng, n)
    theirs = Snapshot.build(ts, keys, np.full(n, 680))
    lacking = rng.random(n) < 0.01
    mine = Snapshot.build(ts[~lacking], keys[~lacking])
    new, requester, wire = _exchange(mine, theirs, True, budget)
    old, old_requester, old_wire = _exchange(mine, theirs, False, budget)
    assert new == old == set(keys[lacking].tolist())
    assert requester.sketches > 0 and old_requester.sketches == 0
    if budget == reconcile.ROUND_BYTES:
        # ~5% at this size (3% at a million records: sketches of bigger ranges); 2.0.0: ~25%
        assert wire < 0.08 * 680 * lacking.sum() and 3 * wire < old_wire
        assert requester.rounds <= old_requester.rounds + 2     # +2 if a sketch fails (~3%)


def test_a_frame_of_huge_sketches_is_answered_false_past_the_responders_allowance(
        monkeypatch) -> None:
    rng = np.random.default_rng(6)
    snap = Snapshot.build(np.arange(9000), _keys(rng, 9000))
    monkeypatch.setattr(reconcile, "SKETCH_KEYS", 7000)
    salt = int.from_bytes(b"saltsalt", "big")
    thirds = [["x", lo, hi, b"saltsalt", Sketch.build(snap.keys[lo:hi - 1], salt, 9).encode()]
              for lo, hi in ((0, 3000), (3000, 6000), (6000, 9000))]     # ranges of a frame
    replies, _ = answer(snap, thirds)                                    # are disjoint
    assert replies == [1, 1, False]          # 3,000 keys sketched twice; a third would pass 7,000
