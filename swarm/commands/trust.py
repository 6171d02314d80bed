"""`swarm trust`: who this node trusts and why (docs/TRUST.md); `swarm trust add|remove` pin keys.

The node's own conclusions for browsing (claim status, leaderboard, this listing) are in
swarm/conclusions.py, shared with the dashboard.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from swarm.commands import MAX_ROWS
from swarm.conclusions import Conclusions
from swarm.output import (console, err_console, fail, plural, print_json, print_table,
                          short_peer)
from swarm.reader import open_reader, query_errors

HOME = typer.Option(None, "--home", help="Node home (default: $SWARM_HOME or ~/.swarm).")
JSON = typer.Option(False, "--json", help="Machine-readable JSON instead of a table.")

trust_app = typer.Typer(help="Trust: roots (own key + pinned keys) and what replays earned.",
                        invoke_without_command=True)


def _check_peer(peer_id: str) -> None:
    from memory.crypto import BadPeerId, public_key_from_peer_id

    try:
        public_key_from_peer_id(peer_id)
    except (BadPeerId, ValueError) as exc:
        detail = str(exc)
        fail(detail if detail.startswith("not an Ed25519") else
             f"not an Ed25519 peer id: {peer_id!r} ({detail})")


def check_pins_file(home: Path) -> None:
    """Stop with one line when HOME/trust.json cannot be read: writing pins would drop its own."""
    from roles import trust

    try:
        trust.read_pins(home)
    except trust.TrustFileError as exc:
        fail(f"cannot read {exc}; fix or remove the file first")


def _pins_home(ctx: typer.Context, home: Optional[Path]) -> Path:
    """The home to pin in: the command's --home, else the group's (`swarm trust --home DIR add`),
    once its trust.json is known to be readable."""
    from swarm.reader import home_folder

    root = home_folder(home if home is not None else (ctx.obj or {}).get("home"))
    check_pins_file(root)
    return root


@trust_app.command("add")
def add(ctx: typer.Context,
        peer_id: str = typer.Argument(..., help="The peer id to trust (a trust root)."),
        note: str = typer.Option("", "--note", help="Why (shown by swarm trust)."),
        home: Optional[Path] = HOME) -> None:
    """Pin a key: its runs count as evidence here, and its matching replays earn others trust."""
    from node.home import ensure_home
    from roles import trust

    _check_peer(peer_id)
    trust.pin(ensure_home(_pins_home(ctx, home)), peer_id, note)
    console.print(f"trusting {peer_id}", soft_wrap=True, highlight=False)


@trust_app.command("remove")
def remove(ctx: typer.Context, peer_id: str = typer.Argument(..., help="A pinned peer id."),
           home: Optional[Path] = HOME) -> None:
    """Unpin a key (its runs count again only through replays by authors this node trusts)."""
    from roles import trust

    if not trust.unpin(_pins_home(ctx, home), peer_id):
        fail(f"{peer_id} is not pinned (see swarm trust)")
    console.print(f"no longer pinning {peer_id}", soft_wrap=True, highlight=False, markup=False)


@trust_app.callback()
def listing(ctx: typer.Context, json_out: bool = JSON, home: Optional[Path] = HOME,
            limit: int = typer.Option(50, min=1, max=MAX_ROWS, help="First N authors (roots and trusted "
                                                      "first, then by runs).")) -> None:
    """Authors with their trust here, why (the replays that earned it, the mismatch that lost
    it) and their influence (share of the sane runs this memory holds)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"home": home}        # `swarm trust --home DIR add ...` pins in DIR
        return
    with open_reader(home) as reader, query_errors():
        every = Conclusions(reader, home).authors()
    rows = every[:limit]                  # keys are free: a flood of them is a long tail
    if json_out:
        return print_json(rows)
    print_table("trust (roots: own key + pinned; others earn it by replays)",
                ["author", "status", "level", "runs", "influence", "why"],
                [(short_peer(r["author"]), r["status"] + (" (pin)" if r["pinned"] else ""),
                  r["level"], r["runs"], f"{100 * r['influence']:.1f}%", _why(r)) for r in rows],
                empty="no authors yet")
    if len(every) > limit:
        err_console.print(f"the first {limit} of {plural(len(every), 'author')} (--limit N for more)")


def _why(row: dict[str, Any]) -> str:
    """The why column: for a root, whose (this node's key, or a pin with its source and note)."""
    if row["status"] != "root":
        return row["why"]
    pin = row.get("pinned")
    whose = ("this node's own key" if not pin else
             f"pinned ({pin.get('source', '?')})" + (f": {pin['note']}" if pin.get("note") else ""))
    return row["why"].replace("root: own key or pinned", whose, 1)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `swarm trust` and `swarm bench trust`."""
    from swarm.bench import trust as bench_trust

    from swarm.commands import BROWSE

    app.add_typer(trust_app, name="trust", rich_help_panel=BROWSE)
    bench_app.command("trust")(bench_trust.bench)
