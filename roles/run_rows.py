"""Whole rows of a few runs out of a million: by id from their records, or by a narrow scan for
their rowids, then by rowid.

By id (`by_ids`), the `records` table's key finds them (an index: ~10 ms for 400 ids at a million
runs, where a scan of the runs' ids cost ~90 ms with their other columns, ~40 alone) and each row
is built from the record as the store built its `runs` row.

By config, ref or id over a scan (`matching`, `read`):
A query that filters `runs` by an IN list (or an OR of several) and asks for every column had
DuckDB read every column of every run for the join: ~90 ms of CPU at a million runs for the
claims' runs (their ids, configs and fresh seeds), as much for the replays' targets. Here the
filter scans its own column alone (`rowid, config_hash, id` of the matches: ~25-35 ms at a
million runs), then the other columns are fetched by rowid, less two: the config hash, known from
the scan (fetching a value of that column by rowid decodes its whole vector: 20 ms for 300 runs),
and the config text, which every run of a config shares (its hash is checked against it on
ingest), read once per config from one run's row.
"""
from __future__ import annotations

from typing import Any

from memory import codec, schema

_LIST = "SELECT unnest(?::VARCHAR[])"
_VALID = "author NOT IN (SELECT author FROM equivocations)"      # valid_runs' filter
COLUMNS = ("config_hash", "ref", "id")                           # the columns a scan may match
# Ids per query by the records' key: DuckDB scans the index for an IN list of up to 2,048
# values (`index_scan_max_count`) and only when the key is the sole filter, so the kind and
# the author are checked here.
_BY_KEY = 1000
# Past this many ids, one scan of the runs' ids costs less than the index lookups (~20 ms per
# thousand at a million runs against ~40-90 ms for a scan, whatever the count).
BY_KEY_MAX = 4000


def by_ids(reader: Any, ids: list[str], names: list[str]) -> list[dict[str, Any]]:
    """The valid runs (of any track) with these ids, as dicts of the columns `names`, built from
    their records, by id; ids of other kinds of records, or of none, are left out."""
    ids = sorted(set(ids))
    if not ids:
        return []
    equivocated = {a for (a,) in reader.query("SELECT DISTINCT author FROM equivocations").rows}
    decoded = []
    for lo in range(0, len(ids), _BY_KEY):
        chunk = ids[lo:lo + _BY_KEY]
        for raw, kind, author in reader.query(
                f"SELECT raw, kind, author FROM records WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk).rows:
            if kind == "run" and author not in equivocated:
                # Stored records were checked whole: reading the envelope is enough (no clock).
                found = codec.read_envelope(raw if isinstance(raw, bytes) else bytes.fromhex(raw),
                                            now=2**52)
                if found is not None:
                    decoded.append(found)
    if not decoded:
        return []
    decoded.sort(key=lambda d: d.id)
    return [{k: row[k] for k in names} for row in schema.kind_table("run", decoded).to_pylist()]


def matching(reader: Any, column: str, values: list[str]) -> dict[int, tuple[str, str]]:
    """Rowid -> (config hash, id) of every run (valid or not, of any track) whose `column` is
    one of `values`."""
    assert column in COLUMNS, column                     # the name enters the SQL
    if not values:
        return {}
    rows = reader.query(f"SELECT rowid, config_hash, id FROM runs WHERE {column} IN ({_LIST})",
                        [values]).rows
    return {rowid: (chash, rid) for rowid, chash, rid in rows}


def read(reader: Any, keys: dict[int, str], names: list[str], where: str = "true",
         params: list[Any] | None = None) -> list[dict[str, Any]]:
    """The valid runs with these rowids (rowid -> config hash, as `matching` found them) that
    also match `where`, as dicts of the columns `names` (`config` and `config_hash` among them),
    oldest first (by ts, id)."""
    if not keys:
        return []
    others = ", ".join(c for c in names if c not in ("config", "config_hash"))
    result = reader.query(f"SELECT rowid, {others} FROM runs WHERE rowid IN "
                          f"(SELECT unnest(?::BIGINT[])) AND {_VALID} AND ({where}) "
                          "ORDER BY ts, id", [sorted(keys), *(params or [])])
    one = {keys[row[0]]: row[0] for row in result.rows}       # config hash -> one of its rowids
    texts = {keys[i]: text for i, text in reader.query(
        "SELECT rowid, config FROM runs WHERE rowid IN (SELECT unnest(?::BIGINT[]))",
        [sorted(one.values())]).rows} if one else {}
    fetched = result.columns[1:]
    out = []
    for row in result.rows:
        found = dict(zip(fetched, row[1:]))
        found["config_hash"] = keys[row[0]]
        found["config"] = texts[found["config_hash"]]
        out.append({c: found[c] for c in names})
    return out
