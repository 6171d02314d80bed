"""Role commands: `swarm bench gate` (the statistics gate against the greedy rule) and
`swarm bench swarm` (a whole swarm end to end, with each node's coordination share)."""
from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `swarm bench gate` and `swarm bench swarm` to the CLI."""
    from swarm.bench import gate, swarm_run

    bench_app.command("gate")(gate.bench)
    bench_app.command("swarm")(swarm_run.bench)
