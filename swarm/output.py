"""How commands print: a rich table for people, JSON for programs, one-line errors for both."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from swarm.invisible import visible

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error (no traceback) and exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if type(value).__name__ == "Decimal":
        return float(value)
    return value


def print_json(value: Any) -> None:
    """Write `value` as JSON to stdout (bytes as hex, decimals as floats)."""
    sys.stdout.write(json.dumps(_plain(value), indent=2, default=str) + "\n")


def plain_text(value: str, style: str = "") -> Text:
    """Text from a record (any author's) as rich shows it: never markup, no control or invisible
    characters (swarm/invisible.py)."""
    return Text(visible(value), style=style)


def _cell(value: Any, width: int = 48) -> Text:
    if value is None:
        return Text("")
    if isinstance(value, float):
        return Text(f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}")
    text = _plain(value)
    text = text if isinstance(text, str) else json.dumps(text, default=str)
    return plain_text(text if len(text) <= width else text[: width - 1] + "…")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                empty: str = "nothing yet", cell_width: int = 48) -> None:
    """Print rows as a rich table, or `empty` when there are none; cells longer than `cell_width`
    characters are cut (a table of fields and values passes more, so ids and addresses stay whole)."""
    if not rows:
        console.print(f"[dim]{title}: {empty}[/]")
        return
    # at least as wide as its title, so a narrow table's title is not broken over lines
    table = Table(title=title, title_justify="left", header_style="bold", min_width=len(title))
    for i, name in enumerate(columns):
        # Ids, times and numbers never break across lines; the last column (free text) folds.
        last = i == len(columns) - 1
        table.add_column(name, overflow="fold" if last else "ellipsis", no_wrap=not last)
    for row in rows:
        table.add_row(*(_cell(v, cell_width) for v in row))
    console.print(table)


def short_id(value: Any, n: int = 8) -> str:
    """The first `n` characters of an id (like git's short hashes); '' for None."""
    return "" if value is None else str(value)[:n]


def when(ts_ms: int | None) -> str:
    """A compact UTC time for tables: `MM-DD HH:MM` (the year only when it is not this one)."""
    if ts_ms is None:
        return ""
    import datetime as dt
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, dt.timezone.utc)
    this_year = moment.year == dt.datetime.now(dt.timezone.utc).year
    return moment.strftime("%m-%d %H:%M" if this_year else "%Y-%m-%d")


def track_labels(track_ids: Sequence[str]) -> dict[str, str]:
    """Short labels for track ids (`name:hash`): the name where only one id has it, else name:hash8."""
    names: dict[str, int] = {}
    for track in set(track_ids):
        names[track.split(":", 1)[0]] = names.get(track.split(":", 1)[0], 0) + 1
    return {t: (name if names[name] == 1 else f"{name}:{rest[:8]}")
            for t in set(track_ids) for name, _, rest in [t.partition(":")]}
