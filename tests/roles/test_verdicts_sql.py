"""The SQL path of the verdicts (roles/verdicts.py + roles/evidence_sql.py) against the reference
Python pass over every run (roles/verdicts_ref.py), on randomized real stores: insane runs,
trusted, untrusted and distrusted authors, replays that match and that contradict, repeated
seeds, claims by trusted and untrusted authors, a track with a known budget and one without."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from memory import canonical, codec, records as R, stats, synthetic
from memory.crypto import Keypair
from memory.store import Store
from node.harness.config import Config
from roles import author_sums, config_rows, evidence_inc, evidence_sql, sanity, trust, verdicts
from roles.verdicts import Verdicts
from roles.verdicts_ref import ReferenceVerdicts

BUDGET = 1024 * 40                # 40 steps of the default config's 1024 tokens
HARNESS = "tinystories-cpu:" + "7" * 16     # judged with a budget: the harness bounds apply
SIM = "sim-track"                           # judged without one
BASE = Config().model_dump()
CONFIGS = [BASE] + [{**BASE, "lr": lr} for lr in (0.001, 0.002, 0.004, 0.006)] + [
    {**BASE, "batch_size": 4}, {**BASE, "n_head": 3}]           # the last one the harness refuses
# What makes a run impossible, as metric overrides (and the sane ones the checks keep).
INSANE = [dict(val_bpb=0.0), dict(val_bpb=9.5), dict(mfu=2.0), dict(tokens=10),
          dict(steps=7), dict(status="crash")]


class World:
    """A store being filled with one randomized history."""

    def __init__(self, store: Store, rng: random.Random) -> None:
        self.store, self.rng = store, rng
        self.keys = synthetic.keypairs(9, seed=rng.randrange(1000))
        self.seq = {k.peer_id: 0 for k in self.keys}
        self.ts = 1_000_000
        self.runs: list[R.Record] = []
        self.claims: list[R.Record] = []
        self.pending: list[R.Record] = []
        # Some runs name another accelerator kind (their authors' runs count on it only once a
        # trusted replay matched one there: roles/trust.py `run_key`); drawn apart from `rng`.
        self.kinds = random.Random(self.keys[0].peer_id)

    def sign(self, key: Keypair, kind: str, body: R.Body) -> R.Record:
        self.seq[key.peer_id] += 1
        self.ts += self.rng.choice([0, 1, 5])              # equal timestamps happen
        record = codec.sign(key, kind, self.seq[key.peer_id], body, ts=self.ts)
        self.pending.append(record)
        (self.runs if kind == "run" else self.claims).append(record)
        return record

    def flush(self) -> None:
        """Store what was signed, in one transaction."""
        assert self.store.add(self.pending).accepted == len(self.pending)
        self.pending = []

    def run(self, key: Keypair, track: str, purpose: str = "baseline", ref: str | None = None,
            config: dict | None = None, seed: int | None = None, bpb: float | None = None,
            accelerator: str | None = None) -> R.Record:
        config = config if config is not None else self.rng.choice(CONFIGS)
        seed = seed if seed is not None else self.rng.randrange(6)      # seeds repeat
        bpb = bpb if bpb is not None else round(1.5 + self.rng.gauss(0, 0.05), 6)
        tps = config["batch_size"] * config["seq_len"]
        body = synthetic.run_body(track, config, seed, bpb, purpose=purpose, ref=ref)
        accelerator = accelerator or ("cuda" if self.kinds.random() < 0.2 else "cpu")
        if accelerator != "cpu":
            body = body.model_copy(update={"hardware": body.hardware.model_copy(
                update={"accelerator": accelerator, "device_name": "NVIDIA H200"})})
        metrics = {"tokens": BUDGET // tps * tps, "steps": BUDGET // tps, "mfu": 0.05}
        if self.rng.random() < 0.15:
            metrics.update(self.rng.choice(INSANE))
        status = metrics.pop("status", "ok")
        if status != "ok" and self.rng.random() < 0.5:
            metrics["val_bpb"] = None                     # a crash without a number: sane
        body = body.model_copy(update={"status": status, "metrics": body.metrics.model_copy(
            update=metrics)})
        return self.sign(key, "run", body)

    def claim(self, key: Keypair, track: str) -> R.Record:
        mine = [r for r in self.runs if r.body.track == track and r.author == key.peer_id
                and r.body.purpose in ("confirm", "screen")]
        base = [r for r in self.runs if r.body.track == track and r.body.purpose == "baseline"]
        cited = self.rng.sample(mine, min(len(mine), 4)) if mine else []
        candidate = cited[0].body.config if cited else self.rng.choice(CONFIGS)
        if self.rng.random() < 0.2:
            cited.append(self.rng.choice(self.runs))                  # another config's run
        body = R.ClaimBody(
            track=track, baseline_hash=canonical.config_hash(BASE),
            candidate_hash=canonical.config_hash(candidate),
            diff={k: v for k, v in candidate.items() if BASE.get(k) != v},
            baseline_runs=[r.id for r in base[:8]],
            candidate_runs=[r.id for r in cited] or ["ab" * 32],        # a run never seen
            effect=-0.02, summary="better")
        return self.sign(key, "claim", body)


def _fill(store: Store, seed: int) -> tuple[World, frozenset[str]]:
    w = World(store, random.Random(seed))
    root, pinned, *others = w.keys
    for _ in range(160):
        track = w.rng.choice([HARNESS, SIM])
        purpose = w.rng.choice(["baseline", "baseline", "screen", "confirm", "manual"])
        w.run(w.rng.choice(w.keys), track, purpose, config=BASE if purpose == "baseline" else None)
    for _ in range(6):
        w.claim(w.rng.choice(w.keys), w.rng.choice([HARNESS, SIM]))
    claims = [(c.id, c.body.track, c.body.candidate_hash) for c in w.claims]
    for claim_id, track, chash in claims:                     # fresh seeds of claims
        config = next((r.body.config for r in w.runs if r.body.config_hash == chash), BASE)
        for _ in range(w.rng.randrange(3)):
            w.run(w.rng.choice(w.keys), track, "verify", claim_id, config=config)
    honest = others[5]                  # never contradicted: a root's matching replay trusts it
    for target in w.rng.sample(w.runs, 40):                  # replays: match, contradict, neither
        replayer = w.rng.choice([root, pinned, *others[:3]])
        if target.author in (replayer.peer_id, honest.peer_id, others[6].peer_id):   # 6: unknown
            continue
        m = target.body.metrics
        off = w.rng.choice([0.0, 0.0, 0.0, 0.03, 0.5])
        w.run(replayer, target.body.track, "replay", target.id, config=target.body.config,
              seed=target.body.seed, bpb=None if m.val_bpb is None else round(m.val_bpb + off, 6),
              accelerator=target.body.hardware.accelerator)
    for track in (HARNESS, SIM):
        target = w.run(honest, track, "baseline", config=BASE, bpb=1.5, accelerator="cpu")
        if target.body.status == "ok" and target.body.metrics.val_bpb is not None:
            w.run(root, track, "replay", target.id, config=BASE, seed=target.body.seed,
                  bpb=target.body.metrics.val_bpb, accelerator="cpu")
    w.flush()
    return w, frozenset({root.peer_id, pinned.peer_id})


def _same_rows(fast: list[dict[str, Any]], slow: list[dict[str, Any]]) -> None:
    assert [{k: v for k, v in r.items() if k != "mean"} for r in fast] == [
        {k: v for k, v in r.items() if k != "mean"} for r in slow]
    assert [r["mean"] for r in fast] == pytest.approx([r["mean"] for r in slow], rel=1e-12)


def _claim_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v is None else pytest.approx(v, rel=1e-9))
            if k in ("p_value", "q_value") else v for k, v in row.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_sql_verdicts_agree_with_the_python_pass(tmp_path, seed: int) -> None:
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, seed)
        facts = sanity.TrackFacts({HARNESS: BUDGET, SIM: None})
        statuses = set()
        for track in (HARNESS, SIM):
            fast = Verdicts(store, track, roots, facts, stats.GateParams())
            slow = ReferenceVerdicts(store, track, roots, facts, stats.GateParams())
            src = evidence_sql.sane_runs(store, facts, track, "r.id")
            sane = dict(store.query(f"SELECT id, sane FROM {src.source}", src.params).rows)
            assert sane == {i: sanity.reason(r, facts) is None for i, r in slow.runs.items()}
            assert 0 < sum(sane.values()) < len(sane)          # both kinds were drawn
            _same_verdicts(fast, slow)
            statuses |= {fast.trust.standing(a).status for a in world.seq}
        counts = {a: len([r for r in world.runs if r.author == a and r.body.status == "ok"
                          and sanity.reason(_row(store, r.id), facts) is None])
                  for a in world.seq}
        assert evidence_sql.sane_counts(store, facts) == {a: n for a, n in counts.items() if n}
        for record in world.runs[:60]:            # a run looked up by id reads its record
            found = store.query(f"SELECT {verdicts._RUN_COLUMNS} FROM valid_runs WHERE id = ?",
                                [record.id])
            assert verdicts._run_row(store, record.id) == dict(zip(found.columns, found.rows[0]))
    assert {"root", "trusted", "untrusted", "distrusted"} <= statuses


def _row(store: Store, run_id: str) -> dict[str, Any]:
    found = store.query("SELECT * FROM valid_runs WHERE id = ?", [run_id])
    return dict(zip(found.columns, found.rows[0]))


def _same_verdicts(fast: Verdicts, slow: Verdicts) -> None:
    for limit in (3, 10**6):
        _same_rows(fast.leaderboard(limit), slow.leaderboard(limit))
    assert [c.as_row() for c in fast.claims] == [_claim_row(c.as_row()) for c in slow.claims]
    assert fast.screened == slow.screened
    assert fast.baseline_tally() == slow.baseline_tally()
    assert fast.newest_finished(25) == slow.newest_finished(25)
    assert fast.newest_counted(25) == slow.newest_counted(25)
    assert fast.best() == slow.best()


def _same_aggregates(moved: Any, fresh: Any) -> None:
    """The per-config rows (exact decimal sums) and the whole ranking, not only its top."""
    assert moved.configs() == fresh.configs()
    assert moved.ranking(10**6) == fresh.ranking(10**6)


def _clean(run: R.Record) -> bool:
    """Did `World.run` draw none of the insane metrics for this run?"""
    m = run.body.metrics
    return (run.body.status == "ok" and m.val_bpb is not None and m.val_bpb < 9 and m.mfu == 0.05
            and m.tokens != 10 and m.steps != 7)


def _vouch_on_cuda(w: World) -> None:
    """The root replays a `cuda` run of the trusted author `w.keys[7]` on `cuda`, a match: that
    author's runs on `cuda` count from then on (roles/trust.py `run_key`)."""
    target = replay = None
    while target is None or not _clean(target):
        target = w.run(w.keys[7], SIM, "baseline", config=BASE, bpb=1.5, accelerator="cuda")
    while replay is None or not _clean(replay):
        replay = w.run(w.keys[0], SIM, "replay", target.id, config=BASE, seed=target.body.seed,
                       bpb=1.5, accelerator="cuda")


def _more(w: World, round_: int) -> None:
    """A round of arrivals: runs of held configs (seeds repeat), screens, insane runs, runs of the
    other track, a root's runs with an older ts than runs already held, a claim, and in the last
    round a replay (trust moves: a full recomputation)."""
    for _ in range(12):
        track = w.rng.choice([HARNESS, SIM])
        purpose = w.rng.choice(["baseline", "screen", "confirm", "manual", "verify"])
        w.run(w.rng.choice(w.keys), track, purpose, config=BASE if purpose == "baseline" else None)
    for track in (HARNESS, SIM):        # signed long ago, stored now: its seed's first run
        now, w.ts = w.ts, w.ts - 5_000
        w.run(w.keys[0], track, "baseline", config=BASE)
        w.ts = now
    if round_ == 0:
        _vouch_on_cuda(w)
    if round_ == 1:
        w.claim(w.rng.choice(w.keys), w.rng.choice([HARNESS, SIM]))
        target = w.run(w.keys[8], SIM, "baseline", config=BASE, bpb=1.5)
        w.pending.remove(target)           # its replay is stored first, the target a round later
        w.run(w.keys[0], SIM, "replay", target.id, config=BASE, seed=target.body.seed, bpb=1.5,
              accelerator=target.body.hardware.accelerator)
        w.late = [target]
    if round_ == 2:
        w.pending += getattr(w, "late", [])
    if round_ == 2:
        target = next(r for r in reversed(w.runs) if r.body.metrics.val_bpb is not None
                      and r.author != w.keys[0].peer_id)
        w.run(w.keys[0], target.body.track, "replay", target.id, config=target.body.config,
              seed=target.body.seed, bpb=target.body.metrics.val_bpb,
              accelerator=target.body.hardware.accelerator)
    w.flush()


@pytest.mark.parametrize("seed", [2])
def test_verdicts_moved_on_from_an_earlier_state_agree(tmp_path, seed: int) -> None:
    """Verdicts built from an earlier state's (only the runs stored since read; the configs they
    touch recomputed) equal fresh ones and the Python pass, after each round of arrivals."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, seed)
        facts = sanity.TrackFacts({HARNESS: BUDGET, SIM: None})
        held = {}
        for track in (HARNESS, SIM):
            held[track] = Verdicts(store, track, roots, facts, stats.GateParams())
            _same_verdicts(held[track], held[track])       # every aggregate computed once
        moved = 0
        for round_ in range(3):
            _more(world, round_)
            for track in (HARNESS, SIM):
                before = held[track].agg
                v = Verdicts(store, track, roots, facts, stats.GateParams(), base=held[track])
                moved += v.agg._configs.base is not None and v.agg.trusted == before.trusted
                fresh_v = Verdicts(store, track, roots, facts, stats.GateParams())
                _same_verdicts(v, fresh_v)
                _same_aggregates(v.agg, fresh_v.agg)
                _same_verdicts(v, ReferenceVerdicts(store, track, roots, facts, stats.GateParams()))
                held[track] = v
            kept = verdicts.trust_state(store, roots, facts)        # kept unless replays moved
            held_replays = verdicts._replays(store)
            bounds = trust.cross_bounds(store, held_replays.compared(facts), roots, facts)
            assert held_replays.load(facts, bounds) == trust.load_replays(store, facts, roots)
            fresh = trust.compute(trust.load_replays(store, facts, roots), roots)
            assert (kept.authors, kept.run_outcome) == (fresh.authors, fresh.run_outcome)
            assert kept.kinds == fresh.kinds
            assert "cuda" in kept.kinds[world.keys[7].peer_id]       # _vouch_on_cuda, round 0
        assert moved >= 4
        unasked = {t: Verdicts(store, t, roots, facts, stats.GateParams(), base=held[t])
                   for t in (HARNESS, SIM)}       # nobody asks for these states' leaderboards
        _more(world, 3)
        for track in (HARNESS, SIM):             # ...so the next one catches up over both rounds
            v = Verdicts(store, track, roots, facts, stats.GateParams(), base=unasked[track])
            _same_verdicts(v, Verdicts(store, track, roots, facts, stats.GateParams()))                   # most rounds moved on instead of recomputing


@pytest.mark.parametrize("seed", [3, 4])
def test_aggregates_moved_on_across_a_change_of_trust_agree(tmp_path, seed: int) -> None:
    """A change of who is trusted (roots added and dropped, with runs arriving in the same step,
    and states nobody asked about in between) moves the per-config rows by the changed authors'
    runs only (no full computation): rows, ranking and verdicts equal fresh ones and the
    Python pass, repeated seeds (replays, reruns) included."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, seed)
        keys = [k.peer_id for k in world.keys]
        facts = sanity.TrackFacts({HARNESS: BUDGET, SIM: None})
        params = stats.GateParams()
        steps = [frozenset({keys[0], keys[2]}),                 # one root dropped, one added
                 frozenset({keys[0], keys[1], keys[3], keys[4]}),
                 frozenset({keys[5]})]
        for track in (HARNESS, SIM):
            held = Verdicts(store, track, roots, facts, params)
            _same_verdicts(held, held)                         # every aggregate computed once
            for n, new_roots in enumerate(steps):
                if n == 1:
                    _more(world, 0)                            # runs arrive with the change
                v = Verdicts(store, track, new_roots, facts, params, base=held)
                assert v.agg.trusted != held.agg.trusted
                assert v.agg._configs.base is not None          # moved on, not recomputed
                fresh = Verdicts(store, track, new_roots, facts, params)
                _same_aggregates(v.agg, fresh.agg)
                _same_verdicts(v, fresh)
                _same_verdicts(v, ReferenceVerdicts(store, track, new_roots, facts, params))
                v.agg._grouped_runs.wait()     # every author's runs grouped in the background
                held = v
            unasked = Verdicts(store, track, roots, facts, params, base=held)
            _more(world, 1)                                    # two changes, one catch-up
            v = Verdicts(store, track, steps[0], facts, params, base=unasked)
            fresh = Verdicts(store, track, steps[0], facts, params)
            _same_aggregates(v.agg, fresh.agg)
            _same_verdicts(v, fresh)
        assert any(len(runs) > 2 for runs in held.agg._table().repeats.values())


@pytest.mark.parametrize("background", [False, True])
def test_trust_changes_group_each_changed_authors_runs_once(tmp_path, background: bool,
                                                          monkeypatch) -> None:
    """After a full computation no author's runs are grouped: each change of trust groups those
    of its changed authors not grouped yet (at the held sums' mark, when some are held) and
    keeps them, and every author's are grouped in the background (here either left to finish
    before the next change, or not started: the changes then keep grouping their authors').
    Rows, ranking and verdicts equal fresh computations and the Python pass at each step, runs
    arriving in between included."""
    if not background:
        monkeypatch.setattr(evidence_inc._Grouped, "start", lambda self, group: None)
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, 5)
        keys = [k.peer_id for k in world.keys]
        facts, params = sanity.TrackFacts({HARNESS: BUDGET, SIM: None}), stats.GateParams()
        steps = [frozenset({keys[0], keys[2]}), frozenset({keys[1], keys[3], keys[4]}),
                 frozenset({keys[0], keys[2]})]
        for track in (HARNESS, SIM):
            held = Verdicts(store, track, roots, facts, params)
            _same_verdicts(held, held)
            grouped = held.agg._grouped_runs
            assert grouped.sums is None
            covered: set[str] = set()
            for n, new_roots in enumerate(steps):
                if n == 1:
                    _more(world, n)                            # runs arrive with the change
                v = Verdicts(store, track, new_roots, facts, params, base=held)
                before = grouped.sums
                fresh = Verdicts(store, track, new_roots, facts, params)
                _same_aggregates(v.agg, fresh.agg)
                _same_verdicts(v, fresh)
                _same_verdicts(v, ReferenceVerdicts(store, track, new_roots, facts, params))
                assert v.agg._grouped_runs is grouped           # one holder along the line
                covered |= set(v.agg.trusted) ^ set(held.agg.trusted)
                grouped.wait()
                if background:                 # every author's, grouped once
                    assert grouped.sums is not None and grouped.sums.covered is None
                    assert n == 0 or grouped.sums is before
                else:
                    assert grouped.sums is not None and grouped.sums.covered == covered
                    if before is not None:
                        assert grouped.sums.mark == before.mark  # grouped at the held mark
                    if n == 2:                                 # every changed author held
                        assert grouped.sums is before
                held = v


def test_author_sums_merged_keep_each_authors_runs() -> None:
    """Sums of other authors merged in (one of them in Python integers) leave every author's
    slices as they were."""
    index = config_rows.Index(["a", "b", "c"])
    first = author_sums.AuthorSums.of([("x", ["a", "c"], [5, 7], [1, 2])], 10, index,
                                      frozenset({"x", "w"}))
    big = 2**70
    more = author_sums.AuthorSums(10, index, np.array([1], dtype=np.int32),
                                  np.array([big], dtype=object), np.array([3], dtype=np.int32),
                                  {"y": (0, 1)}, frozenset({"y", "z"}))
    both = first.merged(more)
    assert both.covered == {"x", "w", "y", "z"} and both.missing(["x", "v", "z"]) == ["v"]
    assert [list(map(int, a)) for a in both.of_author("x")] == [[0, 2], [5, 7], [1, 2]]
    assert [list(map(int, a)) for a in both.of_author("y")] == [[1], [big], [3]]
    assert all(len(a) == 0 for a in both.of_author("w"))


def _by_author(sums: author_sums.AuthorSums, authors: list[str]) -> dict[str, list]:
    """Each author's pairs as sorted (config hash, sum, count) triples."""
    out = {}
    for a in authors:
        positions, totals, counts = sums.of_author(a)
        out[a] = sorted((sums.index.hashes[int(p)], int(s), int(n))
                        for p, s, n in zip(positions, totals, counts))
    return out


def test_author_runs_grouped_as_arrow_equal_the_grouped_lists(tmp_path) -> None:
    """Every author's runs (and some authors' only) grouped through Arrow arrays (a Store's
    `query_arrow`) equal the same pairs fetched as Python lists: configs missing from the index
    are added, an author without runs has none."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, 8)
        facts = sanity.TrackFacts({HARNESS: BUDGET, SIM: None})
        for track in (HARNESS, SIM):
            agg = Verdicts(store, track, roots, facts, stats.GateParams()).agg
            rows = agg._table().rows
            some = [k.peer_id for k in world.keys[:3]] + ["nobody"]
            for authors in (None, some):
                arrow = agg._grouped(agg.mark, rows, authors)
                src = evidence_sql.sane_runs(store, facts, track, evidence_inc._COLUMNS,
                                             (0, agg.mark), authors=authors, keyed=True)
                listed = author_sums.AuthorSums.of(store.query(evidence_inc._BY_AUTHOR.format(
                    src=src.source, sum=evidence_inc._SMALL_SUM), src.params).rows,
                    agg.mark, config_rows.Index(rows.index.hashes[:1]), arrow.covered)
                everyone = [a for k in world.keys for a in (k.peer_id, f"{k.peer_id}#cuda")]
                everyone.append("nobody")
                assert _by_author(arrow, everyone) == _by_author(listed, everyone)
                assert arrow.covered == (None if authors is None else frozenset(some))
                assert arrow._sums.dtype == np.int64 and arrow._positions.dtype == np.int32
            empty = store.query_arrow("SELECT 'a' AS author, 'c' AS config_hash, 1 AS s, "
                                      "1 AS n WHERE false")
            none = author_sums.AuthorSums.of_table(empty, agg.mark, rows.index)
            assert all(len(a) == 0 for a in none.of_author("a"))


@pytest.mark.parametrize("seed", [7])
def test_trust_change_from_runs_grouped_at_a_later_mark_in_python_integers(
        tmp_path, seed: int, monkeypatch) -> None:
    """A change of trust moves the rows by the changed authors' runs as grouped once for every
    author (roles/author_sums.py) at some mark; grouped at a later mark than the moved table's,
    the runs stored in between are taken back off. With config_rows.SAFE_N at 1 every sum is a
    Python integer (the path of a config with more runs than an int64 sum allows). Rows, ranking
    and verdicts equal fresh ones and the Python pass."""
    monkeypatch.setattr(config_rows, "SAFE_N", 1)
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, seed)
        keys = [k.peer_id for k in world.keys]
        facts, params = sanity.TrackFacts({HARNESS: BUDGET, SIM: None}), stats.GateParams()
        new_roots = frozenset({keys[0], keys[3]})
        held = {t: Verdicts(store, t, roots, facts, params) for t in (HARNESS, SIM)}
        for v in held.values():
            assert v.agg._table().rows.values.dtype == object
        stored = len(world.runs)
        _more(world, 0)
        for track in (HARNESS, SIM):
            v = Verdicts(store, track, new_roots, facts, params, base=held[track])
            grouped = v.agg._grouped(v.agg.mark, held[track].agg._table().rows)
            v.agg._grouped_runs.sums = grouped     # as of a later mark than the table moved
            changed = set(v.agg.trusted) ^ set(held[track].agg.trusted)
            assert grouped.mark > held[track].agg.mark
            assert any(r.author in changed and r.body.track == track
                       for r in world.runs[stored:])       # some of their runs come back off
            fresh = Verdicts(store, track, new_roots, facts, params)
            _same_aggregates(v.agg, fresh.agg)
            _same_verdicts(v, fresh)
            _same_verdicts(v, ReferenceVerdicts(store, track, new_roots, facts, params))
            assert v.agg._grouped_runs.sums is grouped      # used, not grouped again


def _replay(w: World, replayer: Keypair, author: str, off: float) -> None:
    """`replayer` replays three sane finished runs of `author` that nobody replayed (off by
    `off`: 0 matches); three, as a run (the replay too) may come out insane."""
    replayed = {r.body.ref for r in w.runs if r.body.purpose == "replay"}
    targets = [r for r in w.runs if r.author == author and r.body.status == "ok"
               and r.body.purpose != "replay" and r.id not in replayed
               and r.body.metrics.val_bpb is not None and r.body.metrics.mfu == 0.05
               and r.body.metrics.val_bpb < 9 and r.body.metrics.tokens != 10
               and r.body.metrics.steps != 7]
    for target in targets[:3]:
        w.run(replayer, target.body.track, "replay", target.id, config=target.body.config,
              seed=target.body.seed, bpb=round(target.body.metrics.val_bpb + off, 6),
              accelerator=target.body.hardware.accelerator)


@pytest.mark.parametrize("seed", [5, 6])
def test_trust_changes_by_replays_and_pins_between_unranked_states(tmp_path, seed: int) -> None:
    """Trust changed by a root's contradicting replay (an author distrusted), a root's matching
    replay (one trusted), a pin and an unpin, with runs arriving, and with states asked only for
    the overview's aggregates (newest runs, baseline tally) in between: every later state moves
    on from the last ranked one in one step (no full computation), and equals fresh verdicts and
    the Python pass."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, seed)
        root, pinned, *others = world.keys
        facts, params = sanity.TrackFacts({HARNESS: BUDGET, SIM: None}), stats.GateParams()
        held = {t: Verdicts(store, t, roots, facts, params) for t in (HARNESS, SIM)}
        for v in held.values():
            _same_verdicts(v, v)
        before = verdicts.trust_state(store, roots, facts)
        victim = next(a for a in sorted(before.authors) if a not in roots
                      and before.standing(a).status == "trusted")
        newcomer = next(k for k in others if before.standing(k.peer_id).status == "untrusted")
        steps = [lambda: (_replay(world, root, victim, 0.5), roots)[1],
                 lambda: (_replay(world, root, newcomer.peer_id, 0.0), roots)[1],
                 lambda: roots | {others[2].peer_id},
                 lambda: roots - {pinned.peer_id}]
        for n, step in enumerate(steps):
            now = step()
            _more(world, 0)
            for track in (HARNESS, SIM):
                v = Verdicts(store, track, now, facts, params, base=held[track])
                assert v.agg._configs.base is not None           # moved on, not recomputed
                fresh = Verdicts(store, track, now, facts, params)
                assert v.newest_finished(25) == fresh.newest_finished(25)
                assert v.newest_counted(25) == fresh.newest_counted(25)
                assert v.baseline_tally() == fresh.baseline_tally()
                if n % 2:                  # else only the overview's aggregates were asked
                    _same_aggregates(v.agg, fresh.agg)
                    _same_verdicts(v, fresh)
                    _same_verdicts(v, ReferenceVerdicts(store, track, now, facts, params))
                v.agg._grouped_runs.wait()     # every author's runs grouped in the background
                held[track] = v
            if n == 0:
                assert verdicts.trust_state(store, now, facts).standing(victim).status \
                    == "distrusted"
            if n == 1:
                assert verdicts.trust_state(store, now, facts).standing(
                    newcomer.peer_id).status == "trusted"
