"""The roots' own runs of the configs whose replays across hardware await their bound
(`trust.cross_bounds`), kept per reader, roots and track facts as runs arrive.

Trust is asked after every write, and while any replay across hardware is more than a match off
its run, its verdict rests on the roots' runs of that config. One query for them filters every
run (12-88 ms at 100,000 runs on the loaded 2-core machine, 2026-12-02). `RootRuns` reads a
config's roots' runs once, when a replay first opens it, then moves on by the runs stored since
its mark (a rowid range, as roles/replays_inc.py does), and recomputes a config's bound only when
a run of it arrived. A new equivocation means a full read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roles import sanity, trust

_VALID = "author NOT IN (SELECT author FROM equivocations)"      # valid_runs' filter
_QUERY = (f"SELECT {', '.join(trust.ROOT_RUN_COLUMNS)} FROM runs WHERE {_VALID} "
          "AND status = 'ok' AND author IN (SELECT unnest(?::VARCHAR[])) "
          "AND config_hash IN (SELECT unnest(?::VARCHAR[])) AND rowid >= ? AND rowid < ?")


@dataclass
class RootRuns:
    """The sane finished runs by `roots` below `mark` of the config hashes held, as (seed,
    val_bpb) per config (`trust.root_values`), as of `equivocated`."""

    roots: tuple[str, ...]
    facts: sanity.TrackFacts
    mark: int = 0
    equivocated: int = -1
    hashes: set[str] = field(default_factory=set)
    values: dict[tuple[str, str], set[tuple[Any, float]]] = field(default_factory=dict)
    _bounds: dict[tuple[str, str], float] = field(default_factory=dict)

    def move(self, reader: Any, hashes: set[str], upto: int, equivocated: int) -> None:
        """Hold these roots' runs of the hashes held and of `hashes` below `upto`: the runs stored
        since the mark for the hashes held, every one for the others (all of them again after a
        new equivocation)."""
        if equivocated != self.equivocated or upto < self.mark:
            self.hashes, self.values, self._bounds = set(), {}, {}
            self.mark, self.equivocated = upto, equivocated
        for held, since in ((sorted(self.hashes), self.mark), (sorted(hashes - self.hashes), 0)):
            if held and since < upto:
                self._add(reader.query(_QUERY, [list(self.roots), held, since, upto]))
        self.hashes |= hashes
        self.mark = upto

    def _add(self, result: Any) -> None:
        rows = [dict(zip(result.columns, r)) for r in result.rows]
        for config, values in trust.root_values(rows, self.facts).items():
            self.values.setdefault(config, set()).update(values)
            self._bounds.pop(config, None)

    def bounds(self, configs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """`trust.cross_bounds` of `configs` (held) from the runs held."""
        for c in configs:
            if c not in self._bounds:
                self._bounds[c] = trust.bound_of(self.values.get(c, set()))
        return {c: self._bounds[c] for c in configs}
