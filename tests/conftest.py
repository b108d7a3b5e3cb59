import warnings

import numpy as np
import pytest

warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
