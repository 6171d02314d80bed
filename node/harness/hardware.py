"""What the node offers a run: device, description, memory, and its measured peak matmul FLOP/s.

Memory and cores come from psutil (Linux, macOS, Windows; only Linux is tested here).

Peak FLOP/s is measured (best of a few large matmuls in the run's dtype and thread count) and
cached under the home, so MFU divides by what this machine really does, not by a datasheet.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from memory.atomic import write_atomic
from memory.records import Hardware

log = logging.getLogger(__name__)

if TYPE_CHECKING:                 # torch is imported where used: `cpu_name` and `memory_total`
    import torch                  # serve the parent's `runner.fallback_context`, which must not load it


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# CPU features by which torch and oneDNN choose their kernels, and so the bits of a run's numbers
ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16",
             "amx_int8", "asimd", "sve", "sve2")
# Settings that make oneDNN or MKL choose other kernels on the same CPU (ATEN_CPU_CAPABILITY shows
# in torch's capability): measured, ONEDNN_MAX_CPU_ISA alone moved the CPU base config's val_bpb
# by up to 0.0048 (docs/HARNESS.md, "Determinism")
ISA_SETTINGS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_CPU_ISA_HINTS",
                "DNNL_CPU_ISA_HINTS", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE")


def cpu_isa() -> str:
    """torch's CPU capability, the kernel-choosing flags this CPU has and the ISA_SETTINGS set in
    the environment, e.g. `AVX512 avx2,...` or `AVX512 avx2,... ONEDNN_MAX_CPU_ISA=AVX2`.

    A CPU model's name does not say them: hosts that all call themselves "Intel(R) Xeon(R)
    Processor" may differ in AVX-512, bf16 and AMX (one spec, seed and harness code gave val_bpb
    1.56447 on one build machine and 1.56743 on another: docs/HARNESS.md, "Determinism"). Flags
    from /proc/cpuinfo (Linux; its `flags` or, on ARM, `Features` line); elsewhere torch's
    capability alone (untested on macOS and Windows)."""
    import torch

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    found = ",".join(f for f in ISA_FLAGS if f in flags)
    limits = " ".join(f"{k}={os.environ[k]}" for k in ISA_SETTINGS if os.environ.get(k))
    return " ".join(p for p in (torch.backends.cpu.get_cpu_capability(), found, limits) if p)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS has one, e.g. not macOS)."""
    try:
        return len(psutil.Process().cpu_affinity() or []) or psutil.cpu_count() or 1
    except (AttributeError, psutil.Error):       # no cpu_affinity on macOS
        return psutil.cpu_count() or os.cpu_count() or 1


def cores_share(shares: int) -> int:
    """Threads for one of `shares` runs training at once: an even share of the cores, at least 1."""
    return max(1, available_cores() // max(1, shares))


def memory_available() -> int:
    """Bytes of RAM that can be had without swapping (psutil's `available`)."""
    return int(psutil.virtual_memory().available)


def memory_total() -> int:
    """Bytes of physical RAM."""
    return int(psutil.virtual_memory().total)


def describe(device: torch.device, threads: int) -> Hardware:
    """The `memory.records.Hardware` of the device a run uses."""
    import torch
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return Hardware(accelerator="cuda", device_name=props.name[:400], cores=available_cores(),
                        memory_gb=round(props.total_memory / 2**30, 2),
                        platform=platform.platform()[:400])
    return Hardware(accelerator="cpu", device_name=cpu_name()[:400], cores=threads,
                    memory_gb=round(memory_total() / 2**30, 2),
                    platform=platform.platform()[:400])


def memory_free(device: torch.device) -> int:
    """Bytes a run may still allocate on `device`."""
    import torch
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return memory_available()


def _time_matmul(n: int, dtype: torch.dtype, device: torch.device, reps: int) -> float:
    import torch
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(reps + 1):                 # the first is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / 4)
    return 2 * n**3 / best


def measure_peak_flops(device: torch.device, dtype: torch.dtype, reps: int = 5) -> float:
    """Best matmul FLOP/s over a few square products (1024 on CPU, 8192 on CUDA)."""
    n = 8192 if device.type == "cuda" else 1024
    return _time_matmul(n, dtype, device, reps)


def peak_flops(device: torch.device, dtype: torch.dtype, threads: int, cache: Path | None) -> float:
    """Measured peak matmul FLOP/s for this device, dtype and thread count, cached in `cache`."""
    import torch
    key = f"{describe(device, threads).device_name}|{device.type}|{dtype}|{threads}|{torch.__version__}"
    table: dict[str, Any] = {}
    if cache is not None and cache.exists():
        try:
            table = json.loads(cache.read_text())
        except (OSError, ValueError):
            table = {}
    if key not in table:
        table[key] = measure_peak_flops(device, dtype)
        if cache is not None:
            _save_cache(cache, table)
    return float(table[key])


def _save_cache(cache: Path, table: dict[str, Any]) -> None:
    """Keep the measured peaks; a cache that cannot be written (read-only, full disk) only costs
    a new measurement next time, never the run."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps(table, indent=1))
    except OSError as exc:
        log.warning("could not keep the peak FLOP/s in %s: %s", cache, exc)
