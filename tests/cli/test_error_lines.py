"""An error after a progress bar started is one line on stderr, with no blank line before or after
it: off a terminal, rich's transient `Progress` printed an empty line when it stopped."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memory import stream
from node.harness.data import shared_data_dir
from swarm.cli import app

runner = CliRunner()


def _only_error_line(stderr: str, words: str) -> None:
    lines = stderr.split("\n")
    assert lines[0].startswith("error: ") and words in lines[0], stderr
    assert lines[1:] == [""], repr(stderr)            # one line, nothing before or after


def test_a_damaged_import_is_one_line(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.swarm"
    damaged.write_bytes(stream.MAGIC + b"\x01")       # a header, then an item that is no record
    res = runner.invoke(app, ["memory", "import", str(damaged), "--home", str(tmp_path / "h")])
    assert res.exit_code == 1
    _only_error_line(res.stderr, "not a record")


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data/tinystories")
def test_a_run_refused_after_its_bar_started_is_one_line(tmp_path: Path) -> None:
    """Refused in the run's process (the time check), after the progress bars started. The
    limit is far below the hours 1e9 tokens need, and far above a loaded machine's start of
    the run's process (with 5 s the run sometimes timed out before the check: a flaky pass)."""
    res = runner.invoke(app, ["run", "--budget-tokens", "1000000000", "--timeout", "300",
                              "--threads", "1", "--data-dir", str(shared_data_dir()),
                              "--no-record", "--home", str(tmp_path)])
    assert res.exit_code == 1
    _only_error_line(res.stderr, "refused: needs at least")
