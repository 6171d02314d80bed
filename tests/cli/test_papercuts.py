"""A new user's papercuts: Ctrl-C while `swarm` still imports, bench options that took inf/nan."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main

from memory import synthetic
from memory.store import Store
from node.home import memory_path
from swarm.cli import app

ROOT = Path(__file__).resolve().parents[2]
LONG_SQL = "SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000) b"
# what pip writes as .venv/bin/swarm
SCRIPT = ("import sys\nfrom swarm.cli import main\nif __name__ == '__main__':\n"
          "    sys.exit(main())\n")


@pytest.mark.parametrize("how", ["script", "module"])
def test_ctrl_c_while_the_cli_imports_is_one_line(tmp_path: Path, how: str) -> None:
    """Ctrl-C in the first ~0.5 s of `swarm` (typer, rich, the command modules importing) was a
    KeyboardInterrupt traceback through importlib. The signal goes as soon as the `swarm`
    package is imported (-X importtime says so on stderr), i.e. while the rest still imports;
    should it land later, in the query, the command's own Ctrl-C says the same line."""
    with Store(memory_path(tmp_path / "home")) as store:
        store.add(synthetic.runs(synthetic.keypairs(1), 2))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "swarm").write_text(SCRIPT)
    start = [str(tmp_path / "bin" / "swarm")] if how == "script" else ["-m", "swarm.cli"]
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", *start, "sql", LONG_SQL, "--query-timeout", "120",
         "--home", str(tmp_path / "home")], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:            # "import time:   self |  cumulative |   swarm"
        seen.append(line)
        if line.split("|")[-1].strip() == "swarm":
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    said = [line for line in err.splitlines(keepends=True) if not line.startswith("import time")]
    assert (proc.returncode, out, said) == (130, "", ["error: interrupted\n"]), "".join(seen) + err


def _float_options() -> list[tuple[str, object, object]]:
    """(command path, click command, parameter) of every float option of every command."""
    found = []

    def walk(command: object, path: str) -> None:
        for param in command.params:                            # type: ignore[attr-defined]
            if "float" in repr(param.type_descriptor.annotation):
                found.append((f"{path} {param.opts[0]}", command, param))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "swarm")
    return found


def test_no_float_option_takes_inf_or_nan() -> None:
    """`swarm bench network --rate inf`, `bench search --effect nan`, `bench checkpoint
    --stop-after inf`, ...: taken as given (times elsewhere were bounded already)."""
    options = _float_options()
    assert any(path == "swarm bench search --effect" for path, _, _ in options)
    taken = []
    for path, command, param in options:
        for value in ("inf", "-inf", "nan"):
            try:
                param.process_value(typer.Context(command), value)    # type: ignore[attr-defined]
            except Exception as exc:            # noqa: BLE001 - click's BadParameter (vendored)
                assert type(exc).__name__ == "BadParameter", (path, value, exc)
            else:
                taken.append(f"{path} {value}")
    assert not taken


def test_a_bench_option_out_of_range_is_a_usage_line() -> None:
    done = subprocess.run([sys.executable, "-m", "swarm.cli", "bench", "network", "--rate", "inf"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.startswith("error: Invalid value for '--rate'") and \
        done.stderr.count("\n") == 1, done.stderr


def test_a_failed_run_leaves_no_empty_folders_in_a_new_home(tmp_path: Path) -> None:
    """A `swarm run` that failed before training (here: data that is not the track's) left
    HOME/ and HOME/checkpoints/ behind, empty; on a home already in use it adds nothing."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.txt", "valid.txt"):
        (data / name).write_text("not the pinned text\n")
    used = tmp_path / "used"
    (used / "cache").mkdir(parents=True)
    for home in (tmp_path / "new", used):
        done = subprocess.run(
            [sys.executable, "-m", "swarm.cli", "run", "--home", str(home), "--data-dir",
             str(data), "--budget-tokens", "20000", "--no-record"],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 1 and "train.txt has 20 bytes, the pin" in done.stderr, \
            done.stderr
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in used.rglob("*")) == ["cache"]


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    """`swarm memory export` said "wrote 1 records"; the progress panel "over 1 runs", a run's
    text view "loss curve: 1 points"."""
    from rich.console import Console
    from typer.testing import CliRunner

    from swarm.progress_view import _best
    from swarm.readable import print_run_readable

    home = tmp_path / "home"
    with Store(memory_path(home)) as store:
        store.add(synthetic.runs(synthetic.keypairs(1), 1))
    done = CliRunner().invoke(app, ["memory", "export", str(tmp_path / "one.swarm"),
                                    "--home", str(home)])
    assert done.exit_code == 0 and done.output.startswith("wrote 1 record to "), done.output
    assert _best({"val_bpb": 1.5, "runs": 1}) == "val_bpb 1.5000 over 1 run: the track's base config"
    console = Console(record=True, width=200)
    print_run_readable(console, {"curve": [{"step": 0, "train_loss": 9.0}]})
    assert console.export_text().startswith("loss curve: 1 point, 9.000 at step 0")
