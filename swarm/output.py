"""How commands print: a rich table for people, JSON for programs, one-line errors for both."""
from __future__ import annotations

import json
import math
import re
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from memory.invisible import visible

console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """`error: message` on stderr, on one line. The message is plain text, never markup: it often
    quotes what the user typed (`swarm trust add '[/]x'` raised rich's MarkupError)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", plain_text(message)),
                      highlight=False, soft_wrap=True)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 record`, `2 records`, `0 records` (`nouns` when adding an s is not the plural)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error (no traceback) and exit with `code`."""
    print_error(message)
    raise typer.Exit(code)


def progress_bars(*columns: Any, quiet: bool = False) -> Any:
    """Transient rich progress bars on stderr, drawn on a terminal only. Elsewhere (a pipe, a CI
    log, a test) a transient bar shows nothing, and rich's `Progress.stop` then printed an empty
    line: a blank line before the error or the line that followed."""
    from rich.progress import Progress

    return Progress(*columns, console=err_console, transient=True,
                    disable=quiet or not err_console.is_interactive)


def track_progress(items: Iterable[Any], description: str, total: float | None = None,
          quiet: bool = False) -> Iterator[Any]:
    """`items`, with a transient progress bar on stderr while they are consumed (rich's `track`,
    without its empty line off a terminal: `progress_bars`)."""
    from rich.progress import (BarColumn, TaskProgressColumn, TextColumn,
                               TimeRemainingColumn)

    bars = progress_bars(TextColumn("{task.description}", markup=False), BarColumn(),
                         TaskProgressColumn(), TimeRemainingColumn(), quiet=quiet)
    with bars:
        yield from bars.track(items, total=total, description=description)


def check_out_file(path: Path | None, flag: str = "--out") -> None:
    """Stop with one line before any work when `path` cannot be written as a file (its folder is
    missing, or a folder is in its place): a bench must not lose its figures at the end."""
    if path is None:
        return
    if path.is_dir():
        fail(f"{flag} {path} is a folder, not a file")
    if not path.parent.is_dir():
        fail(f"{flag} {path}: {path.parent} is not a folder")


def check_folder(path: Path, flag: str, must_exist: bool = False) -> None:
    """Stop with one line before any work when `path` is not a folder (a file in its place; or,
    with `must_exist`, nothing there)."""
    if path.exists() and not path.is_dir() or must_exist and not path.exists():
        fail(f"{flag} {path} is not a folder")


def write_out_file(path: Path, text: str) -> None:
    """Write `text` to `path`; one line on failure (a disk full, a folder removed meanwhile)."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None             # JSON has no NaN or Infinity (`swarm sql` can compute them)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if type(value).__name__ == "Decimal":
        return _plain(float(value))
    return value


def print_json(value: Any) -> None:
    """Write `value` as JSON to stdout (bytes as hex, decimals as floats, NaN and infinities as
    null: strict parsers such as jq refuse them)."""
    sys.stdout.write(json.dumps(_plain(value), indent=2, default=str, allow_nan=False) + "\n")


def wrap_parts(parts: Sequence[str], width: int, indent: str = "  ") -> str:
    """`parts` (each with its own punctuation: `repetition 0.000,`) joined by spaces into lines of
    at most `width` cells, broken between parts, never inside one: rich wraps at any space, and at
    80 columns `quality: ..., repetition 0.000` read `repetition` / `0.000`. Lines after the first
    start with `indent`; a part wider than a line alone is left to the terminal to fold."""
    lines: list[str] = []
    line = ""
    for part in parts:
        if line.strip() and cell_len(f"{line} {part}") > width:
            lines.append(line)
            line = indent + part.lstrip()
        else:
            line = f"{line} {part}" if line else part
    return "\n".join(lines + [line])


def with_commas(parts: Sequence[str]) -> list[str]:
    """`parts` with a comma after each but the last, for `wrap_parts`."""
    return [p + ("," if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def print_parts(label: str, parts: Sequence[str], out: Console | None = None) -> None:
    """`label part, part, ...` (any author's text) wrapped between parts at the console's width."""
    out = out or console
    shown = wrap_parts([one_line(label), *with_commas([one_line(p) for p in parts])], out.width)
    out.print(Text(shown), highlight=False, soft_wrap=False)


TEXT_INDENT = "  "


def print_lines(text: str, out: Console | None = None) -> None:
    """`text` (any author's: a finding's) line by line, each indented by TEXT_INDENT (no line of
    it starts where this command's own headings and tables do: a stranger's finding wrote a
    "claims (status derived here ...)" table of its own), wrapped after a `,` or `;` where it
    can, never inside a `name value` pair (`repetition +0.400 +- 0.02`), its continuation lines
    indented under it."""
    out = out or console
    lines = []
    for line in visible(text).split("\n"):
        line = TEXT_INDENT + line
        indent = line[:len(line) - len(line.lstrip())] + "    "
        lines.append(wrap_parts(re.split(r"(?<=[,;]) +", line), out.width, indent))
    out.print(Text("\n".join(lines)), highlight=False, soft_wrap=False)


NEWLINE = "\u21b5"          # ↵: a newline in text printed as one line


def one_line(value: str) -> str:
    """Text from a record (any author's) for a line of this command's own: invisible characters
    as U+FFFD and each newline as ↵. A newline let a stranger's judgement reason (or sample, or
    quality name) start a line of its own, written as this command writes a trusted judge's."""
    return visible(value).replace("\n", NEWLINE)


def plain_text(value: str, style: str = "") -> Text:
    """Text from a record (any author's) as rich shows it: never markup, no control or invisible
    characters (memory/invisible.py)."""
    return Text(visible(value), style=style)


def _cell(value: Any, width: int = 48) -> Text:
    if value is None:
        return Text("")
    if isinstance(value, float):
        fixed = f"{value:.4f}"
        if value and fixed.lstrip("-") == "0.0000":     # a p of 1.4e-05 read "0.0000"
            return Text(f"{value:.3g}")
        return Text(fixed if abs(value) < 1e6 else f"{value:.4g}")
    text = _plain(value)
    text = text if isinstance(text, str) else json.dumps(text, default=str)
    return plain_text(text if len(text) <= width else text[: width - 1] + "…")


LAST_CELL = 240     # the last column folds: a diff, a note or a path, whole up to this length


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                empty: str = "nothing yet", cell_width: int = 48) -> None:
    """Print rows as a rich table, or `empty` when there are none; cells longer than `cell_width`
    characters are cut (a table of fields and values passes more, so ids and addresses stay whole),
    but for the last column's, which fold up to `LAST_CELL` characters (`soft_breaks`)."""
    if not rows:
        console.print(plain_text(f"{title}: {empty}", "dim"))
        return
    title = fit_title(title)
    last_width = max(cell_width, LAST_CELL)
    cells = [[_cell(v, cell_width if i < len(row) - 1 else last_width) for i, v in enumerate(row)]
             for row in rows]
    widths = _widths(columns, cells)
    if not _fits(columns, widths):
        # one row at a time, every value folds under its name: none is cut at `cell_width`
        # (`swarm sql "SELECT * FROM seed_stats"` showed a config as `{"activation":...,"lr":0.00…`)
        return _print_rows_apart(title, columns, [[_cell(v, last_width) for v in row]
                                                  for row in rows])
    room = console.width - sum(widths[:-1]) - 3 * len(widths) - 1
    # at least as wide as its title, so a narrow table's title is not broken over lines; titles
    # and headers as plain text (they hold paths and SQL column names: never markup)
    table = Table(title=plain_text(title), title_justify="left", header_style="bold",
                  min_width=min(max(map(cell_len, title.split("\n"))), console.width))
    for i, name in enumerate(columns):
        # Ids, times and numbers never break across lines; the last column (free text) folds.
        last = i == len(columns) - 1
        table.add_column(plain_text(str(name)), overflow="fold" if last else "ellipsis",
                         no_wrap=not last)
    for row in cells:
        table.add_row(*row[:-1], soft_breaks(row[-1], room))
    console.print(table)


def fit_title(title: str) -> str:
    """`heading: track` on two lines when it is wider than the terminal, the track whole on a line
    of its own: at 60 columns `claims by authors not trusted here (provisional): tinystories-cpu`
    broke where rich chose, its lines padded to the table's width."""
    head, sep, tail = title.rpartition(": ")
    if cell_len(title) <= console.width or not sep or cell_len(head) >= console.width:
        return title
    return f"{head}:\n  {tail}"


LAST_COLUMN_MIN = 6     # the folding last column needs at least this much room (or its header's)


def _widths(columns: Sequence[str], cells: list[list[Text]]) -> list[int]:
    """Each column's natural width: its widest line, header included."""
    return [max([cell_len(name)] + [max(map(cell_len, c.plain.split("\n"))) for c in column])
            for name, *column in zip(columns, *cells)]


def _fits(columns: Sequence[str], widths: list[int]) -> bool:
    """Whether the table fits the terminal with every column but the last whole (rich would
    otherwise cut them all down to a few characters, or crop the table's right side)."""
    last = min(widths[-1], max(cell_len(columns[-1]), LAST_COLUMN_MIN))
    return sum(widths[:-1]) + last + 3 * len(widths) + 1 <= console.width


BREAK_AFTER = "=/:"     # where a word too long for its column may break: `knob=`, a path, an address


HEX_WORD = re.compile(r"[0-9a-f]{32,}")    # a record id (64), a config hash (32): no `=` to break at


def hex_lines(word: str, room: int) -> str:
    """A hex id wider than `room` in equal pieces of at most `room` (64 in 60 columns: two of 32,
    one under the other), so no line holds a stray tail (`...e9e8c` / `cd81`); as it is when even
    pieces of 8 do not fit."""
    pieces = 1
    while -(-len(word) // pieces) > room and len(word) // pieces > 8:
        pieces *= 2
    size = -(-len(word) // pieces)
    if size > room:
        return word
    return "\n".join(word[i:i + size] for i in range(0, len(word), size))


def soft_breaks(cell: Text, room: int) -> Text:
    """`cell` with a line break after an `=`, `/` or `:` in each word wider than `room` columns:
    rich wraps at spaces and folds a longer word anywhere, so `activation=swiglu` in 15 columns
    read `activation=swig` `lu`; it now reads `activation=` `swiglu`, a path breaks at a `/`."""
    if all(cell_len(word) <= room for word in cell.plain.split()):
        return cell
    pieces = re.split(r"(\s+)", cell.plain)
    return Text("".join(p if p.isspace() else _break_word(p, room) for p in pieces),
                style=cell.style)


def _break_word(word: str, room: int) -> str:
    if HEX_WORD.fullmatch(word):
        return hex_lines(word, room)
    lines = []
    while cell_len(word) > room:
        cut = max((i + 1 for i, ch in enumerate(word[:-1]) if ch in BREAK_AFTER
                   and cell_len(word[:i + 1]) <= room), default=0)
        if not cut:
            break               # no place to break within the room: rich folds it
        lines.append(word[:cut])
        word = word[cut:]
    return "\n".join(lines + [word])


def _print_rows_apart(title: str, columns: Sequence[str], cells: list[list[Text]]) -> None:
    """Rows too wide for the terminal as a table (`swarm sql` over many columns): each row as
    its own block of `column  value` lines, values folded, like psql's expanded display."""
    from rich.rule import Rule

    console.print(plain_text(title), highlight=False)
    for number, row in enumerate(cells, 1):
        console.print(Rule(f"row {number}", align="left", style="dim"))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        room = console.width - max(cell_len(str(name)) for name in columns) - 2
        for name, value in zip(columns, row):
            grid.add_row(plain_text(str(name)), soft_breaks(value, room))
        console.print(grid)


def home_flag(home: Path | None) -> str:
    """` --home DIR` for a command line printed for the user to type (quoted for the shell), or ""
    when the home was not given on the command line."""
    return f" --home {shlex.quote(str(home))}" if home is not None else ""


def short_id(value: Any, n: int = 8) -> str:
    """The first `n` characters of an id (like git's short hashes); '' for None."""
    return "" if value is None else str(value)[:n]


PEER_TAIL = 8      # a peer id in tables: "…" and its last 8 characters (the dashboard's too)


def short_peer(peer_id: Any) -> str:
    """A peer id for tables, `…AbCdEfGh`: its tail, since every Ed25519 peer id begins with
    `12D3KooW` (a head tells none apart); '' for None. `--json` has every id in full."""
    return "" if not peer_id else "…" + str(peer_id)[-PEER_TAIL:]


def when(ts_ms: int | None) -> str:
    """A compact UTC time for tables: `MM-DD HH:MM` (the year only when it is not this one)."""
    if ts_ms is None:
        return ""
    import datetime as dt
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, dt.timezone.utc)
    this_year = moment.year == dt.datetime.now(dt.timezone.utc).year
    return moment.strftime("%m-%d %H:%M" if this_year else "%Y-%m-%d")


def peer_labels(names: Mapping[str, str]) -> dict[str, str]:
    """Labels for node names by author: the name alone where it is plain ASCII and no other
    author's name here looks like it (swarm/lookalike.py), else `name:…tail` (its key's tail, as
    `short_peer`), so a stranger named as a trusted node, or like it by a homoglyph, never
    prints as that node's name does."""
    from swarm.lookalike import tagged

    tag = tagged(names.values())
    return {a: n if n not in tag else f"{n}:{short_peer(a)}" for a, n in names.items()}


def track_labels(track_ids: Sequence[str]) -> dict[str, str]:
    """Short labels for track ids (`name:hash`): the name alone where it is plain ASCII and no
    other track's name looks like it (swarm/lookalike.py), else name:hash8."""
    from swarm.lookalike import tagged

    tracks = sorted(set(track_ids))
    tag = tagged(t.partition(":")[0] for t in tracks)
    return {t: (name if name not in tag else f"{name}:{rest[:8]}")
            for t in tracks for name, _, rest in [t.partition(":")]}
