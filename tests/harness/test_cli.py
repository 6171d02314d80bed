"""`swarm tracks`, `swarm run`: tables and JSON, one-line errors, a fast-starting CLI."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from node.harness.data import shared_data_dir
from node.harness.runner import REPO_ROOT, child_env
from node.harness.tracks import TRACKS
from swarm.cli import app

cli = CliRunner()


def test_cli_import_does_not_load_torch() -> None:
    code = "import sys, swarm.cli, node.harness; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=child_env(1), cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_tracks_json_and_table() -> None:
    res = cli.invoke(app, ["tracks", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["tinystories-cpu"]["id"] == TRACKS["tinystories-cpu"].id
    assert rows["tinystories-gpu"]["id"] is None and not rows["tinystories-gpu"]["data_pinned"]
    table = cli.invoke(app, ["tracks"])
    assert table.exit_code == 0 and "tinystories" in table.output


@pytest.mark.parametrize("args,message", [
    (["run", "--set", "lr"], "knob=value"),
    (["run", "--set", "nope=1"], "unknown knob"),
    (["run", "--set", "lr=7"], "refused: lr"),
    (["run", "--track", "nope"], "unknown track"),
    (["run", "--device", "tpu"], "--device"),
])
def test_run_bad_input_is_one_line(args: list[str], message: str, tmp_path) -> None:
    res = cli.invoke(app, [*args, "--home", str(tmp_path)])
    assert res.exit_code == 1 and message in " ".join(res.output.split())
    assert "Traceback" not in res.output and not list(tmp_path.iterdir())   # nothing changed


def test_run_missing_local_data_is_one_line(tmp_path) -> None:
    res = cli.invoke(app, ["run", "--data-dir", str(tmp_path), "--home", str(tmp_path / "h")])
    assert res.exit_code == 1 and "train.txt is missing" in " ".join(res.output.split())


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data/tinystories")
def test_run_names_the_home_its_record_went_to(tmp_path) -> None:
    # `recorded as run ID (swarm show ID)` sent a newcomer who ran with --home to the default
    # home, where `swarm show ID` found nothing
    home = tmp_path / "my home"
    res = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["run", "--budget-tokens", "2048", "--threads", "1", "--data-dir",
              str(shared_data_dir()), "--home", str(home)])
    assert res.exit_code == 0, res.output
    run_id = json.loads(cli.invoke(app, ["runs", "--json", "--home", str(home)]).stdout)[0]["id"]
    assert f"(swarm show {run_id[:12]} --home '{home}')" in res.stderr
    # its quantities as people read them: `wall_s 86.9539`, `peak_mem_mb 428.9883`, `tokens
    # 19456` and `hardware cpu AMD EPYC x2` were printed
    cells = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in res.stdout.splitlines()
             if ln.count("│") == 3}
    metrics = json.loads(cli.invoke(app, ["show", run_id, "--json", "--home", str(home)])
                         .stdout)["body"]["metrics"]
    assert cells["tokens"] == f"{metrics['tokens']:,}" and cells["params"] == f"{metrics['params']:,}"
    assert cells["wall_s"] == f"{metrics['wall_s']:,.1f}"
    assert cells["peak_mem_mb"] == f"{metrics['peak_mem_mb']:,.0f}"
    assert re.fullmatch(r"cpu .+, \d+ cores?", cells["hardware"]), cells["hardware"]


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data/tinystories")
def test_run_json_on_the_cpu_track(tmp_path) -> None:
    res = cli.invoke(app, ["run", "--track", "tinystories-cpu", "--seed", "1", "--budget-tokens", "2048",
                           "--threads", "1", "--data-dir", str(shared_data_dir()),
                           "--home", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)                   # stdout is pure JSON: progress goes to stderr
    assert out["status"] == "ok" and out["metrics"]["steps"] == 2 and out["seed"] == 1
    assert out["track"] == TRACKS["tinystories-cpu"].with_budget(2048).id != TRACKS["tinystories-cpu"].id
    # the run was signed with the home's identity and stored: browsing sees it
    runs = json.loads(cli.invoke(app, ["runs", "--json", "--home", str(tmp_path)]).stdout)
    assert [r["id"] for r in runs] == [out["record_id"]]
    assert runs[0]["val_bpb"] == out["metrics"]["val_bpb"] and runs[0]["purpose"] == "manual"
    shown = json.loads(cli.invoke(app, ["show", out["record_id"][:10], "--json",
                                        "--home", str(tmp_path)]).stdout)
    assert shown["body"]["config_hash"] == out["config_hash"] and shown["seq"] == 1


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data/tinystories")
def test_run_interrupted_says_so_and_records_nothing(tmp_path) -> None:
    """Ctrl-C during `swarm run` exited 130 with nothing said; the run is not recorded."""
    import signal

    from swarm.bench.nodes import wait_for

    # Ctrl-C as a terminal sends it: SIGINT handled by Python's default handler, even where this
    # test runs from a background job (bash starts those with SIGINT ignored, and the ignoring is
    # inherited: CI's `nohup ... &` made the command ignore the signal and train on)
    cli_main = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "from swarm.cli import main; main()")
    proc = subprocess.Popen([sys.executable, "-c", cli_main, "run", "--budget-tokens", "50000000",
                             "--threads", "1", "--data-dir", str(shared_data_dir()),
                             "--home", str(tmp_path)], cwd=REPO_ROOT, env=child_env(1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the run's own process: training is under way (the signal then ends a wait on its pipe)
        wait_for(lambda: _runs_a_child(proc.pid), 600, "the run's process")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted: the run was stopped and not recorded" in err, err
    listed = cli.invoke(app, ["runs", "--json", "--home", str(tmp_path)])
    assert listed.exit_code != 0 or json.loads(listed.stdout) == [], listed.output


# a small model for a few hundred steps: seconds on one CPU thread
SMALL = ["--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2", "--budget-tokens",
         "204800", "--seed", "3", "--threads", "1", "--no-record", "--json"]


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data/tinystories")
def test_run_stopped_by_ctrl_c_resumes_to_the_same_numbers(tmp_path) -> None:
    """Ctrl-C after a checkpoint: exit 130, said resumable; the same command resumes from the
    step it stopped at and ends with the uninterrupted run's numbers; --fresh starts over."""
    import shutil
    import signal

    from swarm.bench.nodes import wait_for

    data = ["--data-dir", str(shared_data_dir())]
    home = tmp_path / "home"
    args = ["run", *SMALL, *data, "--home", str(home)]
    whole = cli.invoke(app, args)
    assert whole.exit_code == 0, whole.output
    cli_main = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "from swarm.cli import main; main()")      # as in the test above
    proc = subprocess.Popen([sys.executable, "-c", cli_main, *args, "--checkpoint-every", "0.2"],
                            cwd=REPO_ROOT, env=child_env(1), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: list(home.glob("checkpoints/*.pt")), 600, "a first checkpoint", 0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "run the same command to resume it" in err, err
    step = int(err.split("checkpointed at step ")[1].split(":")[0])
    listed = json.loads(cli.invoke(app, ["pending", "--json", "--home", str(home)]).stdout)
    assert [(r["purpose"], r["step"], r["steps"]) for r in listed] == [("manual", step, 200)]
    kept = tmp_path / "kept"
    shutil.copytree(home / "checkpoints", kept)
    for extra, said in (([], f"resuming from step {step} of 200"), (["--fresh"], None)):
        again = cli.invoke(app, [*args, *extra])
        assert again.exit_code == 0, again.output
        assert (said in again.stderr) if said else "resuming" not in again.stderr, again.stderr
        a, b = json.loads(whole.stdout)["metrics"], json.loads(again.stdout)["metrics"]
        assert (a["val_bpb"], a["train_loss"], a["steps"]) == (b["val_bpb"], b["train_loss"], 200)
        assert not list((home / "checkpoints").iterdir())      # finished: nothing pending
        shutil.rmtree(home / "checkpoints")
        shutil.copytree(kept, home / "checkpoints")             # the stopped run, for --fresh


def _runs_a_child(pid: int) -> bool:
    """Whether `pid` has a `python -m node.harness.run` child (a child may end while read)."""
    import psutil

    for child in psutil.Process(pid).children():
        try:
            if "node.harness.run" in " ".join(child.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data/tinystories")
def test_run_on_a_damaged_memory_stops_before_it_trains(tmp_path) -> None:
    """A memory with a damaged block (its DuckDB header whole) passed the check before training:
    the run trained, then ended `the run finished but was not recorded`, its minutes lost."""
    from memory import synthetic
    from memory.store import Store
    from node.home import memory_path

    home = tmp_path / "home"
    with Store(memory_path(home)) as store:
        store.add(synthetic.runs(synthetic.keypairs(1), 3))
    with memory_path(home).open("r+b") as handle:       # a bad block after the header
        handle.seek(12288 + 200)
        handle.write(b"\xff" * 64)
    before = memory_path(home).read_bytes()
    res = cli.invoke(app, ["run", "--budget-tokens", "2048", "--threads", "1", "--data-dir",
                           str(shared_data_dir()), "--home", str(home)])
    assert res.exit_code == 1 and "is damaged" in res.stderr and "--no-record" in res.stderr
    assert "finished" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert memory_path(home).read_bytes() == before and not (home / "checkpoints").exists()
