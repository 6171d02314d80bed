"""Pending runs: the runs this node started and has not published yet, each resumable.

A run started by a training role leaves two files in HOME/checkpoints/ until it is published:
`KEY.json`, written before the run starts (what the role asked for: track, config, seed, purpose,
ref, and the GPU its worker trains on), and `KEY.pt`, the run's own checkpoint
(node/harness/checkpoint.py), written while it trains. A node that stopped mid-run (Ctrl-C, a
shutdown, a crash, power loss) finds them at its next start and resumes that run first
(roles/resume.py). KEY digests the run's identity, so one pending run has one pair of files.

`swarm run` notes its runs here too (purpose `manual`, with the `setup` it ran with): the same
command resumes them; a node leaves them alone. `swarm pending` lists and discards them all
(roles/pending_list.py). While a `swarm run` trains, it holds `KEY.lock` (node/pidlock.py): a
second start of the same run, or a discard of it, is refused until it ends.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memory.atomic import write_atomic
from memory.canonical import config_hash
from node.pidlock import Held, PidLock

log = logging.getLogger(__name__)
FOLDER = "checkpoints"
MANUAL = "manual"           # the purpose of a `swarm run` run: resumed by that command, not a node


@dataclass(frozen=True)
class Pending:
    """One run started and not yet published."""

    track: str
    config: dict[str, Any]
    seed: int
    purpose: str
    ref: str | None
    device: str | None           # the worker's CUDA_VISIBLE_DEVICES (None: unpinned)
    setup: str | None = None     # a `swarm run`'s budget, threads and device: another is another run

    @property
    def key(self) -> str:
        """The run's identity as a file name."""
        ident = [self.track, config_hash(self.config), self.seed, self.purpose, self.ref,
                 self.device]
        if self.setup is not None:          # only then: a node's keys stay as they were
            ident.append(self.setup)
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:24]

    def describe(self) -> str:
        """A few words for a log line."""
        return f"{self.purpose} run of {config_hash(self.config)[:8]} seed {self.seed}"


def folder(home: Path) -> Path:
    """HOME/checkpoints (created)."""
    path = Path(home) / FOLDER
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_path(home: Path, run: Pending) -> Path:
    """Where the run's process writes its checkpoint."""
    return folder(home) / f"{run.key}.pt"


class RunHeld(RuntimeError):
    """A live `swarm run` holds this pending run (its message is one line for people)."""


def hold(home: Path, key: str) -> PidLock:
    """The lock on the pending run `key`, taken (`release(remove=True)` when done); RunHeld when
    a live process holds it: it trains that run and writes its checkpoint."""
    lock = PidLock(folder(home) / f"{key}.lock")
    try:
        lock.acquire()
    except Held as exc:
        raise RunHeld(f"run {key[:8]} is being trained by another swarm run (pid {exc.pid}) on "
                      f"{Path(home)}: wait for it to end, or stop it first") from None
    return lock


def mark(home: Path, run: Pending) -> bool:
    """Note `run` as started (atomically); False when it cannot be written (a full disk): the run
    then goes on without checkpoints."""
    path = folder(home) / f"{run.key}.json"
    try:
        write_atomic(path, json.dumps(asdict(run)), durable=True)
        return True
    except OSError as exc:
        log.warning("run not checkpointed: cannot write %s (%s)", path.name, exc.strerror or exc)
        return False


def drop(home: Path, run: Pending) -> None:
    """Forget `run`: its note and its checkpoint (published, refused, or no longer wanted)."""
    for suffix in (".pt", ".json"):
        (folder(home) / f"{run.key}{suffix}").unlink(missing_ok=True)


def listed(home: Path, device: str | None) -> list[Pending]:
    """The pending runs of the worker pinned to `device`, oldest first (never `swarm run`'s). An
    unreadable note is deleted with one warning line; a checkpoint without a note is deleted
    silently."""
    out: list[tuple[float, Pending]] = []
    base = folder(home)
    for note in base.glob("*.json"):
        try:
            run = parse(json.loads(note.read_text()))
            if run.key != note.stem:
                raise ValueError("renamed")
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("pending run %s dropped: unreadable (%s)", note.stem[:12], type(exc).__name__)
            note.unlink(missing_ok=True)
            (base / f"{note.stem}.pt").unlink(missing_ok=True)
            continue
        if run.device == device and run.purpose != MANUAL:
            out.append((note.stat().st_mtime, run))
    notes = {p.stem for p in base.glob("*.json")}
    for orphan in base.glob("*.pt"):
        if orphan.stem not in notes:
            orphan.unlink(missing_ok=True)
    return [run for _, run in sorted(out, key=lambda item: item[0])]


def parse(data: Any) -> Pending:
    """The pending run a note holds (its JSON, loaded); raises ValueError, TypeError, KeyError."""
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise ValueError("not a pending run")
    ref, device, setup = data.get("ref"), data.get("device"), data.get("setup")
    run = Pending(track=str(data["track"]), config=data["config"], seed=int(data["seed"]),
                  purpose=str(data["purpose"]), ref=None if ref is None else str(ref),
                  device=None if device is None else str(device),
                  setup=None if setup is None else str(setup))
    return run
