"""What a person reads of a run in the terminal: its samples, quality measures and loss curve."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from swarm.output import plain_text


READABLE = ("samples", "quality", "curve")      # the run body's fields printed here


def print_run_readable(console: Console, body: dict[str, Any]) -> None:
    """The samples (prompt, then the model's continuation), quality measures and curve ends of a
    `run` body; nothing for a v1 run or a run without them."""
    samples = body.get("samples") or []
    for sample in samples:
        # any author's text: never markup, no control or invisible characters
        console.print(Text.assemble(plain_text(sample["prompt"], "dim"),
                                    plain_text(sample["text"])), soft_wrap=False)
    quality = body.get("quality")
    if quality:
        console.print(plain_text("quality: " + ", ".join(f"{k} {v:.3f}"
                                                         for k, v in sorted(quality.items()))))
    curve = body.get("curve") or []
    if curve:
        first, last = curve[0], curve[-1]
        console.print(f"loss curve: {len(curve)} points, {first['train_loss']:.3f} at step "
                      f"{first['step']} -> {last['train_loss']:.3f} at step {last['step']}")
