import os
import warnings

# One BLAS thread per test process, set before numpy loads its BLAS (the thread pools are sized
# once, at load) and inherited by pytest-xdist's workers, which start after this file is read:
# `make test` runs two processes on two cores, and OpenBLAS's default pool of one thread per
# core in each oversubscribes them (`python benchmarks/blas_threads.py`; the README's Timing).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pytest

warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
