"""`swarm show`'s view for people: a record's fields as tables readable at 80 columns (the JSON
stays behind `--json`)."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.text import Text

from swarm.output import (LAST_CELL, console, hex_lines, plain_text, print_lines, print_table,
                          short_id, when)

HEX_ID = 64          # a record id's length: ids in lists are cut to 8 characters, as tables do
WHOLE = 100_000      # a value in `swarm show` is never cut (a record is at most 64 KiB)
SHORT_FLOAT = 10     # a float whose repr is longer (`86.95388917899982`) shows 6 significant digits


def print_record(out: Mapping[str, Any], kind: str, judged: list[dict[str, Any]] | None) -> None:
    """The header lines, the body as a field/value table (a run's samples, quality and curve as
    text), then the claim's status in the records and what this node concludes (`here`)."""
    # the id whole on one line when it fits, else in equal halves under each other (60 columns)
    ident = hex_lines(out["id"], console.width - len(kind) - 1)
    ident = ident.replace("\n", "\n" + " " * (len(kind) + 1))
    console.print(Text.assemble((kind, "bold"), " ", ident), highlight=False, soft_wrap=True)
    # the author whole on its own line (80 columns: a peer id and a time do not fit on one)
    console.print(f"author {out['author']}", soft_wrap=True, highlight=False)
    console.print(f"seq {out['seq']}, {when(out['ts'])} UTC", highlight=False)
    body = dict(out["body"])
    if kind == "run":
        from swarm.readable import READABLE
        body = {k: v for k, v in body.items() if k not in READABLE}
    print_fields(kind, body)
    if kind == "run":
        from swarm.readable import print_judgements, print_run_readable
        print_run_readable(console, out["body"])
        print_judgements(console, judged or [])
    if "claim_status" in out:
        print_fields("claim status (what the records say)", out["claim_status"])
    if "here" in out:
        print_fields("here (what this node concludes: docs/TRUST.md)", out["here"])


def print_fields(title: str, fields: Mapping[str, Any]) -> None:
    """`fields` as a field/value table, empty ones left out; a text too long for a cell (a
    finding's text) printed whole after it, line by line."""
    long = {k: v for k, v in fields.items() if isinstance(v, str) and _is_long(v)}
    listed = {k: v for k, v in fields.items() if _is_rows(v)}
    rows = [(k, cell_text(v)) for k, v in fields.items()
            if k not in long and k not in listed and v is not None and v != [] and v != {}]
    # a record's values whole, however long (a run's config of 32 knobs was cut at 240
    # characters, `norm=layernorm, p…`, in the command `swarm run` says to type)
    print_table(title, ["field", "value"], rows, cell_width=WHOLE)
    for name, items in listed.items():
        # a table of their own (a finding's effects: knob, value, effect, stderr, n): in one cell
        # they ran together as `knob=..., value=...; knob=...` and were cut at 240 characters
        columns = list(items[0])
        print_table(f"{title}: {name}", columns, [[_row_cell(c, i[c]) for c in columns]
                                                  for i in items])
    for name, text in long.items():
        console.print(plain_text(f"{name}:", "bold"), highlight=False)
        print_lines(text)


def _row_cell(column: str, value: Any) -> Any:
    """A cell of a listed field's table: a knob's `value` as written (`lr` 0.001, not 0.0010;
    a setting is no measurement), nested values as compact JSON, the rest as tables show them."""
    if column == "value" or isinstance(value, (dict, list)):
        return _item(value)
    return value


def _is_rows(value: Any) -> bool:
    """A non-empty list of mappings with the same keys (rows of a table)."""
    return (isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)
            and all(list(v) == list(value[0]) for v in value))


def _is_long(text: str) -> bool:
    return "\n" in text or len(text) > LAST_CELL


def cell_text(value: Any) -> str:
    """One value as a cell: a mapping as `key=value, key=value` (the space lets the column wrap
    between pairs, never inside one), a list's items joined by commas (ids cut to 8), a truth
    as yes or no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):    # `p_value 1.4208931780362457e-05` in a claim's `here`
        return _item(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{_item(k)}={_item(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(cell_text(v) for v in value) if any(
            isinstance(v, Mapping) for v in value) else ", ".join(_item(v) for v in value)
    return str(value)


def _item(value: Any) -> str:
    if isinstance(value, str) and len(value) == HEX_ID:
        return short_id(value)
    if isinstance(value, float) and len(repr(value)) > SHORT_FLOAT:
        return f"{value:.6g}"       # `val_bpb=2.3346129668176103`: six digits, --json has all
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
