"""What a person reads of a run in the terminal: its samples, quality measures and loss curve."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


READABLE = ("samples", "quality", "curve")      # the run body's fields printed here


def print_run_readable(console: Console, body: dict[str, Any]) -> None:
    """The samples (prompt, then the model's continuation), quality measures and curve ends of a
    `run` body; nothing for a v1 run or a run without them."""
    samples = body.get("samples") or []
    for sample in samples:
        console.print(f"[dim]{escape(sample['prompt'])}[/]{escape(sample['text'])}", soft_wrap=False)
    quality = body.get("quality")
    if quality:
        console.print("quality: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(quality.items())))
    curve = body.get("curve") or []
    if curve:
        first, last = curve[0], curve[-1]
        console.print(f"loss curve: {len(curve)} points, {first['train_loss']:.3f} at step "
                      f"{first['step']} -> {last['train_loss']:.3f} at step {last['step']}")
