"""Reference posteriors from posteriordb (data/posteriordb/): the project's own model families
with priors overridden to match each Stan program, and the Monte-Carlo-error comparison.

Tolerances: |mean - ref| < 4 sqrt(mcse_mean^2 + (sd_ref/100)^2) and
|sd - ref| < 4 mcse_sd + 2% sd_ref (the reference sd itself comes from 10,000 draws).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm

from models.families import hierarchical, linear

FOLDER = Path(__file__).resolve().parents[2] / "data" / "posteriordb"


def load(name: str):
    folder = FOLDER / name
    return (json.loads((folder / "data.json").read_text()),
            json.loads((folder / "reference.json").read_text())["parameters"])


def cases() -> dict:
    """name -> (model, {reference name: (our variable, flat index or None)}, sample kwargs)."""
    out = {}
    data, _ = load("eight_schools-eight_schools_noncentered")
    out["eight_schools-eight_schools_noncentered"] = (
        hierarchical.build(data["y"], data["sigma"], centered=False, priors={
            "mu": partial(pm.Normal, mu=0.0, sigma=5.0), "tau": partial(pm.HalfCauchy, beta=5.0)}),
        {"mu": ("mu", None), "tau": ("tau", None), **{f"theta[{j + 1}]": ("theta", j) for j in range(8)}},
        {"draws": 2500, "tune": 1500, "target_accept": 0.95})
    data, _ = load("kidiq-kidscore_momiq")
    out["kidiq-kidscore_momiq"] = (
        linear.build(pd.DataFrame({"mom_iq": data["mom_iq"]}), data["kid_score"], priors={
            "intercept": pm.Flat, "beta": pm.Flat, "sigma": partial(pm.HalfCauchy, beta=2.5)}),
        {"beta[1]": ("intercept", None), "beta[2]": ("beta", 0), "sigma": ("sigma", None)}, {})
    data, _ = load("earnings-logearn_height")
    out["earnings-logearn_height"] = (
        linear.build(pd.DataFrame({"height": data["height"]}), np.log(data["earn"]), priors={
            "intercept": pm.Flat, "beta": pm.Flat, "sigma": pm.HalfFlat}),
        {"beta[1]": ("intercept", None), "beta[2]": ("beta", 0), "sigma": ("sigma", None)}, {})
    data, _ = load("sblrc-blr")
    out["sblrc-blr"] = (
        linear.build(np.asarray(data["X"]), data["y"], intercept=False, priors={
            "beta": partial(pm.Normal, mu=0.0, sigma=10.0),
            "sigma": partial(pm.HalfNormal, sigma=10.0)}),
        {**{f"beta[{j + 1}]": ("beta", j) for j in range(5)}, "sigma": ("sigma", None)}, {})
    return out


def compare_to_reference(idata, mapping: dict, reference: dict) -> pd.DataFrame:
    """One row per reference parameter: ours vs reference mean and sd, tolerances, pass."""
    import arviz as az

    mcse_mean = az.mcse(idata, method="mean").dataset
    mcse_sd = az.mcse(idata, method="sd").dataset
    post = idata["posterior"]
    rows = []
    for ref_name, (var, idx) in mapping.items():
        draws = post[var].values
        draws = draws.reshape(draws.shape[0] * draws.shape[1], -1)[:, idx or 0]
        se_mean = float(np.ravel(mcse_mean[var].values)[idx or 0])
        se_sd = float(np.ravel(mcse_sd[var].values)[idx or 0])
        ref = reference[ref_name]
        mean_tol = 4 * np.sqrt(se_mean**2 + (ref["sd"] / 100) ** 2)
        sd_tol = 4 * se_sd + 0.02 * ref["sd"]
        rows.append({"parameter": ref_name, "mean": draws.mean(), "reference mean": ref["mean"],
                     "mean tolerance": mean_tol, "sd": draws.std(), "reference sd": ref["sd"],
                     "sd tolerance": sd_tol,
                     "passed": bool(abs(draws.mean() - ref["mean"]) <= mean_tol
                                    and abs(draws.std() - ref["sd"]) <= sd_tol)})
    return pd.DataFrame(rows).set_index("parameter")
