"""Model-fit verdicts can fail and can pass: Newcomb's outliers and the over-dispersed warp
breaks fail with the advice a user needs; data simulated from the model pass. P-values of the
posterior predictive statistics are recomputed here with numpy from the saved draws."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from models import datasets, gaussian, poisson
from models.fitcheck import check_fit, ppc_p_value
from models.inference import sample_posterior


def _fit(model, seed=1):
    idata = sample_posterior(model, draws=500, tune=500, chains=2, random_seed=seed)
    pm.sample_posterior_predictive(idata, model=model, extend_inferencedata=True,
                                   random_seed=seed, progressbar=False)
    return idata


def test_newcomb_outliers_fail_and_name_student_t():
    idata = _fit(gaussian.build(datasets.newcomb()))
    f = check_fit(idata, "continuous")
    assert not f.passed and f.loo_pit_p < 0.01 and f.ppc["min"] < 0.01
    assert any("Student-t" in a for a in f.advice)
    y = idata["observed_data"]["y_obs"].values
    rep = idata["posterior_predictive"]["y_obs"].values.reshape(-1, y.size)
    t_rep = rep.min(axis=1)
    above = np.mean(t_rep > y.min()) + 0.5 * np.mean(t_rep == y.min())
    assert f.ppc["min"] == pytest.approx(2 * min(above, 1 - above))


def test_over_dispersed_counts_fail_and_name_negative_binomial():
    f = check_fit(_fit(poisson.build(*datasets.warpbreaks())), "count")
    assert not f.passed and f.ppc["variance / mean"] < 0.01
    assert any("negative binomial" in a for a in f.advice)


def test_data_from_the_model_pass():
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(100, 2)), columns=["a", "b"])
    assert check_fit(_fit(gaussian.build(rng.normal(3, 2, 66))), "continuous").passed
    assert check_fit(_fit(poisson.build(X, rng.poisson(np.exp(0.5 + 0.3 * X["a"])))), "count").passed


def test_ppc_p_value_by_hand():
    assert ppc_p_value(5.0, np.arange(10.0)) == pytest.approx(2 * min(0.45, 0.55))
    assert ppc_p_value(100.0, np.arange(10.0)) == 0.0
