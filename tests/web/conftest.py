"""A home holding a small swarm's history (memory/synthetic.py: real signed records, real DuckDB)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memory import synthetic
from memory.store import Store
from node.home import memory_path


@pytest.fixture
def history_home(home: Path) -> Path:
    """A home whose memory holds `synthetic.history()` (no daemon runs on it)."""
    with Store(memory_path(home), helpers=0) as store:
        report = store.add(synthetic.history())
        assert report.accepted == len(synthetic.history()) and not report.rejected
    return home


def cli_json(*args: str) -> Any:
    """`swarm ARGS --json`, parsed (the numbers the pages must show)."""
    from swarm.cli import app
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
