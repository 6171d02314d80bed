"""Arbitrary SQL from a user may read, never write. Checked by parsing, before anything runs.

The connection that runs it also has external access off (no files, no network: a plain SELECT could
otherwise read any local file) and extension auto-install/auto-load off.
"""
from __future__ import annotations

import duckdb



class UnsafeQuery(ValueError):
    """The statement is not a single read-only query."""


def check_read_only(sql: str) -> None:
    """Raise `UnsafeQuery` unless `sql` is exactly one SELECT statement.

    EXPLAIN is refused too: `EXPLAIN ANALYZE DELETE ...` parses as EXPLAIN and executes the DELETE.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise UnsafeQuery(f"cannot parse SQL: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise UnsafeQuery(f"expected one statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind != "SELECT":
        raise UnsafeQuery(f"only SELECT queries are allowed, not {kind}")


SAFE_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
