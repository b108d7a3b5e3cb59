# Fresh-machine entry points. `make run` and `make test` create/update .venv first.
SHELL := /bin/bash
PYVER := $(shell cat .python-version 2>/dev/null || echo 3.12)
# The interpreter .python-version selects: pyenv/uv read that file; python3.12 if on PATH.
PYTHON ?= $(shell command -v python$(PYVER) 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup run test test-slow validate bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml .python-version
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null || \
	  { echo "error: Python >= 3.12 is required (found: $$($(PYTHON) --version 2>&1)); install it, e.g. 'pyenv install 3.12'"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

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
	rm -rf $(VENV) .pytest_cache
