#!/usr/bin/env bash
# Run HERE (a machine with the package registries) before the GPU check: downloads into .whl/ the
# wheels of our dependencies that a GPU machine with PyTorch but no internet lacks (the
# workplace's H200 image has torch, numpy, pyarrow, typer, rich, psutil, msgpack, pytest, ...).
# Versions are this venv's, so pydantic and pydantic-core match. Python 3.12, x86-64 Linux.
# Then: scripts/gpu_check.sh on the GPU machine, with .whl carried (docs/HARNESS.md, "Measured
# on a GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
NEEDED="duckdb PyNaCl cffi pycparser base58 pydantic pydantic_core annotated-types
        typing-inspection trio outcome sniffio"
PINS=$(.venv/bin/python -c "
import importlib.metadata as md, sys
print(' '.join(f'{d}=={md.version(d)}' for d in sys.argv[1:]))" $NEEDED)
rm -rf .whl && mkdir .whl
PLATFORMS=""
for n in 2_28 2_27 2_24 2_17 2014 1; do
    case $n in 2014|1) PLATFORMS+=" --platform manylinux${n}_x86_64" ;;
               *) PLATFORMS+=" --platform manylinux_${n}_x86_64" ;; esac
done
# shellcheck disable=SC2086
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $PLATFORMS -d .whl $PINS
# pure-Python packages publish one py3 wheel for every platform
ls .whl
du -sh .whl
