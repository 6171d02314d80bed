"""The gate a home's node judges claims by, kept in `HOME/gate.json` for the browsing commands.

`swarm join --gate KEY=VALUE` / `--min-baseline N` change the statistics gate of the node's roles.
The browsing commands and the dashboard (swarm/conclusions.py) derive claims' statuses on their
own, and used the default gate: in the small-gate swarm of docs/RUNNING.md the node's own panel
counted two verified claims while `swarm findings` and its dashboard called both `not_supported`
("n=2 < 6 confirmation runs"). So `swarm join` writes the fields it changed here (no file when it
changed none) once it holds the home, and `Conclusions` reads them back: a home's browsing judges
as its node last did.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from memory.stats import GateParams

log = logging.getLogger(__name__)
GATE_FILE = "gate.json"


def changed_fields(params: GateParams) -> dict[str, Any]:
    """The fields of `params` that differ from the defaults."""
    default = GateParams()
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(GateParams)
            if getattr(params, f.name) != getattr(default, f.name)}


def save_gate(home: Path, params: GateParams) -> None:
    """Write HOME/gate.json atomically with the changed fields; remove it when none changed.
    Unchanged, it is not written; a write that fails (a full disk) is logged, never raised: the
    node runs by its gate whatever its browsing reads."""
    path = Path(home) / GATE_FILE
    changed = changed_fields(params)
    text = json.dumps(changed, indent=1, sort_keys=True) + "\n"
    try:
        if not changed:
            path.unlink(missing_ok=True)
        elif not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
    except OSError as exc:
        log.warning("cannot record the gate in %s (%s): browsing may judge by another", path, exc)


def load_gate(home: Path | None) -> GateParams:
    """The gate of HOME/gate.json; the defaults without one. A file that cannot be read, or a
    field of the wrong name or type, is logged in one line and ignored (the defaults)."""
    if home is None:
        return GateParams()
    path = Path(home) / GATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return GateParams()
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return GateParams()
    try:
        return _params(data)
    except (TypeError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return GateParams()


def _params(data: Any) -> GateParams:
    """GateParams from a JSON object of changed fields; TypeError / ValueError on a bad one."""
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    default = GateParams()
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in {f.name for f in dataclasses.fields(GateParams)}:
            raise ValueError(f"unknown gate field {key!r}")
        want = type(getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                want is int and not isinstance(value, int)):
            raise TypeError(f"{key} wants a number of type {want.__name__}, not {value!r}")
        values[key] = want(value)
    return GateParams(**values)
