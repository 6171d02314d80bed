"""`swarm trust`: who this node trusts and why (docs/TRUST.md); `swarm trust add|remove` pin keys.

Also `local_verdicts(reader, home)`, the node's own conclusions for browsing commands (claim status,
leaderboard) from trusted, sane evidence, with the same roots as the running node.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from memory.leaderboard import add_diffs
from swarm.output import fail, print_json, print_table
from swarm.reader import open_reader, query_errors

HOME = typer.Option(None, "--home", help="Node home (default: $SWARM_HOME or ~/.swarm).")
JSON = typer.Option(False, "--json", help="Machine-readable JSON instead of a table.")

trust_app = typer.Typer(help="Trust: roots (own key + pinned keys) and what replays earned.",
                        invoke_without_command=True)


def own_peer_id(home: Path) -> str | None:
    """This home's node key, if it has one (browsing never creates one)."""
    from node.home import IDENTITY_FILE
    from node.identity import load_or_create

    return load_or_create(home).peer_id if (home / IDENTITY_FILE).exists() else None


def roots(home: Path) -> frozenset[str]:
    """The home's trust roots: its own key and the pinned keys."""
    from roles import trust

    me = own_peer_id(home)
    return frozenset(trust.load_pins(home)) | ({me} if me else set())


def local_verdicts(reader: Any, home: Path | None, track: str | None = None) -> dict[str, Any]:
    """track -> `roles.verdicts.Verdicts` as this home's node concludes them."""
    from node.home import resolve_home
    from roles import verdicts

    return verdicts.all_tracks(reader, roots(resolve_home(home)), track)


def leaderboard_rows(reader: Any, home: Path | None, track: str | None,
                     limit: int) -> list[dict[str, Any]]:
    """The leaderboard as this node concludes it: configs ranked by the mean of their trusted,
    sane runs; configs with untrusted runs only follow, marked `trusted: false`, unranked."""
    out = []
    for name, v in local_verdicts(reader, home, track).items():
        for row in v.leaderboard(limit):
            runs = v.config_runs(row["config_hash"]) if row["trusted"] else [
                r for r in v.by_config[row["config_hash"]] if r["status"] == "ok"]
            values = [float(r["val_bpb"]) for r in runs]
            mean = sum(values) / len(values) if values else None
            std = (sum((x - mean) ** 2 for x in values) / (len(values) - 1)) ** 0.5 \
                if len(values) > 1 else None
            out.append({**row, "track": name, "std": std, "seeds": len({r["seed"] for r in runs}),
                        "authors": len({r["author"] for r in runs}),
                        "best": min(values) if values else None,
                        "config": _config(v.by_config[row["config_hash"]][0]["config"])})
    add_diffs(reader, out)
    return out


def claim_rows(reader: Any, home: Path | None, track: str | None) -> list[dict[str, Any]]:
    """Every claim with this node's status, newest first; `trusted` says if its author counts."""
    rows = []
    for name, v in local_verdicts(reader, home, track).items():
        now = _now_ms()
        for c in v.claims:
            status = "stale" if v.stale(c, now) else c.status
            rows.append({**c.as_row(), "claim": c.id, "track": name, "status": status,
                         "counted": c.counted, "excluded": c.excluded})
    return sorted(rows, key=lambda r: (-r["ts"], r["claim"]))


def explain(reader: Any, home: Path | None, record: Any) -> dict[str, Any] | None:
    """For `swarm show`: which evidence counted here and which did not, and why (claims and
    runs); None for other kinds."""
    if record.kind == "claim":
        for row in claim_rows(reader, home, record.body.track):
            if row["claim"] == record.id:
                keep = ("status", "trusted", "reason", "p_value", "q_value", "counted", "excluded")
                return {k: row[k] for k in keep}
    if record.kind == "run":
        v = local_verdicts(reader, home, record.body.track).get(record.body.track)
        if v is not None:
            why = v.why_not(record.id)
            return {"counts": why is None, "why_not": why,
                    "replay_outcome": v.trust.run_outcome.get(record.id)}
    return None


def _config(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _check_peer(peer_id: str) -> None:
    from memory.crypto import BadPeerId, public_key_from_peer_id

    try:
        public_key_from_peer_id(peer_id)
    except (BadPeerId, ValueError) as exc:
        fail(f"not an Ed25519 peer id: {peer_id!r} ({exc})")


@trust_app.command("add")
def add(peer_id: str = typer.Argument(..., help="The peer id to trust (a trust root)."),
        note: str = typer.Option("", "--note", help="Why (shown by swarm trust)."),
        home: Optional[Path] = HOME) -> None:
    """Pin a key: its runs count as evidence here, and its matching replays earn others trust."""
    from node.home import ensure_home, resolve_home
    from roles import trust

    _check_peer(peer_id)
    trust.pin(ensure_home(resolve_home(home)), peer_id, note)
    print(f"trusting {peer_id}")


@trust_app.command("remove")
def remove(peer_id: str = typer.Argument(..., help="A pinned peer id."),
           home: Optional[Path] = HOME) -> None:
    """Unpin a key (its runs count again only through replays by authors this node trusts)."""
    from node.home import resolve_home
    from roles import trust

    if not trust.unpin(resolve_home(home), peer_id):
        fail(f"{peer_id} is not pinned (see swarm trust)")
    print(f"no longer pinning {peer_id}")


def _authors(reader: Any, home: Path | None) -> list[dict[str, Any]]:
    from node.home import resolve_home
    from roles import sanity, trust, verdicts

    resolved = resolve_home(home)
    facts = verdicts.cli_facts(reader)
    state = trust.compute(trust.load_replays(reader, facts), roots(resolved))
    result = reader.query("SELECT id, author, track, config_hash, config, seed, status, val_bpb, "
                          "tokens, steps, mfu FROM valid_runs WHERE status = 'ok'", [])
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in result.rows:
        run = dict(zip(result.columns, row))
        if sanity.reason(run, facts) is None:
            runs.setdefault(run["author"], []).append(run)
    pins = trust.load_pins(resolved)
    rows = trust.listing(state, runs)
    for row in rows:
        pinned = pins.get(row["author"])
        row["pinned"] = None if pinned is None else {k: pinned.get(k) for k in ("note", "source")}
    return rows


@trust_app.callback()
def listing(ctx: typer.Context, json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Authors with their trust here, why (the replays that earned it, the mismatch that lost
    it) and their influence (share of the sane runs this memory holds)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_reader(home) as reader, query_errors():
        rows = _authors(reader, home)
    if json_out:
        return print_json(rows)
    print_table("trust (roots: own key + pinned; others earn it by replays)",
                ["author", "status", "level", "runs", "influence", "why"],
                [("…" + r["author"][-10:], r["status"] + (" (pin)" if r["pinned"] else ""),
                  r["level"], r["runs"], f"{100 * r['influence']:.1f}%", r["why"]) for r in rows],
                empty="no authors yet")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `swarm trust` and `swarm bench trust`."""
    from swarm.bench import trust as bench_trust

    app.add_typer(trust_app, name="trust")
    bench_app.command("trust")(bench_trust.bench)
