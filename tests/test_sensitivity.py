"""Power-scaling prior sensitivity: the three diagnoses appear where a conjugate normal model
says they must, and the labelled table agrees with ArviZ's own psense_summary."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from models.inference import sample_posterior
from models.inference.sensitivity import (CONFLICT, LIKELIHOOD_DOMINATED, PRIOR_SENSITIVE,
                                          prior_sensitivity)


def _normal_mean(y, prior_mu, prior_sd, sigma):
    with pm.Model() as model:
        mu = pm.Normal("mu", prior_mu, prior_sd)
        pm.Normal("y_obs", mu, sigma, observed=y)
    return model


@pytest.mark.parametrize("case, expected", [
    # vague prior, 200 precise observations: the data decide
    ("vague prior, much data", LIKELIHOOD_DOMINATED),
    # the prior sd 0.05 against a likelihood sd of 10 / sqrt(2) = 7: the prior decides
    ("strong prior, weak data", PRIOR_SENSITIVE),
    # prior N(10, 0.5) against 50 observations centred at 0 (sd of their mean 0.14): conflict
    ("prior far from the data", CONFLICT),
])
def test_diagnosis_where_the_conjugate_posterior_says_it_must_be(case, expected):
    rng = np.random.default_rng(4)
    y, prior_mu, prior_sd, sigma = {
        "vague prior, much data": (rng.normal(1.0, 1.0, 200), 0.0, 100.0, 1.0),
        "strong prior, weak data": (rng.normal(0.0, 10.0, 2), 0.0, 0.05, 10.0),
        "prior far from the data": (rng.normal(0.0, 1.0, 50), 10.0, 0.5, 1.0),
    }[case]
    model = _normal_mean(y, prior_mu, prior_sd, sigma)
    idata = sample_posterior(model, draws=2000, tune=500, chains=2, random_seed=5)
    table = prior_sensitivity(idata, model)
    assert table.loc["mu", "diagnosis"] == expected, table
    import arviz as az

    idata = idata.copy()
    pm.stats.compute_log_prior(idata, model=model)
    ref = az.psense_summary(idata)  # ArviZ's own numbers (rounded to 3 decimals)
    np.testing.assert_allclose(table.loc["mu", ["prior", "likelihood"]].to_numpy(float),
                               ref.loc["mu", ["prior", "likelihood"]].to_numpy(float), atol=6e-4)


def test_table_is_labelled_per_scalar_and_leaves_idata_alone():
    from models.base import datasets
    from models.families import softmax

    X, y = datasets.iris(("sepal_length", "sepal_width"))
    model = softmax.build(X, y)
    idata = sample_posterior(model, draws=300, tune=300, chains=2, random_seed=2)
    groups = set(idata.children)
    table = prior_sensitivity(idata, model, var_names=["intercept_centered", "beta"])
    assert set(idata.children) == groups  # nothing added to the caller's tree
    # every scalar once, labels from each variable's own dims (the first class is the reference)
    post = idata["posterior"]
    expected = [f"intercept_centered[{c}]" for c in post["intercept_centered"].coords["class"].values]
    expected += [f"beta[{p}, {c}]" for p in post["beta"].coords["predictor"].values
                 for c in post["beta"].coords["class"].values]
    assert list(table.index) == expected == [
        "intercept_centered[versicolor]", "intercept_centered[virginica]",
        "beta[sepal_length, versicolor]", "beta[sepal_length, virginica]",
        "beta[sepal_width, versicolor]", "beta[sepal_width, virginica]"]
    # each row's numbers are that scalar's: ArviZ's Dataset read at the same coordinates
    import arviz as az

    tree = idata.copy()
    pm.stats.compute_log_prior(tree, model=model)
    ds = az.psense(tree, group="prior", var_names=["beta"])
    assert table.loc["beta[sepal_width, versicolor]", "prior"] == float(
        ds["beta"].sel(predictor="sepal_width", **{"class": "versicolor"}))
    assert table["diagnosis"].isin([CONFLICT, PRIOR_SENSITIVE, LIKELIHOOD_DOMINATED]).all()


def test_likelihood_sensitivity_equals_psense_on_the_full_pointwise_group():
    """prior_sensitivity gives psense each draw's total log-likelihood instead of the draws x
    rows group (much faster): the numbers must equal ArviZ's psense run on PyMC's own
    pointwise log_likelihood and log_prior groups, for both power-scaled components."""
    import arviz as az

    y = np.random.default_rng(5).normal(1.0, 2.0, 40)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 3.0)
        sigma = pm.HalfNormal("sigma", 5.0)
        pm.Normal("y_obs", mu, sigma, observed=y)
    idata = sample_posterior(model, draws=300, tune=300, chains=2, random_seed=3)
    assert idata["log_likelihood"]["y_obs"].sizes["y_obs_dim_0"] == 40
    table = prior_sensitivity(idata, model)
    tree = idata.copy()
    pm.stats.compute_log_prior(tree, model=model)
    for group in ("prior", "likelihood"):
        ds = az.psense(tree, group=group)
        for name in ("mu", "sigma"):
            np.testing.assert_allclose(table.loc[name, group], float(ds[name]), rtol=1e-9)
