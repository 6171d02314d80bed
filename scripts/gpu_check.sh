#!/usr/bin/env bash
# The GPU checks of the harness in one run (issue 14), for a machine with an NVIDIA GPU, PyTorch
# and no internet. Prepare with scripts/gpu_kit.sh here; carry .whl; run from the repo root:
#   bash scripts/gpu_check.sh OUTDIR
# Steps, each with its own limit, 540 s together (the workplace's device tool allows 600 s a
# command): 1. the device (torch, Triton, C compilers);  2. the CUDA tests (120 s);
# 3. `swarm bench harness --device cuda` on synthetic tokens: harness vs the textbook loop at the
# tinystories-gpu base config and one size down and one up (270 s);  4. a short recorded
# `swarm run` of tinystories-gpu on CUDA, on the shipped sample (its 400M-token data needs the
# internet) (150 s);  5. a checkpoint and resume on CUDA: that run stopped by SIGTERM at its first
# checkpoint, then the same command resumes it (what time is left; a 600-s cut falls here).
# Everything goes to OUTDIR: check.log, bench.json, run_gpu_track.json, run_stopped.*,
# run_resumed.*. GPU_CHECK_TOKENS and GPU_CHECK_TRACK set steps 4 and 5's budget and track (20M,
# tinystories-gpu; a dry run of them on CPU needs tinystories-cpu and fewer tokens).
# GPU_CHECK_DEVICE=cpu runs the same steps on CPU (a dry run of the script's commands, here).
# Homes and data go to a fresh folder under /tmp (GPU_CHECK_WORK), never to OUTDIR: checkpoints
# of the 27M model are too big to come back with the results.
set -uo pipefail
OUT_DIR=${1:-/tmp/gpu_check}
mkdir -p "$OUT_DIR"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site
fi
SWARM="python3 -m swarm.cli"
DEVICE=${GPU_CHECK_DEVICE:-cuda}
# A fresh home and data folder each call: a rerun on a still-warm machine would otherwise resume
# the checkpoints its cut first try left (step 4's run is checkpointed when `timeout` stops it)
WORK_DIR=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check_work.XXXXXX)}
HOME_DIR=$WORK_DIR/home DATA_DIR=$WORK_DIR/data
TRACK=${GPU_CHECK_TRACK:-tinystories-gpu} TOKENS=${GPU_CHECK_TOKENS:-20000000}
step() { echo "== $(date +%T) $*"; }

# What a run's --json says (the whole file is in OUT_DIR; its head is the config): status, error,
# metrics, software (compile, compile_error) and device; one line when the run left no JSON
summary() {
    python3 - "$1" <<'EOF'
import json, sys
try:
    with open(sys.argv[1]) as f:
        r = json.load(f)
except (OSError, ValueError) as exc:
    sys.exit(print(f"{sys.argv[1]}: no result ({type(exc).__name__})"))
print({k: r.get(k) for k in ("status", "error", "track", "seed", "record_id")})
for part in ("metrics", "software", "hardware"):
    print(part, r.get(part))
EOF
}

# A checkpoint on CUDA (the CUDA RNG state included): the run is stopped (SIGTERM, as a shutdown
# meets it) once its first checkpoint is on disk, then the same command resumes and finishes it.
# Last, so that a slow device cuts this step and not the figures above.
resume_check() {
    step "swarm run on CUDA stopped at its first checkpoint, then resumed by the same command"
    local run=($SWARM run --track $TRACK --device $DEVICE --data-dir $DATA_DIR
               --budget-tokens $TOKENS --seed 1 --home "$HOME_DIR" --checkpoint-every 2 --json)
    # this run's checkpoint, not step 4's (checkpointed if its limit stopped it)
    local before; before=$(ls "$HOME_DIR"/checkpoints/*.pt 2> /dev/null)
    "${run[@]}" > "$OUT_DIR/run_stopped.json" 2> "$OUT_DIR/run_stopped.err" &
    local pid=$!
    for _ in $(seq 1 120); do
        sleep 1; kill -0 $pid 2> /dev/null || break           # ended (refused, done) first
        [ "$(ls "$HOME_DIR"/checkpoints/*.pt 2> /dev/null)" != "$before" ] && break
    done
    kill -TERM $pid 2> /dev/null || echo "it ended before a checkpoint of its own"
    wait $pid; echo "exit $? (130: stopped)"; tail -n 3 "$OUT_DIR/run_stopped.err"
    $SWARM pending --home "$HOME_DIR"
    timeout 120 "${run[@]}" > "$OUT_DIR/run_resumed.json" 2> "$OUT_DIR/run_resumed.err"
    echo "exit $?"; tail -n 3 "$OUT_DIR/run_resumed.err"; summary "$OUT_DIR/run_resumed.json"
}

main() {
    step "device (work folder $WORK_DIR)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    # torch.compile on CUDA needs Triton and a C compiler (Triton builds its launcher with one);
    # without them runs fall back to eager and say why (software.compile_error)
    python3 -c "
import os, shutil, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda,
      'cudnn', torch.backends.cudnn.version(),
      torch.cuda.is_available() and torch.cuda.get_device_name(),
      'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
      'visible', os.environ.get('CUDA_VISIBLE_DEVICES'), 'count', torch.cuda.device_count())
try:
    import triton; print('triton', triton.__version__)
except Exception as exc: print('triton missing:', exc)
print('compilers', {c: shutil.which(c) for c in ('cc', 'gcc', 'c++', 'g++', 'clang')},
      'CC', os.environ.get('CC'), 'CXX', os.environ.get('CXX'), 'nproc', os.cpu_count())"

    step "CUDA tests"
    # -v: each test's verdict as it ends, so a run cut by the limit still says how far it got
    # the quick device queries first, then the compiled run and bench (a compile each)
    timeout 120 python3 -m pytest -v -rs -p no:cacheprovider \
        tests/harness/test_accelerator_paths.py tests/harness/test_runner.py \
        tests/harness/test_bench_harness.py tests/harness/test_devices.py -k "cuda or gpu or device"

    step "bench harness on CUDA (synthetic tokens: the track's data is not here)"
    timeout 270 $SWARM bench harness --device $DEVICE --synthetic-tokens --seeds 0 --rounds 3 \
        --steps 5 --out "$OUT_DIR/bench.json"

    step "swarm run on CUDA: $TRACK on the shipped sample, $TOKENS tokens"
    python3 -c "
import lzma, pathlib
src, dst = pathlib.Path('node/harness/data_files/tinystories-lower-4m'), pathlib.Path('$DATA_DIR')
dst.mkdir(parents=True, exist_ok=True)
for n in ('train', 'valid'):
    (dst / f'{n}.txt').write_bytes(lzma.decompress((src / f'{n}.txt.xz').read_bytes()))"
    timeout 150 $SWARM run --track $TRACK --device $DEVICE --data-dir $DATA_DIR \
        --budget-tokens $TOKENS --home "$HOME_DIR" --json > "$OUT_DIR/run_gpu_track.json"
    echo "exit $?"; summary "$OUT_DIR/run_gpu_track.json"
    $SWARM runs --home "$HOME_DIR"
    resume_check
    step "done"
}

main 2>&1 | tee "$OUT_DIR/check.log"
