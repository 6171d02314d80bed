"""The roots' own runs of the configs whose replays across hardware await their bound
(`trust.cross_bounds`), kept per reader and roots as runs arrive.

Trust is asked after every write, and while any replay across hardware is more than a match off
its run, its verdict rests on the roots' runs of that config. One query for them filters every
run (12-88 ms at 100,000 runs on the loaded 2-core machine, 2026-12-02). `RootRuns` reads a
config's roots' runs once, when a replay first opens it, then moves on by the runs stored since
its mark (a rowid range, as roles/replays_inc.py does). A new equivocation means a full read.
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
    """The finished runs by `roots` below `mark` of the config hashes held, as of `equivocated`."""

    roots: tuple[str, ...]
    mark: int
    equivocated: int
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)    # config hash -> runs

    def moved(self, reader: Any, hashes: set[str], upto: int, equivocated: int) -> RootRuns:
        """These roots' runs of the hashes held and of `hashes`, below `upto`: the runs stored
        since the mark for the hashes held, every one for the others."""
        if equivocated != self.equivocated or upto < self.mark:
            return RootRuns(self.roots, upto, equivocated).moved(reader, hashes, upto, equivocated)
        out = RootRuns(self.roots, upto, equivocated, {h: list(r) for h, r in self.rows.items()})
        for hashes_, since in ((sorted(self.rows), self.mark), (sorted(hashes - set(self.rows)), 0)):
            if not hashes_ or since >= upto:
                continue
            out.rows.update((h, out.rows.get(h, [])) for h in hashes_)
            result = reader.query(_QUERY, [list(self.roots), hashes_, since, upto])
            for row in (dict(zip(result.columns, r)) for r in result.rows):
                out.rows[row["config_hash"]].append(row)
        return out

    def bounds(self, compared: list[trust.Compared], facts: sanity.TrackFacts
               ) -> dict[tuple[str, str], float]:
        """`trust.cross_bounds` from the runs held (of every config `compared` opens)."""
        configs = trust.open_configs(compared, self.roots)
        rows = [r for h in sorted({h for _, h in configs}) for r in self.rows.get(h, [])]
        return trust.bounds_from(rows, configs, facts)
