"""How a node's work loop is shown: rows for `swarm status`, a live panel for `swarm join`.

The live panel is drawn only on a terminal; logs then go through the same rich console (above the
panel) so the two do not tear each other. Piped output (scripts, the tests) gets plain logs.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table


def _best(best: dict[str, Any]) -> str:
    if not best or best.get("val_bpb") is None:
        return "no finished baseline run yet"
    diff = json.dumps(best.get("diff") or {}) if best.get("diff") else "the track's base config"
    return f"val_bpb {best['val_bpb']:.4f} over {best.get('runs', 0)} runs: {diff}"


def work_rows(work: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) rows describing one work loop's progress."""
    current = work.get("current_run")
    run = (f"{current['what']} ({current['running_s']:.0f} s)" if current else work.get("doing", ""))
    mix = ", ".join(f"{role} {n}" for role, n in sorted(work.get("role_mix", {}).items()))
    rows = [("role", work.get("role", "")), ("current run", run),
            ("runs by this node", str(work.get("runs", 0))),
            ("swarm's best", _best(work.get("best", {}))),
            ("role mix (swarm)", mix or "none yet"),
            ("coordination share", f"{100 * work.get('coordination_share', 0.0):.2f}% of "
                                   f"{work.get('busy_s', 0.0):.0f} s busy")]
    if work.get("error"):
        rows.append(("error", work["error"]))
    return rows


def panel(work: dict[str, Any] | None) -> Table:
    """The live panel for one work loop (or a placeholder before it starts)."""
    table = Table(title=f"swarm node: {work.get('track', '') if work else 'starting'}",
                  title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in work_rows(work) if work else [("role", "starting")]:
        table.add_row(name, value)
    return table


@contextmanager
def live(console: Console, source: Callable[[], dict[str, Any] | None]) -> Iterator[None]:
    """Draw `panel(source())` about once a second while the block runs (terminals only)."""
    if not console.is_terminal:
        yield
        return
    from rich.live import Live
    from rich.logging import RichHandler

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [RichHandler(console=console, show_path=False)]
    try:
        with Live(get_renderable=lambda: panel(source()), console=console, refresh_per_second=1,
                  transient=True):
            yield
    finally:
        root.handlers = saved
