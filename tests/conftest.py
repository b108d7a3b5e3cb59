import os
import warnings

# One BLAS thread per test process: `make test` runs two processes on two cores, and OpenBLAS's
# default pool of one thread per core in each oversubscribes them (`python
# benchmarks/blas_threads.py`; the README's Timing). The variables size the pools of BLAS
# libraries loaded from now on, here and in pytest-xdist's workers (which start after this file
# is read); threadpoolctl (a PyMC dependency) resizes those a pytest plugin already loaded.
from workflows.cli import THREAD_VARIABLES  # noqa: E402  (loads no numpy)

for _variable in THREAD_VARIABLES:
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")

warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
