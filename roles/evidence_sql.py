"""The sanity bounds and trust as SQL over one track's runs, for verdicts at a million runs.

`roles/sanity.py` says, run by run in Python, why a run is impossible; this module states the same
bounds as DuckDB predicates so the aggregates a leaderboard needs (per config: first counted run
per seed, their mean) are computed next to the data instead of in a Python pass over every run.
The two must agree run for run: tests/roles/test_verdicts_sql.py checks them against each other
on randomized stores, insane runs included.

The one bound SQL cannot state, "the harness accepts this config", is decided in Python once per
distinct config of a track whose budget is known (memoised by config text in `sanity`), and enters
the query as a list of accepted config hashes with their tokens per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roles import sanity
from roles.trust import RUN_KEY_SQL

# The `ok` run's val_bpb bounds, the unfinished run's missing val_bpb, mfu in [0, 1]: sanity.py's
# _bpb_reason and _mfu_reason, clause for clause.
_SANE = f"""
    (CASE WHEN r.status = 'ok'
          THEN r.val_bpb IS NOT NULL AND isfinite(r.val_bpb) AND r.val_bpb > 0
               AND r.val_bpb <= {sanity.MAX_BPB}
          ELSE r.val_bpb IS NULL END)
    AND (r.mfu IS NULL OR (isfinite(r.mfu) AND r.mfu >= 0 AND r.mfu <= 1))"""
# A known budget: the harness accepts the config (it has a tokens-per-step), tokens and steps are
# there, and a finished run trained the budget in whole steps (sanity._budget_reason).
_BUDGET = """
    AND h.tps IS NOT NULL AND r.tokens IS NOT NULL AND r.steps IS NOT NULL
    AND (r.status IS DISTINCT FROM 'ok'
         OR (r.tokens = CAST(r.steps AS HUGEINT) * h.tps AND r.steps = CAST(? AS BIGINT) // h.tps))"""


@dataclass(frozen=True)
class Sane:
    """SQL for one track's runs with a `sane` column: `FROM {source}` binds `params` first."""

    source: str
    params: list[Any]


def sane_runs(reader: Any, facts: sanity.TrackFacts, track: str, columns: str = "r.*",
              rows: tuple[int, int] | None = None, configs: list[str] | None = None,
              accepted: tuple[list[str], list[int]] | None = None,
              authors: list[str] | None = None, keyed: bool = False) -> Sane:
    """A subquery of the track's valid runs (`columns` of `r`), each with `sane`: true when
    `sanity.reason` would find nothing wrong with it. `keyed`: `r.author` in `columns` and
    `authors` is the run's key (roles/trust.py `run_key`: whose trust the run counts under).

    `rows` keeps the runs whose rowid is in [lo, hi) (the `runs` table is insert-only: rowids
    count up in the order runs were stored, so a range is "what arrived between two looks");
    `configs` keeps the runs of those config hashes, `authors` those of these authors. They serve
    roles/evidence_inc.py, which may also pass `accepted`: `accepted_configs` of these runs'
    configs, known from other runs."""
    budget = facts.budgets.get(track)
    where, params = _bounds(track, rows, configs, authors, keyed)
    columns = _keyed(columns) if keyed else columns
    if not facts.knows(track):
        return Sane(f"(SELECT {columns}, false AS sane FROM runs r WHERE {where})", params)
    if budget is None:
        return Sane(f"(SELECT {columns}, ({_SANE}) AS sane FROM runs r WHERE {where})", params)
    hashes, tps = accepted or accepted_configs(reader, track, configs, rows, authors, keyed)
    return Sane(f"""(SELECT {columns}, coalesce(({_SANE} {_BUDGET}), false) AS sane
        FROM runs r LEFT JOIN (SELECT unnest(?::VARCHAR[]) AS hash,
                                      unnest(?::BIGINT[]) AS tps) h ON h.hash = r.config_hash
        WHERE {where})""", [budget, hashes, tps, *params])


def _keyed(columns: str) -> str:
    """`columns` with `r.author` as the run's key (`sane_runs`)."""
    assert "r.*" not in columns, "a keyed source names its columns"
    return columns.replace("r.author", f"{RUN_KEY_SQL} AS author")


def _bounds(track: str, rows: tuple[int, int] | None, configs: list[str] | None,
            authors: list[str] | None = None, keyed: bool = False) -> tuple[str, list[Any]]:
    """The WHERE clause of `sane_runs` over `runs r` (valid_runs' equivocation filter included)."""
    where = "r.track = ? AND r.author NOT IN (SELECT author FROM equivocations)"
    params: list[Any] = [track]
    if authors is not None:            # first: DuckDB then reads the other columns of few rows
        who = RUN_KEY_SQL if keyed else "r.author"
        where = f"{who} IN (SELECT unnest(?::VARCHAR[])) AND " + where
        params.insert(0, authors)
    if rows is not None:
        where += " AND r.rowid >= ? AND r.rowid < ?"
        params += list(rows)
    if configs is not None:
        where += " AND r.config_hash IN (SELECT unnest(?::VARCHAR[]))"
        params.append(configs)
    return where, params


def plain_runs(track: str, columns: str, rows: tuple[int, int] | None = None,
               configs: list[str] | None = None, keyed: bool = False) -> Sane:
    """`sane_runs` without the `sane` column (nothing read to judge configs)."""
    where, params = _bounds(track, rows, configs)
    columns = _keyed(columns) if keyed else columns
    return Sane(f"(SELECT {columns} FROM runs r WHERE {where})", params)


def accepted_configs(reader: Any, track: str, configs: list[str] | None = None,
                     rows: tuple[int, int] | None = None, authors: list[str] | None = None,
                     keyed: bool = False) -> tuple[list[str], list[int]]:
    """The track's config hashes the harness accepts (of `configs` only, when given; of the runs
    with rowids in `rows`, or by `authors`, when given), with their tokens per step (`keyed`:
    `authors` are run keys, `sane_runs`)."""
    where, params = _bounds(track, rows, configs, authors, keyed)
    result = reader.query(f"SELECT config_hash, any_value(config) FROM runs r WHERE {where} "
                          "GROUP BY config_hash", params)
    hashes, tps = [], []
    for chash, config in result.rows:
        cfg, _ = sanity.harness_config(config)
        if cfg is not None:
            hashes.append(chash)
            tps.append(cfg.tokens_per_step)
    return hashes, tps


# A predicate on `author` for a list parameter (a semi-join: fast over a million runs).
AUTHOR_IN = "author IN (SELECT unnest(?::VARCHAR[]))"
# The same on a run `r`'s key (roles/trust.py `run_key`) for the list of run keys that count.
RUN_IN = f"{RUN_KEY_SQL} IN (SELECT unnest(?::VARCHAR[]))"


def sane_counts(reader: Any, facts: sanity.TrackFacts) -> dict[str, int]:
    """Author -> how many sane finished runs of theirs the memory holds (every track in `facts`)."""
    out: dict[str, int] = {}
    for track in sorted(facts.budgets):
        src = sane_runs(reader, facts, track, "r.author, r.status")
        for author, n in reader.query(f"SELECT author, count(*) FROM {src.source} WHERE sane "
                                      "AND status = 'ok' GROUP BY author", src.params).rows:
            out[author] = out.get(author, 0) + n
    return out
