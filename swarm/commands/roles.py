"""Role commands: `swarm bench gate` (the statistics gate against the greedy rule)."""
from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `swarm bench gate` to the CLI."""
    from swarm.bench import gate

    bench_app.command("gate")(gate.bench)
