"""The defaults and limits README.md and docs/ state are the code's.

Each fact is a phrase a doc shows, built from the constant it states: a changed constant fails
here until its doc says the new value (and a reworded phrase until this list follows it).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from memory.codec import MAX_RECORD_BYTES
from memory.records import MAX_CURVE_POINTS
from memory.store import HELPER_MIN_BATCH
from node.daemon import SERVICE_STOP_S
from node.harness.experiment import DEFAULT_TIMEOUT_S
from node.harness.runner import STOP_GRACE_S
from node.harness.spec import CHECKPOINT_EVERY_S
from node.host import IDLE_BACKOFF
from node.nat import DIALBACK_ASK, MAX_RELAYS
from node.relay import RelayCaps
from roles.deadline import DEFAULT_TOTAL_S
from roles.experimenter import BASELINE_PER_UNIT
from roles.judge import PER_STEP
from roles.spotcheck import SPOT_SHARE
from roles.trust import (CROSS_HW_FLOOR, CROSS_HW_MIN_RUNS, CROSS_HW_REFUTE, CROSS_HW_SDS,
                         EXACT_REFUTE)
from swarm.cli import app
from swarm.commands.browse import SQL_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[1]


def _defaults(*path: str) -> dict[str, object]:
    """The option defaults of `swarm PATH...`, by parameter name."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {p.name: p.default for p in command.params}


def _text(doc: str) -> str:
    return " ".join((ROOT / doc).read_text(encoding="utf-8").split())     # lines joined


def _facts() -> list[tuple[str, str]]:
    join, dashboard = _defaults("join"), _defaults("dashboard")
    caps = RelayCaps()
    port = re.search(r"/tcp/(\d+)$", join["listen"][0]).group(1)
    every = f"{CHECKPOINT_EVERY_S:g}"
    return [
        ("README.md", f"every {every} s of training (`--checkpoint-every S`)"),
        ("docs/RUNNING.md", f"between a run's checkpoints (default {every};"),
        ("docs/RUNNING.md", f"(every {every} s of training; `--checkpoint-every S`)"),
        ("docs/HARNESS.md", f"every `checkpoint_every_s` seconds of training (default {every},"),
        ("docs/RUNNING.md", f"The node listens on TCP {port} on every interface by default"),
        ("docs/RUNNING.md", f"(default {join['sync_interval']:g}; up to {IDLE_BACKOFF:g}x that "
                            "while in sync)"),
        ("docs/RUNNING.md", f"a separate swarm (default `{join['network']}`;"),
        ("docs/RUNNING.md", f"how long a claim lease holds ({join['lease']:g})"),
        ("docs/RUNNING.md", f"(default {join['query_timeout']:g} s; `swarm sql` asks for its own "
                            f"`--query-timeout`, default {SQL_TIMEOUT_S:g} s)"),
        ("docs/RUNNING.md", f"default {DEFAULT_TIMEOUT_S:g} s: on a busy laptop"),
        ("docs/RUNNING.md", f"at most {DEFAULT_TOTAL_S:g} s in all (60 s per read)"),
        ("docs/RUNNING.md", f"judges up to {PER_STEP} other nodes' run samples per step"),
        ("docs/RUNNING.md", f"a baseline top-up is up to {BASELINE_PER_UNIT} runs"),
        ("docs/RUNNING.md", f"on http://127.0.0.1:{dashboard['port']}/ unless `--port`"),
        ("docs/RUNNING.md", f"{caps.reservations_per_ip} reservations per IP and "
                            f"{caps.reservations_total} in all, {caps.circuits_per_ip} circuits "
                            f"per IP and {caps.circuits_total} in all, "
                            f"{caps.circuits_per_reservation} circuits per reservation, "
                            f"{caps.circuit_bytes >> 20} MiB and {caps.circuit_duration_s // 60} "
                            "minutes per circuit, reservations of "
                            + ("one hour" if caps.reservation_ttl_s == 3600
                               else f"{caps.reservation_ttl_s} s")),
        ("docs/RUNNING.md", f"asks up to {['', 'one', 'two', 'three'][DIALBACK_ASK]} peers"),
        ("docs/RUNNING.md", f"reserves a slot on up to {['', 'one', 'two'][MAX_RELAYS]} relays"),
        ("docs/RUNNING.md", f"the first batch of {HELPER_MIN_BATCH:,} records or more"),
        ("docs/HARNESS.md", f"waits up to {STOP_GRACE_S:g} s (the daemon waits "
                            f"{SERVICE_STOP_S:g} s per service)"),
        ("docs/TRUST.md", f"at most {SPOT_SHARE:.0%} of its own runs on a track on replays"),
        ("docs/TRUST.md", f"{CROSS_HW_SDS:g} standard deviations (`CROSS_HW_SDS`)"),
        ("docs/TRUST.md", f"never under {CROSS_HW_FLOOR:g} bpb (`CROSS_HW_FLOOR`), and "
                          f"{CROSS_HW_REFUTE:g} bpb (`CROSS_HW_REFUTE`) while the roots hold "
                          f"fewer than {CROSS_HW_MIN_RUNS} such runs"),
        ("docs/TRUST.md", f"bit-identical hardware beyond {EXACT_REFUTE:g} (`EXACT_REFUTE`)"),
        ("docs/RECORDS.md", f"the whole record is at most {MAX_RECORD_BYTES >> 10} KiB"),
        ("docs/HARNESS.md", f"at most {MAX_CURVE_POINTS} buckets; when a {MAX_CURVE_POINTS + 1}th"),
    ]


@pytest.mark.parametrize("doc, phrase", _facts(), ids=lambda v: v[:40])
def test_a_stated_default_is_the_codes(doc: str, phrase: str) -> None:
    assert phrase in _text(doc)
