r"""Poisson regression (log link).

.. math::

    y_i \sim \text{Poisson}(\exp(\alpha + x_i^\top \beta))

Default priors (weakly informative on the log-rate scale):

* ``intercept``: :math:`\alpha^c \sim \mathcal N(\ln(\bar y + 0.1), 2.5)` on the
  log-rate at the predictor means (``intercept_centered``); ``intercept`` is a Deterministic
  (see :func:`models.families.common.centered_linear_predictor`)
* ``beta``: :math:`\beta_j \sim \mathcal N(0,\ 2.5 / s_{x_j})`

The outcome must hold non-negative integer counts.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm

from models.base.coords import OBS_DIM
from models.base.modality import declare_unimodal
from models.families.common import glm, scale_of


def default_priors(X: np.ndarray, y: np.ndarray) -> dict:
    return {
        "intercept": partial(pm.Normal, mu=float(np.log(np.mean(y) + 0.1)), sigma=2.5),
        "beta": partial(pm.Normal, mu=0.0, sigma=2.5 / scale_of(X)),
    }


# Why one Newton run from one start finds the MLE (models.base.modality).
UNIMODAL = "the Poisson log-likelihood with a log link is concave in (intercept, beta)"


def _likelihood(eta, y_data, p):
    pm.Poisson("y_obs", mu=pm.math.exp(eta), observed=y_data, dims=OBS_DIM)


def build(X, y, priors=None) -> pm.Model:
    """Poisson regression of counts ``y`` on the columns of ``X``."""
    model = glm(X, y, priors=priors, defaults=default_priors, likelihood=_likelihood,
                y_kind="count")
    return declare_unimodal(model, UNIMODAL)
