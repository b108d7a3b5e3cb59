"""The project's models, priors overridden to match the Stan programs, against posteriordb's
reference posteriors (data/posteriordb/; tolerances from Monte-Carlo error, see
models.evaluation.reference)."""

import pytest

from models.evaluation import reference
from models.inference import sample_posterior

CASES = reference.cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_posterior_reproduced(name):
    model, mapping, kwargs = CASES[name]
    kwargs = {"draws": 2000, "tune": 1000, **kwargs}
    idata = sample_posterior(model, chains=4, random_seed=1, **kwargs)
    table = reference.compare_to_reference(idata, mapping, reference.load(name)[1])
    assert table["passed"].all(), table.round(4).to_string()
