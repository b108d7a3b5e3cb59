r"""Linear regression with a Normal likelihood.

.. math::

    y_i \sim \mathcal N(\alpha + x_i^\top \beta,\ \sigma^2)

Default priors (weakly informative, scaled by the data passed to :func:`build`, as rstanarm's
defaults are):

* ``intercept``: :math:`\alpha^c \sim \mathcal N(\bar y,\ 2.5\, s_y)` on the intercept at
  the predictor means (``intercept_centered``); ``intercept`` is a Deterministic (see
  :func:`models.families.common.centered_linear_predictor`)
* ``beta``: :math:`\beta_j \sim \mathcal N(0,\ 2.5\, s_y / s_{x_j})`
* ``sigma``: :math:`\sigma \sim \text{Exponential}(1 / s_y)`

Override any of them with ``priors={"beta": functools.partial(pm.Normal, mu=0, sigma=10),
"sigma": pm.HalfFlat, "intercept": pm.Flat}``; each factory is called as ``f(name, dims=...)``.
The MLE (:func:`models.inference.fit_mle`) ignores priors: it is OLS with
:math:`\hat\sigma^2 = \text{RSS}/N`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm

from models.base.coords import OBS_DIM
from models.base.modality import declare_unimodal
from models.families.common import glm, scale_of


def default_priors(X: np.ndarray, y: np.ndarray) -> dict:
    sy = float(scale_of(y))
    return {
        "intercept": partial(pm.Normal, mu=float(np.mean(y)), sigma=2.5 * sy),
        "beta": partial(pm.Normal, mu=0.0, sigma=2.5 * sy / scale_of(X)),
        "sigma": partial(pm.Exponential, lam=1.0 / sy),
    }


# Why one Newton run from one start finds the MLE (models.base.modality): for any sigma the
# maximum over beta is least squares, and the profile in sigma has one stationary point.
UNIMODAL = ("the Gaussian log-likelihood's only stationary point is least squares with "
            "sigma^2 = mean squared residual")


def _likelihood(eta, y_data, p):
    sigma = p["sigma"]("sigma", dims=None)
    pm.Normal("y_obs", mu=eta, sigma=sigma, observed=y_data, dims=OBS_DIM)


def build(X, y, priors=None, intercept: bool = True) -> pm.Model:
    """Linear regression of ``y`` on the columns of ``X`` (DataFrame or 2-D array).

    Coordinates: ``predictor`` (column names, or x0, x1, ... for arrays) and ``obs_id``.
    Data containers ``X`` and ``y`` can be swapped with :func:`models.inference.set_data`.
    ``intercept=False``: no intercept (a design with its own constant column, or a model
    through the origin); then constant columns are allowed.
    """
    model = glm(X, y, priors=priors, defaults=default_priors, likelihood=_likelihood,
                intercept=intercept)
    return declare_unimodal(model, UNIMODAL)
