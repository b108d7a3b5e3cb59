# Fresh-machine entry points. `make run` and `make test` create/update .venv first, from uv.lock.
SHELL := /bin/bash
PYVER := $(shell cat .python-version 2>/dev/null || echo 3.12)
# The interpreter .python-version selects: pyenv/uv read that file; python3.12 if on PATH.
PYTHON ?= $(shell command -v python$(PYVER) 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# uv installs exactly what uv.lock pins (`make lock` refreshes it on purpose). uv itself lives in
# its own small venv (.tools/), pinned, so that `uv sync` may manage .venv exactly.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup lock run test test-slow validate bench clean

setup: $(STAMP)

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null || \
	  { echo "error: Python >= 3.12 is required (found: $$($(PYTHON) --version 2>&1)); install it, e.g. 'pyenv install 3.12'"; exit 1; }
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --frozen: install the lock as it is (fail rather than re-resolve); the dev group (tests) too.
# --compile-bytecode: write every package's .pyc once, here. These machines set
# PYTHONDONTWRITEBYTECODE=1, so without it every process compiled pymc, pytensor, arviz and
# numba's sources again: `import pymc, arviz` took 16-17 s, 5.3 s with the .pyc files, and the
# first fit_mle in a process 4.2 s -> 1.6 s (measured 2026-11-26, see the README).
$(STAMP): pyproject.toml uv.lock .python-version | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode --python $(PYTHON)
	@touch $(STAMP)

# Re-resolve every dependency to its newest allowed release: a deliberate, reviewed change.
lock: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

run: setup
	$(PY) -m workflows.cli run all

test: setup
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

validate: setup
	$(PY) -m workflows.cli run validation

bench: setup
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tools .pytest_cache
