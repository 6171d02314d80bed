"""This node's own conclusions, for people: the browsing commands and the dashboard.

Verdicts come from sane runs by authors trusted here (roles/verdicts.py), with this home's roots:
its own key and the keys pinned in HOME/trust.json (docs/TRUST.md), and the gate its node last
joined with (`--gate`, `--min-baseline`: HOME/gate.json, swarm/gate_file.py). One `Conclusions`
serves one command or one dashboard request: each track's verdicts are computed once and shared
by every listing drawn from them (roles.verdicts also caches them across requests until the
memory changes).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from memory.leaderboard import base_configs, config_diff
from roles.evidence_sql import AUTHOR_IN

# Strangers' rows per list (untrusted claims, a config's untrusted seeds, a claim's fresh seeds,
# assessments and verifications by authors not trusted here), on the dashboard and in
# `swarm findings --json`: keys are free, and 5,000 such records made the overview take 5 s to
# draw and one claim page 18 s (4.7 MB). Trusted authors' rows are all shown; the newest
# MAX_STRANGERS of the others, and how many were left out.
MAX_STRANGERS = 100


def few_strangers(rows: list[dict[str, Any]], trusted: Any,
                  limit: int = MAX_STRANGERS) -> tuple[list[dict[str, Any]], int]:
    """`rows` (in their order) with every row `trusted(row)` keeps and the newest `limit` (by
    `ts`) of the others; and how many of the others were left out."""
    others = sorted((r for r in rows if not trusted(r)), key=lambda r: r["ts"] or 0, reverse=True)
    kept = {id(r) for r in others[:limit]}
    return [r for r in rows if id(r) in kept or trusted(r)], max(0, len(others) - limit)


def own_peer_id(home: Path) -> str | None:
    """This home's node key, if it has one (browsing never creates one)."""
    from node.home import IDENTITY_FILE
    from node.identity import load_or_create

    return load_or_create(home).peer_id if (home / IDENTITY_FILE).exists() else None


def track_base(bases: dict[str, dict[str, Any]], track: str) -> dict[str, Any] | None:
    """A track's base config: that of its baseline runs (`bases`, from the memory), else the base
    of the built-in track of that name (a memory of `swarm run`s only); None when neither."""
    if track in bases:
        return bases[track]
    from node.harness.tracks import TRACKS

    known = TRACKS.get(track.split(":", 1)[0])
    return known.base.model_dump() if known is not None else None


def add_base_diffs(reader: Any, rows: list[dict[str, Any]]) -> None:
    """Give each row (with `track` and `config`) its `diff` from its track's base config."""
    bases = base_configs(reader)
    for row in rows:
        row["diff"] = config_diff(row.get("config"), track_base(bases, row["track"]))


def home_roots(home: Path) -> frozenset[str]:
    """The home's trust roots: its own key and the pinned keys."""
    from roles import trust

    me = own_peer_id(home)
    return frozenset(trust.load_pins(home)) | ({me} if me else set())


def _config(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None where undefined)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, (sum((x - mean) ** 2 for x in values) / (len(values) - 1)) ** 0.5


class Conclusions:
    """What this home's node concludes from `reader`'s memory (one per command or request)."""

    def __init__(self, reader: Any, home: Path | None) -> None:
        from node.home import resolve_home
        from swarm.gate_file import load_gate

        self.reader, self.home = reader, resolve_home(home)
        self.roots = home_roots(self.home)
        self.params = load_gate(self.home)      # the gate its node last joined with (--gate)
        self._verdicts: dict[str | None, dict[str, Any]] = {}
        self._trust: Any = None

    def verdicts(self, track: str | None = None) -> dict[str, Any]:
        """track id -> `roles.verdicts.Verdicts`, for every track or one (an id or a name)."""
        from roles import verdicts

        if track not in self._verdicts:
            self._verdicts[track] = verdicts.all_tracks(self.reader, self.roots, track,
                                                          self.params)
        return self._verdicts[track]

    def track(self, track: str) -> Any:
        """The verdicts of one track id (None when it has no runs)."""
        return self.verdicts(track).get(track)

    def trust_state(self) -> Any:
        """`roles.trust.TrustState` over the whole memory, with this home's roots."""
        from roles import verdicts

        if self._trust is None:
            self._trust = verdicts.trust_state(self.reader, self.roots,
                                               verdicts.cli_facts(self.reader))
        return self._trust

    def trusted_authors(self) -> list[str]:
        """The keys whose records count here: the roots and the authors trusted by earned trust."""
        from roles import verdicts

        return verdicts.trusted_authors(self.roots, self.trust_state())

    def newest_findings(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        """The newest finding per track (of the tracks `where` matches) by an author trusted
        here; where no trusted author has one, the newest by anyone, `trusted: false`. A finding
        is its author's testimony: a stranger's newer one must not hide a trusted one."""
        result = self.reader.query(
            "SELECT id, author, ts, track, title, text, effects, refs, "
            f"{AUTHOR_IN} AS trusted FROM findings WHERE {where} "
            f"QUALIFY row_number() OVER (PARTITION BY track ORDER BY {AUTHOR_IN} DESC, ts DESC, "
            "id) = 1 ORDER BY ts DESC, id", [self.trusted_authors(), *params,
                                             self.trusted_authors()])
        return [{c: _config(v) if c in ("effects", "refs") else v
                 for c, v in zip(result.columns, row)} for row in result.rows]

    def judgements(self, run_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The `judgement` records of run `run_id` (equivocators' left out), trusted judges' first,
        then oldest first, at most `limit` (any key may judge a run), each marked `trusted` here or
        not: testimony. Trusted first: `ts` is the author's word, and 20 strangers' judgements
        stamped in 1970 hid every trusted judge's."""
        trust = self.trust_state()
        judges = sorted(trust.roots | {a for a, t in trust.authors.items() if trust.trusted(a)})
        result = self.reader.query(
            "SELECT id, author, ts, judge, rubric, scores, reason FROM judgements WHERE run = ? "
            "AND author NOT IN (SELECT author FROM equivocations) "
            "ORDER BY list_contains(?, author) DESC, ts, id LIMIT ?", [run_id, judges, limit])
        rows = [dict(zip(result.columns, row)) for row in result.rows]
        return [{**r, "scores": _config(r["scores"]), "trusted": trust.trusted(r["author"])}
                for r in rows]

    def leaderboard_rows(self, track: str | None, limit: int) -> list[dict[str, Any]]:
        """`swarm leaderboard --json`: configs ranked by the mean of their trusted, sane runs;
        configs with untrusted runs only follow, marked `trusted: false`, unranked."""
        out = []
        for name, v in self.verdicts(track).items():
            for row in v.leaderboard(limit):
                runs = (v.config_runs(row["config_hash"]) if row["trusted"]
                        else v.untrusted_runs(row["config_hash"]))
                values = [float(r["val_bpb"]) for r in runs]
                out.append({**row, "track": name, "std": _spread(values)[1],
                            "seeds": len({r["seed"] for r in runs}),
                            "authors": len({r["author"] for r in runs}),
                            "best": min(values) if values else None,
                            "config": _config(v.config_rows(row["config_hash"])[0]["config"])})
        add_base_diffs(self.reader, out)
        return out

    def claim_rows(self, track: str | None) -> list[dict[str, Any]]:
        """Every claim with this node's status, newest first; `trusted` says if its author counts
        (`swarm findings --json` splits them into `claims` and `untrusted_claims`)."""
        rows = []
        now = int(time.time() * 1000)
        for name, v in self.verdicts(track).items():
            for c in v.claims:
                status = "stale" if v.stale(c, now) else c.status
                rows.append({**c.as_row(), "claim": c.id, "track": name, "status": status,
                             "counted": c.counted, "excluded": c.excluded})
        return sorted(rows, key=lambda r: (-r["ts"], r["claim"]))

    def explain(self, record: Any) -> dict[str, Any] | None:
        """For `swarm show` and the dashboard: which evidence counted here and which did not, and
        why (claims and runs); None for other kinds."""
        if record.kind == "claim":
            for row in self.claim_rows(record.body.track):
                if row["claim"] == record.id:
                    keep = ("status", "trusted", "reason", "p_value", "q_value", "counted",
                            "excluded")
                    return {k: row[k] for k in keep}
        if record.kind == "run":
            v = self.track(record.body.track)
            if v is not None:
                why = v.why_not(record.id)
                return {"counts": why is None, "why_not": why,
                        "replay_outcome": v.trust.run_outcome.get(record.id)}
        return None

    def authors(self) -> list[dict[str, Any]]:
        """`swarm trust --json`: authors with their trust here, why, influence, and pin."""
        from roles import evidence_sql, trust, verdicts

        runs = evidence_sql.sane_counts(self.reader, verdicts.cli_facts(self.reader))
        pins = trust.load_pins(self.home)
        rows = trust.listing(self.trust_state(), runs)
        for row in rows:
            pinned = pins.get(row["author"])
            row["pinned"] = None if pinned is None else {
                k: pinned.get(k) for k in ("note", "source")}
        return rows
