"""The set-up the README's two commands run (`make join`, `make test`), read with `make -n`."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _torch_line(*args: str) -> str:
    """The pip line that installs torch, as `make` would run it (nothing is run)."""
    out = subprocess.run(["make", "-n", "-B", ".venv/.installed", *args], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return next(line for line in out.splitlines() if "pip install" in line and "torch" in line)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_torch_is_pinned_and_its_index_can_be_chosen() -> None:
    plain = _torch_line()
    assert "torch==2.13.0" in plain.split() and "--index-url" not in plain
    chosen = _torch_line(f"TORCH_INDEX={CPU_INDEX}")
    assert chosen.split()[-2:] == ["--index-url", CPU_INDEX]
    assert "torch==2.13.0" in chosen.split()
