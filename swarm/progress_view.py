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

from swarm.output import plain_text, plural


def _best(best: dict[str, Any]) -> str:
    if not best or best.get("val_bpb") is None:
        return "no finished baseline run yet"
    diff = json.dumps(best.get("diff") or {}) if best.get("diff") else "the track's base config"
    return f"val_bpb {best['val_bpb']:.4f} over {plural(best.get('runs', 0), 'run')}: {diff}"


class SwarmSummary:
    """What the swarm has done on a track, for the live panel: re-read at most every few seconds.

    Reads the daemon's store (its own cursor, never the write lock), so drawing never waits for
    ingest. Only the findings count comes from here; the baseline count and the claims come from
    the worker (`Progress.claims`), as this node derives them from evidence it trusts."""

    def __init__(self, reader: Any, track: str, min_baseline: int, min_start: int,
                 every_s: float = 3.0) -> None:
        self.reader, self.track, self.every_s = reader, track, every_s
        # the experimenter screens from min_start baseline seeds on (each unit adding one seed)
        self.min_baseline, self.min_start = min_baseline, min(min_start, min_baseline)
        self._at, self._last = 0.0, {}

    def get(self) -> dict[str, Any]:
        """The latest summary (re-read when older than `every_s`); {} when the read fails."""
        import time
        if time.monotonic() - self._at >= self.every_s:
            self._at = time.monotonic()
            try:
                self._last = self._read()
            except Exception:  # noqa: BLE001 - the panel must never stop the node
                logging.getLogger(__name__).debug("live panel read failed", exc_info=True)
        return self._last

    def _read(self) -> dict[str, Any]:
        match = "(track = ? OR split_part(track, ':', 1) = ?)"
        findings = self.reader.query(f"SELECT count(*) FROM findings WHERE {match}",
                                     [self.track, self.track]).rows[0][0]
        return {"min_baseline": self.min_baseline, "min_start": self.min_start,
                "findings": findings}


def with_work(summary: dict[str, Any], work: dict[str, Any]) -> dict[str, Any]:
    """The panel's swarm summary completed with the worker's own counts (baseline, claims)."""
    if not summary or work.get("baseline_runs") is None:
        return summary
    return {**summary, "baseline": work["baseline_runs"], "claims": work.get("claims") or {}}


def swarm_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for the swarm's progress on the track: the baseline count, claims, findings."""
    if not summary or "baseline" not in summary:
        return []
    n, target = summary["baseline"], summary["min_baseline"]
    start = summary.get("min_start", target)
    base = (f"{n}/{target} seeds; experiments start at {start}" if n < start else
            f"{n}/{target} seeds; experiments under way, each adding one" if n < target else
            f"{n} seeds (done)")
    claims = ", ".join(f"{count} {status}" for status, count in summary["claims"].items())
    return [("baseline", base), ("claims", claims or "none yet"),
            ("findings", str(summary["findings"]))]


def duration_text(seconds: float) -> str:
    """Compact: 45 s, 3 m 20 s, 1 h 05 m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} m"


def run_progress(current: dict[str, Any] | None) -> str | None:
    """The run under way once the harness reported: step, loss and training time left."""
    if not current or current.get("step") is None:
        return None
    text = f"step {current['step']}/{current['steps']}"
    if current.get("loss") is not None:
        text += f", loss {current['loss']:.3f}"
    if current.get("left_s") is not None:
        text += f", ~{duration_text(current['left_s'])} left"
    return text


def work_rows(work: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) rows describing one work loop's progress."""
    current = work.get("current_run")
    run = (f"{current['what']} ({duration_text(current['running_s'])})" if current
           else work.get("doing", ""))
    step = run_progress(current)
    mix = ", ".join(f"{role} {n}" for role, n in sorted(work.get("role_mix", {}).items()))
    rows = [("role", work.get("role", "")), ("current run", run),
            *([("run progress", step)] if step else []),
            ("runs by this node", str(work.get("runs", 0))),
            ("verified best", _best(work.get("best", {}))),
            *swarm_rows(work.get("swarm", {})),
            ("role mix (swarm)", mix or "none yet"),
            ("time not training", _overhead(work))]
    if work.get("judgements") or work.get("judge_errors"):
        rows.append(("judged here", _judged(work)))
    if work.get("no_data"):         # it takes only roles that need no training: say why
        rows.append(("no data", f"this node does not train: {work['no_data']}"))
    if work.get("error"):
        rows.append(("error", work["error"]))
    return rows


# Busy seconds before the share of time not training is shown: before that it is mostly the first
# run's start (a newcomer read `coordination share 49.37% of 2 s busy`: jargon, and noise).
MIN_BUSY_S = 60.0


def _overhead(work: dict[str, Any]) -> str:
    """`3% of 5 m 00 s (choosing and sharing work)`: the share of this node's working time spent
    on anything but training (`coordination_share` in the JSON), once there is enough of it."""
    busy = work.get("busy_s", 0.0)
    if busy < MIN_BUSY_S:
        return "shown after a minute of work"
    share = 100 * work.get("coordination_share", 0.0)
    percent = "under 1%" if share < 0.5 else f"{share:.0f}%"
    return f"{percent} of {duration_text(busy)} (choosing and sharing work)"


def _judged(work: dict[str, Any]) -> str:
    """`2 runs; 1 judge API error (see the log)`: what this node's LLM judge did."""
    text = plural(work.get("judgements", 0), "run")
    errors = work.get("judge_errors", 0)
    return text + (f"; {plural(errors, 'judge API error')} (see the log)" if errors else "")


def summary_line(work: dict[str, Any]) -> str:
    """One line for the end of `swarm join`: what this node did and where the swarm stands."""
    # the worker's own count when the swarm summary has none: off a terminal no panel read the
    # summary while the node ran, and after the stop its store is closed ("no claims" was printed
    # by a node whose worker counted 2 verified, in a log file)
    counts = (work.get("swarm") or {}).get("claims") or work.get("claims") or {}
    claims = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no claims"
    runs = work.get("runs", 0)
    judged = f"; judged {_judged(work)}" if work.get("judgements") or work.get("judge_errors") \
        else ""
    return (f"{plural(runs, 'run')} by this node{judged}; {claims}; verified best "
            f"{_best(work.get('best', {}))}")


def panel(work: dict[str, Any] | None) -> Table:
    """The live panel for one work loop (or a placeholder before it starts)."""
    title = f"swarm node: {work.get('track', '') if work else 'starting'}"
    # at least as wide as its title: the placeholder's one row made "starting" wrap under it
    table = Table(title=title, title_justify="left", show_header=False, box=None,
                  min_width=len(title))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in work_rows(work) if work else [("role", "starting")]:
        table.add_row(name, plain_text(value))      # values quote records: never markup
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
