"""Command groups of the `swarm` CLI; each module has `register(app, bench_app)`.

To add a group: write swarm/commands/NAME.py with `register`, and list NAME in `_MODULES`.
Keep heavy imports (torch, libp2p) inside the command functions.
"""
from __future__ import annotations

import importlib
from types import ModuleType

_MODULES: tuple[str, ...] = ("browse", "memory_cmds", "harness", "network", "roles", "trust", "web")


def modules() -> list[ModuleType]:
    """The command modules, imported."""
    return [importlib.import_module(f"swarm.commands.{name}") for name in _MODULES]
