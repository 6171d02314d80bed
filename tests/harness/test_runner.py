"""The run subprocess: its JSON-lines contract, determinism, and every failure becoming a result."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest
import torch

from memory.records import RunBody
from node.harness.experiment import run_experiment
from node.harness.runner import (GUARD_FLOOR_MB, REPO_ROOT, UNDESCRIBED_GPU, TreeMemory,
                                 child_env, fallback_context, kill_tree, memory_limit_mb,
                                 run_accelerator)
from node.harness.samples import PROMPTS
from node.harness.spec import RunResult, RunSpec, to_run_body


@pytest.fixture()
def run(track, home, corpus, monkeypatch):
    monkeypatch.setenv("SWARM_HARNESS_FAULTS", "1")

    def go(overrides=None, seed=0, **kw) -> RunResult:
        kw.setdefault("threads", 1)
        return run_experiment(track, overrides or {}, seed, home=home, data_dir=corpus[0], **kw)
    return go


@pytest.mark.timeout(900)           # 88 s on a loaded 2-core machine
def test_json_lines_contract(prepared, home) -> None:
    spec = RunSpec(track=prepared.track, config=prepared.track.base, seed=3, threads=1,
                   tokenizer=str(prepared.tokenizer), train_tokens=str(prepared.train_tokens),
                   eval_tokens=str(prepared.eval_tokens), cache=str(home), progress_every_s=0.01)
    proc = subprocess.run([sys.executable, "-m", "node.harness.run"], input=spec.model_dump_json(),
                          capture_output=True, text=True, env=child_env(1), cwd=REPO_ROOT, timeout=600)
    events = [json.loads(line) for line in proc.stdout.splitlines()]   # every line is JSON
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "result" and kinds.count("result") == 1
    assert "progress" in kinds
    prog = next(e for e in events if e["event"] == "progress")
    assert set(prog) >= {"step", "tokens", "loss", "tokens_per_s"}
    result = RunResult.model_validate(events[-1]["result"])
    m = result.metrics
    assert result.status == "ok" and result.track == prepared.track.id
    assert m.steps == 4096 // 128 and m.tokens == 4096 and 0 < m.val_bpb < 10
    assert m.params > 0 and m.tokens_per_s > 0 and m.mfu > 0 and m.peak_mem_mb > 0
    assert result.config_hash == prepared.track.base.hash()


@pytest.mark.timeout(900)           # 190 s on a loaded 2-core machine, against the default 300 s
def test_a_compile_that_fails_falls_back_to_eager_and_says_so(prepared, home) -> None:
    """A box whose C++ compiler does not work (a volunteer's GPU box may lack one for Triton's
    launcher): the compiled run trains eager instead of crashing, and its record says why."""
    spec = RunSpec(track=prepared.track, config=prepared.track.base, seed=3, threads=1,
                   tokenizer=str(prepared.tokenizer), train_tokens=str(prepared.train_tokens),
                   eval_tokens=str(prepared.eval_tokens), cache=str(home), compile="on")
    env = {**child_env(1), "CXX": "/bin/false"}           # inductor's compiler, found broken
    proc = subprocess.run([sys.executable, "-m", "node.harness.run"], input=spec.model_dump_json(),
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=600)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["compile"] is True
    result = RunResult.model_validate(events[-1]["result"])
    assert result.status == "ok", result.error
    assert result.software["compile"] == "false"
    assert "compiler" in result.software["compile_error"].lower()
    assert 0 < result.metrics.val_bpb < 10


def test_same_seed_same_numbers_and_run_body(run) -> None:
    a, b = run(seed=7), run(seed=7)
    assert a.status == b.status == "ok"
    assert abs(a.metrics.val_bpb - b.metrics.val_bpb) < 1e-6
    assert a.metrics.train_loss == b.metrics.train_loss
    # the same seed writes the same samples; the curve and the quality measures come with them
    assert [s.prompt for s in a.samples] == list(PROMPTS) and a.samples == b.samples
    assert any(s.text.strip() for s in a.samples)
    assert a.curve == b.curve and len(a.curve) == a.metrics.steps == 32      # 32 steps: one point each
    assert a.quality == b.quality and set(a.quality) >= {"repetition", "distinct_1", "unknown_words"}
    body = to_run_body(a, "replay", "ab" * 32)
    assert isinstance(body, RunBody) and body.purpose == "replay" and body.metrics == a.metrics
    assert body.config == a.config and body.track == a.track
    assert (body.curve, body.samples, body.quality) == (a.curve, a.samples, a.quality)


def test_refused_specs_become_results(run) -> None:
    bad = run({"n_head": 3})
    assert bad.status == "refused" and "divisible" in bad.error
    assert to_run_body(bad, "manual").status == "refused"
    big = run({"n_embd": 1024, "n_head": 8, "n_layer": 24}, memory_limit_mb=700)
    assert big.status == "refused" and "GiB" in big.error
    assert run(budget_tokens=100).status == "refused"


def test_a_run_bound_for_cuda_that_dies_early_is_not_recorded_as_cpu(run) -> None:
    """A spec for CUDA refused before the child described its GPU: its record says cuda, its GPU
    unnamed, never this machine's CPU (which did not train it)."""
    res = run({"n_head": 3}, device="cuda")
    assert res.status == "refused" and res.hardware.accelerator == "cuda"
    assert res.hardware.device_name == UNDESCRIBED_GPU and res.hardware.memory_gb == 0
    assert run({"n_head": 3}, device="cpu").hardware.accelerator == "cpu"


def test_fallback_accelerator_follows_the_spec_and_the_visible_devices(monkeypatch) -> None:
    assert run_accelerator("cuda") == "cuda" and run_accelerator("cpu", "0") == "cpu"
    assert run_accelerator("auto", "1") == "cuda"            # a worker pinned to a GPU
    assert run_accelerator("auto", "") == run_accelerator("auto", "-1") == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")        # torch is loaded here: it decides,
    cuda = torch.cuda.is_available()                         # not a GPU the env names in vain
    assert run_accelerator("auto") == ("cuda" if cuda else "cpu")
    assert fallback_context(3, "cuda")["hardware"].cores == 3


@pytest.mark.parametrize("visible,accelerator", [("0", "cuda"), ("", "cpu")])
def test_fallback_context_does_not_load_torch(visible: str, accelerator: str) -> None:
    """Without torch the parent takes its CUDA_VISIBLE_DEVICES as the hint, and loads none."""
    code = ("import sys; from node.harness.runner import fallback_context; "
            "hw = fallback_context(1, 'auto')['hardware']; print(hw.accelerator, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                         env={**child_env(1), "CUDA_VISIBLE_DEVICES": visible}, timeout=120,
                         check=True).stdout
    assert out.split() == [accelerator, "False"]


@pytest.mark.parametrize("fault,status,error", [
    ("crash", "crash", "SIGABRT"),
    ("raise", "crash", "injected failure"),
    ("nan", "nan", "loss is nan"),
    # finite training losses, NaN weights after the last update: the child's result did not
    # validate, it died with a traceback and the run read "crash: ... errors.pydantic.dev/..."
    ("nan_eval", "nan", "val_bpb is nan"),
])
def test_failures_become_results(run, fault: str, status: str, error: str) -> None:
    res = run(fault=fault)
    assert res.status == status and error in res.error
    assert res.samples == [] and res.quality is None          # no samples from a failed run
    assert to_run_body(res, "manual").status == status


def test_hang_becomes_timeout_and_the_whole_tree_dies(run, tmp_path, monkeypatch) -> None:
    pids = tmp_path / "pids"
    monkeypatch.setenv("SWARM_HARNESS_FAULT_PIDS", str(pids))
    res = run(fault="hang", timeout_s=15)
    assert res.status == "timeout" and "15 s" in res.error
    assert res.samples == [] and res.quality is None        # samples are an ok run's only
    # the run had started a grandchild in a session of its own (not in the run's process group)
    (grandchild,) = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 120
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_default_memory_guard_follows_available_memory(prepared) -> None:
    spec = RunSpec(track=prepared.track, config=prepared.track.base, seed=0, threads=1,
                   tokenizer="t", train_tokens="a", eval_tokens="b")
    limit = memory_limit_mb(spec)
    assert GUARD_FLOOR_MB <= limit <= psutil.virtual_memory().total / 2**20
    assert memory_limit_mb(spec.model_copy(update={"memory_limit_mb": 700.0})) == 700.0


GRANDCHILD = """
import subprocess, sys
hog = "held = b'x' * (300 << 20); open(sys.argv[1], 'w').close(); import time; time.sleep(600)"
subprocess.Popen([sys.executable, "-c", "import sys; " + hog, sys.argv[1]],
                 start_new_session=True).wait()
"""


def test_the_guard_counts_a_grandchilds_memory_and_the_kill_takes_it(tmp_path) -> None:
    """The memory a run's process started holds is the run's (here 300 MiB, touched, in a
    grandchild in a session of its own), and killing the tree leaves none of it."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", GRANDCHILD, str(ready)], start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ready.exists()
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert TreeMemory(proc.pid).rss_mb() > 300
    finally:
        kill_tree(proc.pid)
        proc.wait()
    assert tree and not any(_alive(p.pid) for p in tree)


def test_the_node_record_reads_memory_and_cpu_as_the_harness_does() -> None:
    """psutil on every OS (os.sysconf has no page counts on Windows: the node said 0 GB)."""
    from node import machine
    from node.harness.hardware import cpu_name
    hw = machine.hardware()
    assert hw.memory_gb == round(psutil.virtual_memory().total / 2**30, 1) > 0
    assert hw.device_name == cpu_name()[:400]


def test_memory_exhaustion_becomes_crash(run) -> None:
    res = run(fault="oom", memory_limit_mb=1500)
    assert res.status == "crash" and "out of memory" in res.error


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_run_bf16_compiled(run) -> None:
    res = run(device="cuda", budget_tokens=128 * 400)
    assert res.status == "ok" and res.hardware.accelerator == "cuda"
    assert res.software["precision"] == "bf16"
    assert res.software["compile"] == "true", res.software.get("compile_error")   # no fallback
    # the run's own peak: not the peak-FLOP/s matmuls measured before it (8192^2, >= 512 MiB)
    assert 0 < res.metrics.peak_mem_mb < 400


PARENT = """
import json, sys, psutil
from node.harness.runner import run_spec
from node.harness.spec import RunSpec
spec = RunSpec.model_validate_json(sys.stdin.read())
def started(event):
    if event.get("event") == "start":          # the child is training: name it, then wait
        (child,) = psutil.Process().children()
        open(sys.argv[1], "w").write(str(child.pid))
run_spec(spec, on_event=started)
"""


def test_a_node_killed_hard_leaves_no_run_behind_nor_a_file(prepared, home, tmp_path) -> None:
    """SIGKILL of the node (the OOM killer, `kill -9`) mid-run: the run's process exits instead
    of training on unseen beside the node's next start, and nothing is left in the temp folder
    (each such kill used to leave a /tmp/swarm-run-*.stderr). The run hangs at step 2 and emits
    no progress line, so only the parent watch can end it."""
    spec = RunSpec(track=prepared.track, config=prepared.track.base, seed=3, threads=1,
                   tokenizer=str(prepared.tokenizer), train_tokens=str(prepared.train_tokens),
                   eval_tokens=str(prepared.eval_tokens), cache=str(home), fault="hang",
                   progress_every_s=3600)
    tmp, pid_file, sleeper = tmp_path / "tmp", tmp_path / "child.pid", tmp_path / "sleeper.pid"
    tmp.mkdir()
    env = {**child_env(1), "TMPDIR": str(tmp), "SWARM_HARNESS_FAULTS": "1",
           "SWARM_HARNESS_FAULT_PIDS": str(sleeper)}     # the hang's own sleeper: killed below
    node = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)], stdin=subprocess.PIPE,
                            env=env, cwd=REPO_ROOT)
    node.stdin.write(spec.model_dump_json().encode())
    node.stdin.close()
    child = None
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            assert node.poll() is None, "the parent died before its run started"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        node.kill()
        node.wait()
        deadline = time.monotonic() + 60
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(child), "the run kept going after its node was killed"
        assert list(tmp.glob("swarm-run-*")) == []
    finally:
        node.kill()
        pids = [child] if child is not None else []
        pids += [int(p) for p in sleeper.read_text().split()] if sleeper.exists() else []
        for pid in pids:
            if _alive(pid):
                psutil.Process(pid).kill()
