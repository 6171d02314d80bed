"""`swarm bench harness`: the harness's step against the textbook loop, on CPU here and on CUDA
where there is one (the device check of issue 14 runs this file on a GPU)."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from swarm.bench.harness import (GPU_SIZES, nominal_peak, sizes_for, synthetic_tokens,
                                 throughput)
from swarm.cli import app

cli = CliRunner()
# the tinystories-gpu base config (rope, rmsnorm, swiglu, qk-norm), shrunk to time in seconds
TINY = dict(n_layer=1, n_embd=32, n_head=2, batch_size=2, seq_len=32)


def _tiny_row(device: torch.device) -> dict:
    peaks = {"fp32": 1e9, "bf16": 2e9, "nominal": 4e9}
    return throughput(TINY, synthetic_tokens(4096, 10_000), 4096, peaks, rounds=2, steps=1,
                      track="tinystories-gpu", device=device)


def _check_row(row: dict) -> None:
    assert row["shape"] == TINY
    for name in ("harness", "harness_fp32", "textbook"):
        if name not in row:                      # no fp32 harness on CUDA
            continue
        v = row[name]
        assert v["tokens_per_s"] > 0 and len(v["rounds"]) == 2
        peak = 2e9 if v["precision"] == "bf16" else 1e9
        # the same achieved FLOP/s over the measured and over the data-sheet peak
        assert v["mfu_nominal"] == pytest.approx(v["mfu"] * peak / 4e9)
        assert v["mfu"] == pytest.approx(v["flops_per_token"] * v["tokens_per_s"] / peak)
    assert row["ratio"] == pytest.approx(row["harness"]["tokens_per_s"]
                                         / row["textbook"]["tokens_per_s"])


def test_throughput_of_the_gpu_tracks_model_on_cpu() -> None:
    row = _tiny_row(torch.device("cpu"))
    _check_row(row)
    assert row["ratio_fp32"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_throughput_on_cuda_compiled_in_bf16() -> None:
    row = _tiny_row(torch.device("cuda"))
    _check_row(row)
    assert row["harness"]["precision"] == "bf16" and row["ratio_fp32"] is None
    assert row["harness"]["compiled"], row["harness"]["compile_error"]      # not the fallback


def test_sizes_and_data_sheet_peaks() -> None:
    assert sizes_for(torch.device("cuda")) is GPU_SIZES and {} in GPU_SIZES.values()
    assert nominal_peak("NVIDIA H200") == nominal_peak("NVIDIA H100 80GB HBM3") == 989.4e12
    assert nominal_peak("NVIDIA H100 PCIe") == 756.5e12
    assert nominal_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert nominal_peak("NVIDIA GeForce RTX 3060") is None


@pytest.mark.parametrize("device,message", [("tpu", "--device must be cpu or cuda"),
                                            ("cuda", "torch sees no CUDA device")])
def test_bad_device_is_one_line(device: str, message: str) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = cli.invoke(app, ["bench", "harness", "--device", device, "--seeds", "0"])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output


@pytest.mark.timeout(900)           # 236 s on a loaded 2-core machine, against the default 300 s
def test_cli_json_on_synthetic_tokens(tmp_path) -> None:
    out = tmp_path / "bench.json"
    res = cli.invoke(app, ["bench", "harness", "--rounds", "1", "--steps", "1", "--seeds", "0",
                           "--threads", "1", "--synthetic-tokens", "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report == json.loads(out.read_text())
    assert report["device"] == "cpu" and report["track"] == "tinystories-cpu"
    assert report["tokens"].startswith("synthetic") and set(report["sizes"]) == {"0.5M", "2M", "8M"}
    assert all(r["ratio"] > 0 for r in report["sizes"].values())
    # no bf16 peak timed where bf16 is emulated (245 s on an AVX2 CPU, the whole of this bench)
    from node.harness.train import cpu_has_bf16
    assert (report["peak_flops"]["bf16"] is None) == (not cpu_has_bf16())


def test_the_report_is_written_after_each_size(monkeypatch, tmp_path) -> None:
    """A bench cut by a time limit (the GPU check gives it 270 s for three compiles) keeps the
    sizes it finished in --out; the whole report replaces them at the end."""
    from swarm.bench import harness
    from swarm.commands.harness import _partial_writer
    small = dict(n_layer=1, n_embd=32, n_head=2, batch_size=2, seq_len=32)
    monkeypatch.setattr(harness, "SIZES", {"a": small, "b": {**small, "n_embd": 64}})
    monkeypatch.setattr(harness, "measure_peaks", lambda device: {"fp32": 1e9, "bf16": 2e9})
    out, seen = tmp_path / "bench.json", []
    write = _partial_writer(out)

    def partial(report: dict) -> None:
        write(report)
        seen.append(json.loads(out.read_text())["sizes"])
    spec = harness.BenchSpec(threads=1, seeds=0, rounds=1, steps=1, synthetic=True)
    report = harness.run_bench(spec, lambda line: None, partial)
    assert [list(sizes) for sizes in seen] == [["a"], ["a", "b"]]
    assert seen[-1] == json.loads(json.dumps(report["sizes"]))
    assert report["sizes"]["a"]["harness"]["flops_per_token"] > 0
