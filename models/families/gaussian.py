r"""Gaussian models: univariate Normal and multivariate Normal.

Univariate (:func:`build`):

.. math::

    y_i \sim \mathcal N(\mu, \sigma^2), \quad
    \mu \sim \mathcal N(\bar y,\ 10\, s_y), \quad \sigma \sim \text{Exponential}(1/s_y)

Multivariate (:func:`build_mvn`), D variables:

.. math::

    y_i \sim \mathcal N_D(\mu, \Sigma), \quad \Sigma = L L^\top, \quad
    \mu_d \sim \mathcal N(\bar y_d,\ 10\, s_d), \quad
    L \sim \text{LKJCholeskyCov}(\eta = 2,\ \text{sd} \sim \text{Exponential}(1/s_d))

The MLEs have closed forms (:func:`mle_closed_form`, :func:`mvn_mle_closed_form`): the sample
mean and the covariance with divisor N (biased), which the generic optimiser reproduces.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm

from models.base.coords import OBS_DIM
from models.families.common import resolve_priors, scale_of
from models.base.checks import DataError, as_design_matrix, as_outcome


def default_priors(y: np.ndarray) -> dict:
    sy = float(scale_of(y))
    return {
        "mu": partial(pm.Normal, mu=float(np.mean(y)), sigma=10 * sy),
        "sigma": partial(pm.Exponential, lam=1.0 / sy),
    }


def build(y, priors=None) -> pm.Model:
    """Normal(mu, sigma) for a 1-D sample ``y`` (array or Series)."""
    y_values = as_outcome(y, None, "y")
    if y_values.size < 2:
        raise DataError("y needs at least 2 observations to estimate a mean and a scale")
    p = resolve_priors(default_priors(y_values), priors)
    with pm.Model(coords={OBS_DIM: np.arange(y_values.size)}) as model:
        y_data = pm.Data("y", y_values, dims=OBS_DIM)
        mu = p["mu"]("mu", dims=None)
        sigma = p["sigma"]("sigma", dims=None)
        pm.Normal("y_obs", mu=mu, sigma=sigma, observed=y_data, dims=OBS_DIM)
    return model


def mle_closed_form(y) -> dict:
    """Closed-form MLE: mean and the biased variance sum((y - mean)^2) / N."""
    y = np.asarray(y, dtype=float)
    mu = y.mean()
    var = np.mean((y - mu) ** 2)
    return {"mu": mu, "sigma": np.sqrt(var), "var": var}


def default_mvn_priors(Y: np.ndarray) -> dict:
    sd = scale_of(Y)
    return {
        "mu": partial(pm.Normal, mu=Y.mean(axis=0), sigma=10 * sd),
        "chol": partial(pm.LKJCholeskyCov, n=Y.shape[1], eta=2.0,
                        sd_dist=pm.Exponential.dist(1.0 / sd, shape=Y.shape[1])),
    }


def build_mvn(Y, priors=None) -> pm.Model:
    """Multivariate Normal for the rows of ``Y`` (DataFrame or 2-D array, N x D).

    Variables: ``mu`` (dim ``measure``), the packed Cholesky factor ``chol`` and the
    deterministic ``cov`` (dims ``measure``, ``measure_bis``). A ``chol`` override must
    return what ``pm.LKJCholeskyCov`` returns.
    """
    Y_values, names = as_design_matrix(Y, "Y", check_columns=False)
    if Y_values.shape[0] <= Y_values.shape[1]:
        raise DataError(f"Y needs more rows than columns to estimate a {Y_values.shape[1]}-D "
                        f"covariance, got {Y_values.shape[0]} rows")
    p = resolve_priors(default_mvn_priors(Y_values), priors)
    coords = {"measure": names, "measure_bis": names, OBS_DIM: np.arange(Y_values.shape[0])}
    with pm.Model(coords=coords) as model:
        Y_data = pm.Data("y", Y_values, dims=(OBS_DIM, "measure"))
        mu = p["mu"]("mu", dims="measure")
        chol_out = p["chol"]("chol")
        chol = chol_out[0] if isinstance(chol_out, tuple | list) else chol_out
        if chol.ndim == 1:  # packed form from compute_corr=False
            chol = pm.expand_packed_triangular(Y_values.shape[1], chol, lower=True)
        pm.Deterministic("cov", chol @ chol.T, dims=("measure", "measure_bis"))
        pm.MvNormal("y_obs", mu=mu, chol=chol, observed=Y_data, dims=(OBS_DIM, "measure"))
    return model


def mvn_mle_closed_form(Y) -> dict:
    """Closed-form MLE: mean vector and covariance with divisor N."""
    Y = np.asarray(Y, dtype=float)
    mu = Y.mean(axis=0)
    return {"mu": mu, "cov": (Y - mu).T @ (Y - mu) / Y.shape[0]}
