# Two commands do all the set-up on a fresh machine:
#   make join   creates .venv, installs everything, and starts a node
#   make test   creates .venv, installs everything, and runs the test suite
PYTHON ?= python3
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: join test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "swarm needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0] + " (make PYTHON=python3.11 ...)")'
	# libp2p builds fastecdsa from source: needs gcc, python3-dev and libgmp-dev (checked before
	# any download, so a machine without them is told in one line, not after fetching torch).
	@$(PYTHON) scripts/check_build_deps.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned exactly: a looser requirement pulls several GB of CUDA packages.
	# TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu) picks the index torch comes from:
	# on Linux, PyPI's wheel of torch depends on CUDA packages even for a laptop without a GPU.
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

join: $(STAMP)
	$(BIN)/swarm join $(ARGS)

test: $(STAMP)
	# the dashboard's page tests run in headless Chromium (Debian's package; skipped without it)
	@$(PYTHON) scripts/check_build_deps.py --browser
	# one worker per core, at most 4 (pytest-xdist): most tests wait on processes and the network
	$(BIN)/python -m pytest -n auto --maxprocesses 4 $(ARGS)

clean:
	rm -rf $(VENV)
