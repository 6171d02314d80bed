"""The leaderboard as people and programs read it: ranked configs with their knobs and support.

Per track, `ORDER BY mean, config_hash LIMIT n` over `seed_stats` (DuckDB's top-N operator),
then config, distinct seeds and distinct authors for just the rows returned. This gives the same
ranks as the `leaderboard` view, whose window function ranks every config: at a million runs the
window and the distinct counts would each cost more than the aggregation itself.
"""
from __future__ import annotations

import json
from typing import Any

from memory import views
from memory.store import Reader

_RANKED = """
    SELECT s.track, s.config_hash, s.mean, s.std, s.n, s.best
    FROM seed_stats s WHERE s.track = ? ORDER BY s.mean, s.config_hash LIMIT ?"""
_SUPPORT = """
    SELECT track, config_hash, any_value(config), count(DISTINCT seed), count(DISTINCT author)
    FROM valid_runs WHERE status = 'ok' AND val_bpb IS NOT NULL AND config_hash IN ({marks})
    GROUP BY ALL"""


def top(reader: Reader, track: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The best `limit` configs of each track, best first, ranks from 1.

    `track` keeps one track id, or every id of a track name (`tinystories-cpu` matches
    `tinystories-cpu:<hash>` at every budget)."""
    tracks = [t for (t,) in reader.query("SELECT DISTINCT track FROM valid_runs ORDER BY track").rows
              if track is None or track in (t, t.split(":", 1)[0])]
    rows: list[dict[str, Any]] = []
    for name in tracks:
        ranked = reader.query(_RANKED, [name, limit])
        rows += [{"rank": i, **dict(zip(ranked.columns, row))} for i, row in enumerate(ranked.rows, 1)]
    if rows:
        _add_support(reader, rows)
        add_diffs(reader, rows)
    return rows


def base_configs(reader: Reader) -> dict[str, dict[str, Any]]:
    """Each track's base config: the config of its baseline runs."""
    found = views.base_config_texts(reader)
    return {t: json.loads(c) if isinstance(c, str) else (c or {}) for t, c in found.items()}


def config_diff(config: dict[str, Any] | None, base: dict[str, Any] | None) -> dict[str, Any]:
    """The knobs of `config` that differ from `base` (all of them when there is no base)."""
    if base is None:
        return dict(config or {})
    return {k: v for k, v in (config or {}).items() if base.get(k) != v}


def add_diffs(reader: Reader, rows: list[dict[str, Any]]) -> None:
    """Give each row (with `track` and `config`) its `diff` from the track's base config."""
    bases = base_configs(reader)
    for row in rows:
        row["diff"] = config_diff(row.get("config"), bases.get(row["track"]))


def _add_support(reader: Reader, rows: list[dict[str, Any]]) -> None:
    hashes = [r["config_hash"] for r in rows]
    support = reader.query(_SUPPORT.format(marks=", ".join("?" for _ in hashes)), hashes)
    extra = {(t, h): {"config": json.loads(c) if isinstance(c, str) else c, "seeds": s, "authors": a}
             for t, h, c, s, a in support.rows}
    verified = {(t, h) for t, h in reader.query(
        "SELECT DISTINCT track, candidate_hash FROM claim_status WHERE status = 'verified'").rows}
    for row in rows:
        row.update(extra.get((row["track"], row["config_hash"]), {}))
        row["verified"] = (row["track"], row["config_hash"]) in verified
