"""Role commands: `swarm bench search` (the search and the gate against TPE, random search and the
greedy rule; `swarm bench gate` is its gate mode) and `swarm bench swarm` (a whole swarm end to end,
with each node's coordination share)."""
from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `swarm bench search`, `swarm bench gate` and `swarm bench swarm` to the CLI."""
    from swarm.bench import search, swarm_run

    bench_app.command("search")(search.bench)
    bench_app.command("gate")(search.gate_bench)
    bench_app.command("swarm")(swarm_run.bench)
