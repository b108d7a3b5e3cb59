r"""Logistic regression (Bernoulli likelihood, logit link).

.. math::

    y_i \sim \text{Bernoulli}(\operatorname{logit}^{-1}(\alpha + x_i^\top \beta))

Default priors (weakly informative on the log-odds scale, rstanarm-style scaling of each
coefficient by its predictor's standard deviation):

* ``intercept``: :math:`\alpha^c \sim \mathcal N(0, 2.5)` on the intercept at the predictor
  means (``intercept_centered``); ``intercept`` is a Deterministic (see
  :func:`models.families.common.centered_linear_predictor`)
* ``beta``: :math:`\beta_j \sim \mathcal N(0,\ 2.5 / s_{x_j})`

Under perfect separation the MLE does not exist (the likelihood keeps rising as a coefficient
grows); :func:`models.inference.fit_mle` reports that, while the posterior stays proper.
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
        "intercept": partial(pm.Normal, mu=0.0, sigma=2.5),
        "beta": partial(pm.Normal, mu=0.0, sigma=2.5 / scale_of(X)),
    }


# Why one Newton run from one start finds the MLE (models.base.modality): the Bernoulli-logit
# log-likelihood is concave in the linear predictor's coefficients.
UNIMODAL = "the Bernoulli-logit log-likelihood is concave in (intercept, beta)"


def _likelihood(eta, y_data, p):
    pm.Bernoulli("y_obs", logit_p=eta, observed=y_data, dims=OBS_DIM)


def build(X, y, priors=None) -> pm.Model:
    """Logistic regression of binary ``y`` (0/1 or bool) on the columns of ``X``."""
    model = glm(X, y, priors=priors, defaults=default_priors, likelihood=_likelihood,
                y_kind="binary")
    return declare_unimodal(model, UNIMODAL)
