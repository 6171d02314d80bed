"""`swarm pending`: the runs this home started and has not finished (HOME/checkpoints), each
resumable; `swarm pending discard ID|--all` deletes them (roles/pending_list.py)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer

from swarm.output import (console, err_console, fail, plural, print_json, print_table,
                          track_labels, when)

HOME = typer.Option(None, "--home", help="Node home (default: $SWARM_HOME or ~/.swarm).")
JSON = typer.Option(False, "--json", help="Machine-readable JSON instead of a table.")

pending_app = typer.Typer(help="Runs stopped before their end (Ctrl-C, a shutdown), each "
                               "resumable: list them, discard them.",
                          invoke_without_command=True)


def _home(ctx: typer.Context, home: Optional[Path]) -> Path:
    """The command's --home, else the group's (`swarm pending --home DIR discard ...`)."""
    from swarm.reader import home_folder

    return home_folder(home if home is not None else (ctx.obj or {}).get("home"))


@pending_app.callback()
def listing(ctx: typer.Context, json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Each pending run: its id, steps done of planned, training seconds done, when it was saved,
    its size on disk, and what it is (purpose, config, seed); an unreadable one says so."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"home": home}
        return
    from roles.pending_list import survey

    entries = survey(_home(ctx, home))
    if json_out:
        return print_json([e.as_dict() for e in entries])
    tracks = track_labels([e.run.track for e in entries if e.run is not None])
    title = "pending runs" + (f" of {next(iter(tracks.values()))}" if len(tracks) == 1 else "")
    columns = ["id", "step", "trained", "saved", "size", "run"]
    rows = [_row(e, tracks if len(tracks) > 1 else {}) for e in entries]
    print_table(title, columns, rows, empty="none (runs stopped before their end appear here)",
                cell_width=200)
    if entries:
        err_console.print("resume: the same swarm run, or swarm join; discard: swarm pending "
                          "discard ID", highlight=False)


def _row(entry: Any, tracks: dict[str, str]) -> list[str]:
    """A table row; `tracks` labels the track when the runs are of several."""
    p, run = entry.progress, entry.run
    step = "-" if p.get("step") is None else f"{p['step']}" + (
        f"/{p['steps']}" if p.get("steps") is not None else "")
    what = ""
    if run is not None:
        from memory.canonical import config_hash
        what = f"{run.purpose} {config_hash(run.config)[:8]} seed {run.seed}"
        what = f"{tracks[run.track]}: {what}" if run.track in tracks else what
    if entry.problem:
        what = f"{what}: {entry.problem}" if what else entry.problem
    elif entry.trainer is not None:
        what = f"{what}: training now (swarm run, pid {entry.trainer})"
    elif not p:                     # stopped before its first checkpoint: step and time are "-"
        what = f"{what}: no checkpoint yet, starts from step 0"
    return [entry.key[:8], step, _duration(p.get("train_s")), when(int(entry.saved * 1000)),
            _size(entry.size), what]


def _duration(seconds: float | None) -> str:
    """`45s`, `3m12s`, `1h02m`; `-` when unknown."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def _size(n: int) -> str:
    """`812B`, `980k`, `10.5M` (bytes, kB, MB, GB: 1024s)."""
    for unit, scale in (("G", 2**30), ("M", 2**20), ("k", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}" if n < 10 * scale or unit == "M" else f"{n // scale}{unit}"
    return f"{n}B"


@pending_app.command("discard")
def discard(ctx: typer.Context,
            run_id: Optional[str] = typer.Argument(None, help="A pending run's id, or its first "
                                                   "characters (see swarm pending)."),
            every: bool = typer.Option(False, "--all", help="Discard every pending run."),
            home: Optional[Path] = HOME) -> None:
    """Delete a pending run's note and checkpoint (or every one's, with --all): it starts over."""
    from roles import pending_list

    if run_id is not None and every:
        fail("give a pending run's id or --all, not both")
    if run_id is None and not every:
        fail("give a pending run's id (see swarm pending) or --all")
    root = _home(ctx, home)
    _check_no_node(root)
    entries = pending_list.survey(root)
    if not every:
        try:
            entries = [pending_list.match(entries, run_id)]
        except ValueError as exc:
            fail(str(exc))
    with _held(root, [e.key for e in entries]):
        for entry in entries:
            pending_list.discard(root, entry.key)
    if every:
        console.print(f"discarded {plural(len(entries), 'pending run')}", highlight=False)
    else:
        console.print(f"discarded pending run {entries[0].key[:8]}", highlight=False)


@contextlib.contextmanager
def _held(root: Path, keys: list[str]) -> Iterator[None]:
    """Hold the lock of every run in `keys` (roles/pending.py `hold`): a run that a live `swarm
    run` trains is refused in one line, and then nothing is deleted."""
    from roles import pending

    locks = []
    try:
        for key in keys:
            locks.append(pending.hold(root, key))
        yield
    except pending.RunHeld as exc:
        fail(str(exc))
    except OSError as exc:          # a folder it may not write (a read-only disk): one line
        fail(f"cannot discard: {exc.filename or root}: {exc.strerror or exc}")
    finally:
        for lock in locks:
            lock.release(remove=True)


def _check_no_node(root: Path) -> None:
    """A node running on this home writes its runs' checkpoints: never delete beside it."""
    from node import api_client

    if api_client.connect(root) is not None:
        fail(f"a node runs on {root}: stop it first (at its next start it resumes its "
             "pending runs, or drops those that no longer make sense)")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `swarm pending` and `swarm pending discard`."""
    from swarm.commands import TAKE_PART

    app.add_typer(pending_app, name="pending", rich_help_panel=TAKE_PART)
