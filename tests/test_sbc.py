"""Reduced simulation-based calibration: loose enough not to flake (fixed seeds, Bonferroni at
0.001), tight enough to catch a wrong likelihood."""

from functools import partial

import numpy as np
import pandas as pd
import pymc as pm

from models import gaussian, logistic
from models.sbc import LOGLIK, LogLikelihood, rank_uniformity, run_sbc

Y0 = np.random.default_rng(0).normal(size=12)
PRIORS = {"mu": partial(pm.Normal, mu=0, sigma=1), "sigma": partial(pm.HalfNormal, sigma=1)}


def test_sbc_passes_for_the_gaussian_model():
    r = run_sbc(gaussian.build(Y0, priors=PRIORS), n_sims=100, seed=1)
    assert r.passed, r.table
    # mu, sigma and the log-likelihood of the simulated data (Modrak et al. 2023)
    assert list(r.ranks.columns) == ["mu", "sigma", LOGLIK]
    assert r.ranks.to_numpy().max() <= r.n_draws


def test_sbc_log_likelihood_quantity_against_scipy():
    """The test quantity log p(y | mu, sigma) on the constrained scale, vs scipy."""
    from scipy import stats

    ll = LogLikelihood(gaussian.build(Y0, priors=PRIORS), "y")
    y = np.linspace(-2, 3, 12)
    got = ll(y, [{"mu": 0.5, "sigma": 2.0}, {"mu": -1.0, "sigma": 0.3}])
    want = [stats.norm(0.5, 2.0).logpdf(y).sum(), stats.norm(-1.0, 0.3).logpdf(y).sum()]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_sbc_catches_a_wrong_likelihood():
    simulator = gaussian.build(Y0, priors=PRIORS)
    with pm.Model(coords=simulator.coords) as wrong:  # sigma mis-scaled by 2 in the likelihood
        y = pm.Data("y", Y0, dims="obs_id")
        mu, sigma = pm.Normal("mu", 0, 1), pm.HalfNormal("sigma", 1)
        pm.Normal("y_obs", mu, 2 * sigma, observed=y, dims="obs_id")
    r = run_sbc(wrong, n_sims=100, seed=1, simulator=simulator)
    assert not r.passed
    assert not r.table.loc["sigma", "passed"]


def test_sbc_passes_for_logistic_regression():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(25, 2)), columns=["a", "b"])
    r = run_sbc(logistic.build(X, rng.integers(0, 2, 25)), n_sims=60, seed=3)
    assert r.passed, r.table


def test_rank_uniformity_flags_skewed_ranks():
    rng = np.random.default_rng(0)
    uniform = pd.DataFrame({"ok": rng.integers(0, 101, 500)})
    skewed = pd.DataFrame({"bad": np.minimum(rng.integers(0, 101, 500), rng.integers(0, 101, 500))})
    assert rank_uniformity(uniform, 100)["passed"].all()
    assert not rank_uniformity(skewed, 100)["passed"].any()
