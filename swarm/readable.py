"""What a person reads of a run in the terminal: its samples, quality measures and loss curve."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from swarm.output import one_line, plural, print_parts, short_peer


READABLE = ("samples", "quality", "curve")      # the run body's fields printed here
PROMPT_END = "▸"                                # between a sample's prompt and continuation
SAMPLES_HEADING = f"samples (the fixed prompt {PROMPT_END} what the model wrote):"


def print_judgements(console: Console, judgements: list[dict[str, Any]]) -> None:
    """One line per `judgement` of a run: who judged (trusted here or not: a judgement is
    testimony), the scores, the model and rubric, and the reason; every part any author's text."""
    for j in judgements:
        scores = ", ".join(f"{k} {v:g}" for k, v in sorted(j["scores"].items()))
        standing = "trusted" if j["trusted"] else "untrusted"
        console.print(Text(one_line(f"judged by {short_peer(j['author'])} ({standing}): {scores} "
                                    f"({j['judge']}, {j['rubric']}): {j['reason']}")),
                      soft_wrap=True)      # one line each, whatever the width (the terminal wraps)


def print_run_readable(console: Console, body: dict[str, Any]) -> None:
    """The samples (prompt, then the model's continuation), quality measures and curve ends of a
    `run` body; nothing for a v1 run or a run without them."""
    samples = body.get("samples") or []
    if samples:
        # as the dashboard shows them: the prompt's end marked (a dim prompt is not dim in a
        # pipe, and an empty continuation, a newline at once, looked like a missing line)
        console.print(SAMPLES_HEADING, highlight=False)
    for sample in samples:
        # any author's text: never markup, no control or invisible characters
        console.print(Text.assemble((one_line(sample["prompt"]), "dim"), PROMPT_END,
                                    one_line(sample["text"])), soft_wrap=False)
    quality = body.get("quality")
    if quality:
        print_parts("quality:", [f"{k} {v:.3f}" for k, v in sorted(quality.items())], console)
    curve = body.get("curve") or []
    if curve:
        first, last = curve[0], curve[-1]
        console.print(f"loss curve: {plural(len(curve), 'point')}, {first['train_loss']:.3f} at step "
                      f"{first['step']} -> {last['train_loss']:.3f} at step {last['step']}")
