"""Every replay in the memory joined with the run it replays, kept per reader as runs arrive.

Trust (roles/trust.py) is computed from the replays compared with their targets. Reading them
with `trust.load_replays` joins the replays with their targets over every run (a few hundred ms at
a million runs); a node's trust moves when a replay arrives, which would make that the first
request's cost after every replay. `Replays` reads them once (the replays by their `purpose`, their
targets by id) and then moves on by the runs stored since its mark: new replays and late targets
of replays held (a rowid range). Targets are found by the `records` key's index and their rows
built from their records (roles/run_rows.py: ~15 ms for 400 targets at a million runs, where an
`id IN (...)` over every run took ~90 ms, the most of a full read).
`load` gives the same list as `trust.load_replays` (tests/roles/test_verdicts_sql.py checks it).
A comparison is kept as the two rows give it (`trust.Compared`): across hardware its verdict rests
on a bound the roots' runs of the config set (`trust.cross_bounds`), applied when trust is computed,
so a comparison cached before those runs arrived is not stale.
A new equivocation (runs leave `valid_runs`) means a full read.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from roles import run_rows, sanity, trust

_COLUMNS = ("id, author, ts, track, config_hash, config, seed, status, val_bpb, tokens, steps, "
            "mfu, accelerator, device_name, cores, software, ref, purpose")
_VALID = "author NOT IN (SELECT author FROM equivocations)"
_NAMES = [c.strip() for c in _COLUMNS.split(",")]
_VERSIONS = itertools.count(1)         # unique across readers and full reads


def _rows(reader: Any, where: str, params: list[Any]) -> list[dict[str, Any]]:
    result = reader.query(f"SELECT {_COLUMNS} FROM runs WHERE {_VALID} AND ({where})", params)
    return [dict(zip(result.columns, r)) for r in result.rows]


@dataclass
class Replays:
    """The valid replays below `mark` with their targets (when held), as of `equivocated`."""

    mark: int
    equivocated: int
    replays: dict[str, dict[str, Any]] = field(default_factory=dict)      # id -> replay row
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)      # id -> target row
    version: int = 0                   # new whenever the pairs change (trust is kept until then)
    _compared: dict[tuple[str, str], trust.Compared | None] = field(default_factory=dict)

    @classmethod
    def read(cls, reader: Any, upto: int, equivocated: int) -> Replays:
        """Every replay below `upto` and its target (two queries: the replays by purpose, the
        targets by id)."""
        out = cls(upto, equivocated, version=next(_VERSIONS))
        out._add(_rows(reader, "purpose = 'replay' AND rowid < ?", [upto]), reader, upto)
        return out

    def moved(self, reader: Any, upto: int) -> Replays:
        """These replays as of `upto` (> mark): the runs stored since that are replays or the
        targets of replays held."""
        out = Replays(upto, self.equivocated, dict(self.replays), dict(self.targets), self.version,
                      self._compared)
        missing = sorted({r["ref"] for r in self.replays.values() if r["ref"] is not None}
                         - set(self.targets))
        new = _rows(reader, "rowid >= ? AND rowid < ? AND (purpose = 'replay' OR id IN "
                            "(SELECT unnest(?::VARCHAR[])))", [self.mark, upto, missing])
        late = {r["id"]: r for r in new if r["id"] in set(missing)}
        out.targets.update(late)
        out._add([r for r in new if r["purpose"] == "replay"], reader, upto)
        if late:
            out.version = next(_VERSIONS)
        return out

    def _add(self, replays: list[dict[str, Any]], reader: Any, upto: int) -> None:
        if not replays:
            return
        self.replays.update((r["id"], r) for r in replays)
        refs = sorted({r["ref"] for r in replays if r["ref"] is not None} - set(self.targets))
        if refs:
            self.targets.update((r["id"], r) for r in _targets(reader, refs, upto))
        self.version = next(_VERSIONS)

    def compared(self, facts: sanity.TrackFacts) -> list[trust.Compared]:
        """Every comparable replay, oldest first, before the cross-hardware bounds (which move
        with the roots' runs: `trust.settle` applies them)."""
        out = []
        for replay in sorted(self.replays.values(), key=lambda r: (r["ts"], r["id"])):
            target = self.targets.get(replay["ref"])
            if target is None or target["author"] == replay["author"]:
                continue
            key = (repr(facts), replay["id"])
            if key not in self._compared:      # rows never change: compared once per facts
                self._compared[key] = trust.compare(replay, target, facts)
            if (found := self._compared[key]) is not None:
                out.append(found)
        return out

    def load(self, facts: sanity.TrackFacts,
             bounds: dict[tuple[str, str], float] | None = None) -> list[trust.Replay]:
        """Every replay that says something with these bounds (`trust.load_replays`' list where
        they are its roots' `trust.cross_bounds`; none: `trust.CROSS_HW_REFUTE`)."""
        return trust.settle(self.compared(facts), bounds or {})


def _targets(reader: Any, refs: list[str], upto: int) -> list[dict[str, Any]]:
    """The valid runs below `upto` with these ids: from their records, found by the records'
    key (roles/run_rows.py), less those stored at or past `upto` (arrived since the mark: a
    rowid range of the runs); past run_rows.BY_KEY_MAX of them, by one scan of the runs' ids."""
    if len(refs) > run_rows.BY_KEY_MAX:
        return _rows(reader, "rowid < ? AND id IN (SELECT unnest(?::VARCHAR[]))", [upto, refs])
    rows = run_rows.by_ids(reader, refs, _NAMES)
    if rows:
        late = {i for (i,) in reader.query(
            "SELECT id FROM runs WHERE rowid >= ? AND id IN (SELECT unnest(?::VARCHAR[]))",
            [upto, [r["id"] for r in rows]]).rows}
        rows = [r for r in rows if r["id"] not in late]
    return rows
