"""The project's models, priors overridden to match the Stan programs, against posteriordb's
reference posteriors (10,000 near-independent Stan draws). Tolerances from Monte-Carlo error:
|mean - ref| < 4 sqrt(mcse_mean^2 + (sd_ref/100)^2) and |sd - ref| < 4 mcse_sd + 2% sd_ref
(the reference's own sd is an estimate from 10,000 draws: about 0.7% relative error)."""

import json
from functools import partial
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest

from models import hierarchical, linear
from models.inference import sample_posterior

HERE = Path(__file__).parent / "reference"


def _load(name):
    folder = HERE / name
    return (json.loads((folder / "data.json").read_text()),
            json.loads((folder / "reference.json").read_text())["parameters"])


def _check(idata, mapping, reference):
    """mapping: reference name -> (our variable, index tuple or None)."""
    mcse_mean = az.mcse(idata, method="mean").dataset
    mcse_sd = az.mcse(idata, method="sd").dataset
    post = idata["posterior"]
    failures = []
    for ref_name, (var, idx) in mapping.items():
        draws = post[var].values
        draws = draws.reshape(draws.shape[0] * draws.shape[1], -1)[:, idx or 0]
        se_mean = float(np.ravel(mcse_mean[var].values)[idx or 0])
        se_sd = float(np.ravel(mcse_sd[var].values)[idx or 0])
        ref = reference[ref_name]
        mean_tol = 4 * np.sqrt(se_mean**2 + (ref["sd"] / 100) ** 2)
        sd_tol = 4 * se_sd + 0.02 * ref["sd"]
        if abs(draws.mean() - ref["mean"]) > mean_tol or abs(draws.std() - ref["sd"]) > sd_tol:
            failures.append(f"{ref_name}: mean {draws.mean():.4g} vs {ref['mean']:.4g} "
                            f"(tol {mean_tol:.3g}), sd {draws.std():.4g} vs {ref['sd']:.4g} "
                            f"(tol {sd_tol:.3g})")
    assert not failures, failures


def test_eight_schools_noncentered():
    data, ref = _load("eight_schools-eight_schools_noncentered")
    model = hierarchical.build(data["y"], data["sigma"], centered=False, priors={
        "mu": partial(pm.Normal, mu=0.0, sigma=5.0), "tau": partial(pm.HalfCauchy, beta=5.0)})
    idata = sample_posterior(model, draws=2500, tune=1500, chains=4, random_seed=1,
                             target_accept=0.95)
    mapping = {"mu": ("mu", None), "tau": ("tau", None),
               **{f"theta[{j + 1}]": ("theta", j) for j in range(8)}}
    _check(idata, mapping, ref)


def test_kidiq_momiq_flat_priors():
    data, ref = _load("kidiq-kidscore_momiq")
    X = pd.DataFrame({"mom_iq": data["mom_iq"]})
    model = linear.build(X, data["kid_score"], priors={
        "intercept": pm.Flat, "beta": pm.Flat, "sigma": partial(pm.HalfCauchy, beta=2.5)})
    idata = sample_posterior(model, draws=2000, tune=1000, chains=4, random_seed=2)
    _check(idata, {"beta[1]": ("intercept", None), "beta[2]": ("beta", 0),
                   "sigma": ("sigma", None)}, ref)


def test_earnings_log_height_flat_priors():
    data, ref = _load("earnings-logearn_height")
    X = pd.DataFrame({"height": data["height"]})
    model = linear.build(X, np.log(data["earn"]), priors={
        "intercept": pm.Flat, "beta": pm.Flat, "sigma": pm.HalfFlat})
    idata = sample_posterior(model, draws=2000, tune=1000, chains=4, random_seed=3)
    _check(idata, {"beta[1]": ("intercept", None), "beta[2]": ("beta", 0),
                   "sigma": ("sigma", None)}, ref)


def test_sblrc_no_intercept_normal_priors():
    data, ref = _load("sblrc-blr")
    model = linear.build(np.asarray(data["X"]), data["y"], intercept=False, priors={
        "beta": partial(pm.Normal, mu=0.0, sigma=10.0), "sigma": partial(pm.HalfNormal, sigma=10.0)})
    idata = sample_posterior(model, draws=2000, tune=1000, chains=4, random_seed=4)
    _check(idata, {**{f"beta[{j + 1}]": ("beta", j) for j in range(5)}, "sigma": ("sigma", None)}, ref)
