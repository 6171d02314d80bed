"""Command groups of the `swarm` CLI; each module has `register(app, bench_app)`.

To add a group: write swarm/commands/NAME.py with `register`, and list NAME in `_MODULES`.
Keep heavy imports (torch, libp2p) inside the command functions.
"""
from __future__ import annotations

import importlib
from types import ModuleType

# Bounds of numeric options, so a typo (an extra zero or ten) is a usage error, not a failure
# deep inside: DuckDB's LIMIT takes at most a BIGINT, and a track's budget at most
# node.harness.tracks.MAX_BUDGET_TOKENS (not imported here: it costs 0.2 s at every start).
MAX_ROWS = 10**9
MAX_BUDGET_TOKENS = 10**12
# the longest time option a command takes (a year): `--lease inf` or `--query-timeout 1e300`
# passed the bounds, then failed in tracebacks (int(inf), a timer past TIMEOUT_MAX)
MAX_SECONDS = 365 * 24 * 3600
# benchmarks' rates (records per second) and effects (in noise sds): `--rate inf` or
# `--effect nan` were taken as given
MAX_RATE = 10**6
MAX_EFFECT_SD = 1000.0

# `swarm --help` lists commands under these headings, in this order: a newcomer looks for
# `join` first (it came ninth, after six browsing commands)
TAKE_PART = "Take part"
BROWSE = "Browse the memory"
# the order commands are registered in, within each heading
_MODULES: tuple[str, ...] = ("network", "harness", "pending", "browse", "trust", "memory_cmds",
                              "web", "roles")


def modules() -> list[ModuleType]:
    """The command modules, imported."""
    return [importlib.import_module(f"swarm.commands.{name}") for name in _MODULES]
