"""Load a script from benchmarks/ as a module, for the tests of its functions."""

import importlib.util
import os
from pathlib import Path


def load(name: str):
    """``benchmarks/<name>.py`` as a module, without putting benchmarks/ on sys.path and
    without the thread settings the script makes for its own process (OPENBLAS_NUM_THREADS,
    XLA_FLAGS, ...) leaking into the test process: os.environ is restored afterwards."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    env = dict(os.environ)
    try:
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(env)
    return module
