"""A home holding a small swarm's history (memory/synthetic.py: real signed records, real DuckDB).

The history's three authors are pinned in the home (trust roots), so their claims are judged
here; a fourth key, trusted by nobody, adds a fabricated claim that must only ever show as
untrusted (docs/TRUST.md).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memory import canonical, codec, records as R, synthetic
from memory.store import Store
from node.home import memory_path
from roles import trust

FAKE_DIFF = {"n_embd": 512}          # the fabricator's config, far better than anything real


def history() -> list[R.Record]:
    """The swarm's records (6 confirmation runs per claim: enough for a verdict derived here)."""
    return synthetic.history(confirms=6)


def fabrication(after_ts: int, baseline_runs: list[str]) -> list[R.Record]:
    """An untrusted key's runs (sane numbers, impossible to believe) and its claim on them."""
    (fake,) = synthetic.keypairs(1, seed=999)
    config = {**synthetic.HISTORY_BASE, **FAKE_DIFF}
    runs = [codec.sign(fake, "run", i + 1, synthetic.run_body(
        synthetic.HISTORY_TRACK, config, seed=500 + i, val_bpb=1.5 + 0.001 * i, purpose="confirm"),
        ts=after_ts + 1000 * (i + 1)) for i in range(6)]
    claim = R.ClaimBody(track=synthetic.HISTORY_TRACK,
                        baseline_hash=canonical.config_hash(synthetic.HISTORY_BASE),
                        candidate_hash=canonical.config_hash(config), diff=FAKE_DIFF,
                        baseline_runs=baseline_runs, candidate_runs=[r.id for r in runs],
                        effect=-0.24, summary="n_embd=512 beats everything")
    return runs + [codec.sign(fake, "claim", 7, claim, ts=after_ts + 10_000)]


@pytest.fixture
def history_home(home: Path) -> Path:
    """A home whose memory holds the history and the fabrication, with the history's authors
    pinned (no daemon runs on it)."""
    records = history()
    base = [r.id for r in records if r.kind == "run" and r.body.purpose == "baseline"]
    records += fabrication(max(r.ts for r in records), base)
    with Store(memory_path(home), helpers=0) as store:
        report = store.add(records)
        assert report.accepted == len(records) and not report.rejected
    for author in sorted({r.author for r in history()}):
        trust.pin(home, author, note="test swarm")
    return home


def cli_json(*args: str) -> Any:
    """`swarm ARGS --json`, parsed (the numbers the pages must show)."""
    from swarm.cli import app
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@contextmanager
def served(app: Any) -> Iterator[int]:
    """`app` served by uvicorn on 127.0.0.1 in a thread, as `swarm dashboard` serves it; yields
    its port."""
    import uvicorn

    # a bounded graceful stop, as `swarm dashboard` has: a client still holding an event stream
    # (a page left open) kept the server running past the join below, and the caller then closed
    # the memory under a query of that stream ("connection is busy with another call", seen on
    # a loaded machine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120          # generous: a loaded machine; ends once it serves
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the dashboard did not start serving in 120 s"
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(120)                        # generous: ends once the server has stopped
        assert not thread.is_alive(), "the dashboard did not stop in 120 s"
