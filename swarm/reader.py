"""Open the memory for browsing: through a running daemon's API, or the file directly (read-only).

Every failure becomes a one-line error for the user (missing home, file held by another process,
bad SQL), never a traceback.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from memory.sqlguard import UnsafeQuery
from memory.store import QueryResult, QueryTimeout, ReadOnlyMemory, Reader, StoreError
from node import api_client
from node.home import memory_path, resolve_home
from node.identity import IdentityError
from swarm.output import fail

# Columns stored as JSON text; --json output parses them back into objects.
JSON_COLUMNS = {"config", "diff", "software", "addrs", "capabilities", "scores", "baseline_runs",
                "candidate_runs", "runs", "effects", "refs"}

# `--track X` keeps track id X, or every id `X:<hash>` of track name X (one per budget); 3 params.
TRACK_MATCH = "(? IS NULL OR track = ? OR split_part(track, ':', 1) = ?)"


def home_folder(home: Path | None) -> Path:
    """The home `--home` / $SWARM_HOME / ~/.swarm names; exits with one line when a file (or
    anything but a folder) is in its place. The home may not exist yet."""
    resolved = resolve_home(home)
    if resolved.exists() and not resolved.is_dir():
        # name where it came from: "--home" confused someone who had only set $SWARM_HOME
        source = ("--home" if home is not None else "$SWARM_HOME" if os.environ.get("SWARM_HOME")
                  else "the home")
        fail(f"{source} {resolved} is not a folder")
    return resolved


@contextmanager
def open_reader(home: Path | None) -> Iterator[Reader]:
    """A reader for `home`'s memory; exits with a clear error when there is none."""
    resolved = home_folder(home)
    client = api_client.connect(resolved)
    if client is not None:
        yield client
        return
    path = memory_path(resolved)
    if not resolved.is_dir():
        fail(f"no swarm home at {resolved} (pass --home DIR, set SWARM_HOME, "
             "or create one with `swarm join` or `swarm memory import FILE`)")
    if not path.exists():
        fail(f"no memory in {resolved} yet (start `swarm join` or run `swarm memory import FILE`)")
    try:
        memory = ReadOnlyMemory(path)
    except StoreError as exc:
        fail(str(exc))
    try:
        yield memory
    finally:
        memory.close()


@contextmanager
def query_errors() -> Iterator[None]:
    """Turn query errors inside the block (and an unusable key in the home) into one-line
    messages and exit code 1."""
    try:
        yield
    except UnsafeQuery as exc:
        fail(str(exc))
    except (duckdb.Error, api_client.QueryRefused) as exc:
        fail(f"SQL error: {str(exc).splitlines()[0]}")
    except QueryTimeout as exc:
        fail(str(exc))
    except api_client.ApiError as exc:
        fail(f"daemon: {exc}")
    except IdentityError as exc:        # the home's key, read for its trust roots
        fail(str(exc))


def run_query(reader: Reader, sql: str, params: Sequence[Any] = (),
              timeout_s: float | None = None) -> QueryResult:
    """`reader.query`, with errors turned into one-line messages."""
    with query_errors():
        return reader.query(sql, params, timeout_s=timeout_s)
    raise AssertionError("unreachable")     # fail() exits


def as_dicts(result: QueryResult) -> list[dict[str, Any]]:
    """Rows as dicts, with JSON columns parsed."""
    out = []
    for row in result.rows:
        item = dict(zip(result.columns, row))
        for key in JSON_COLUMNS.intersection(item):
            if isinstance(item[key], str):
                item[key] = json.loads(item[key])
        out.append(item)
    return out
