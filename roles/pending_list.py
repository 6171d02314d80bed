"""What HOME/checkpoints holds, for people (`swarm pending`): every pending run with how far it got,
and a way to discard one.

Listing changes nothing. A node's own `pending.listed` deletes what it cannot use; a listing shows
it instead (an unreadable note or checkpoint, a checkpoint without its note), so that it can be
seen and discarded by hand.
"""
from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memory.canonical import config_hash
from roles.pending import FOLDER, MANUAL, Pending, parse


@dataclass(frozen=True)
class Entry:
    """One pending run as its files show it."""

    key: str
    run: Pending | None          # None: its note is unreadable or missing
    problem: str | None          # why it cannot be resumed as it is (None: it can)
    progress: dict[str, Any]     # the checkpoint's summary (node/harness/checkpoint.py); {}: none
    saved: float                 # when its newest file was written (epoch seconds)
    size: int                    # bytes of its files
    trainer: int | None = None   # the pid of a live `swarm run` training it now (its lock)

    @property
    def resumed_by(self) -> str | None:
        """The command that resumes it."""
        if self.run is None or self.problem or self.trainer is not None:
            return None
        return "swarm run" if self.run.purpose == MANUAL else "swarm join"

    def as_dict(self) -> dict[str, Any]:
        """The entry for `--json`."""
        run = self.run
        return {"id": self.key, "track": run and run.track, "purpose": run and run.purpose,
                "config_hash": run and config_hash(run.config), "seed": run and run.seed,
                "ref": run and run.ref, "device": run and run.device, "setup": run and run.setup,
                "config": run and run.config, "step": self.progress.get("step"),
                "steps": self.progress.get("steps"), "train_s": self.progress.get("train_s"),
                "segments": self.progress.get("segments"), "saved": self.saved,
                "bytes": self.size, "problem": self.problem, "resumed_by": self.resumed_by,
                "training_pid": self.trainer}


def survey(home: Path) -> list[Entry]:
    """Every pending run in `home`, oldest first (nothing created or deleted)."""
    base = Path(home) / FOLDER
    if not base.is_dir():
        return []
    keys = {p.stem for p in base.glob("*.json")} | {p.stem for p in base.glob("*.pt")}
    return sorted((_entry(base, key) for key in keys), key=lambda e: (e.saved, e.key))


def resumable(home: Path) -> int:
    """How many pending runs in `home` a node would resume: their notes read (their checkpoints
    are not opened: `swarm status` and the end of `swarm join` stay quick)."""
    base = Path(home) / FOLDER
    if not base.is_dir():
        return 0
    return sum(_note(note)[0] is not None for note in base.glob("*.json"))


def files(home: Path, key: str) -> list[Path]:
    """The files of the pending run `key`: note, checkpoint, a killed writer's leftovers."""
    base = Path(home) / FOLDER
    named = [base / f"{key}.json", base / f"{key}.pt"]
    return [p for p in named if p.is_file()] + sorted(base.glob(f".{glob.escape(key)}.pt.*.tmp"))


def discard(home: Path, key: str) -> int:
    """Delete the files of the pending run `key`; how many there were."""
    gone = files(home, key)
    for path in gone:
        path.unlink(missing_ok=True)
    return len(gone)


def match(entries: list[Entry], prefix: str) -> Entry:
    """The one entry whose id starts with `prefix`; ValueError (one line) when none or several."""
    found = [e for e in entries if e.key.startswith(prefix)] if prefix else []
    if not found:
        raise ValueError(f"no pending run has an id starting with {prefix!r} (see swarm pending)")
    if len(found) > 1:
        ids = ", ".join(e.key[:12] for e in found[:5])
        raise ValueError(f"{prefix!r} starts {len(found)} pending run ids ({ids}): "
                         "give more characters")
    return found[0]


def _entry(base: Path, key: str) -> Entry:
    stats = [s for s in map(_stat, files(base.parent, key)) if s is not None]
    run, problem = _note(base / f"{key}.json")
    progress: dict[str, Any] = {}
    checkpoint = base / f"{key}.pt"
    if checkpoint.is_file():
        from node.harness.checkpoint import BadCheckpoint, summary   # torch: only when needed
        try:
            progress = summary(checkpoint)
        except BadCheckpoint as exc:
            problem = problem or f"checkpoint {exc}"
    return Entry(key=key, run=run, problem=problem, progress=progress,
                 saved=max((s.st_mtime for s in stats), default=0.0),
                 size=sum(s.st_size for s in stats), trainer=trainer(base, key))


def trainer(base: Path, key: str) -> int | None:
    """The pid a live `swarm run` wrote in the run's lock file, or None. Read, never locked: a
    listing that took the lock, even briefly, could refuse a `swarm run` starting meanwhile. A
    dead holder's file names a pid that is gone (or, rarely, reused: the listing then says
    "training" of a run nobody trains, which the next listing after its lock is taken corrects)."""
    import psutil

    try:
        pid = int((base / f"{key}.lock").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and psutil.pid_exists(pid) else None


def _stat(path: Path) -> Any:
    """`path`'s stat, or None when it went meanwhile (a run finishing beside the listing)."""
    try:
        return path.stat()
    except OSError:
        return None


def _note(path: Path) -> tuple[Pending | None, str | None]:
    """The run a note holds, or why not."""
    if not path.is_file():
        return None, "no note (a node deletes such a checkpoint)"
    try:
        run = parse(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return None, f"note unreadable ({type(exc).__name__})"
    if run.key != path.stem:
        return None, "note unreadable (not this file's run)"
    return run, None
