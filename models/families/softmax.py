r"""Multinomial (softmax) logistic regression with the FIRST class as reference.

.. math::

    P(y_i = k) = \frac{\exp(\eta_{ik})}{\sum_{j} \exp(\eta_{ij})}, \qquad
    \eta_{i0} = 0, \quad \eta_{ik} = \alpha_k + x_i^\top \beta_{\cdot k}\ (k \ge 1)

The reference class's coefficients are fixed at 0 (the statsmodels ``MNLogit``
parametrisation), so the parameters are identified and the MLE is comparable with
statsmodels. Coordinates: ``predictor`` (column names) and ``class`` (the NON-reference class
labels, in order); the reference class is ``model.coords["class_all"][0]``.

Default priors (weakly informative on the log-odds scale):

* ``intercept``: :math:`\alpha^c_k \sim \mathcal N(0, 2.5)` (dim ``class``), on the
  intercept at the predictor means, ``intercept_centered``; ``intercept`` itself is a
  Deterministic (see :func:`models.families.common.centered_linear_predictor`)
* ``beta``: :math:`\beta_{jk} \sim \mathcal N(0,\ 2.5 / s_{x_j})` (dims ``predictor``, ``class``)
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from models.base.coords import OBS_DIM
from models.base.modality import declare_unimodal
from models.families.common import centered_linear_predictor, resolve_priors, scale_of
from models.base.checks import as_design_matrix, as_labels, check_aligned


def default_priors(X: np.ndarray, n_classes: int) -> dict:
    sd = (2.5 / scale_of(X))[:, None] * np.ones((1, n_classes - 1))
    return {
        "intercept": partial(pm.Normal, mu=0.0, sigma=2.5),
        "beta": partial(pm.Normal, mu=0.0, sigma=sd),
    }


# Why one Newton run from one start finds the MLE (models.base.modality): with the first class
# as reference, the multinomial-logit log-likelihood is concave in the coefficients.
UNIMODAL = "the multinomial-logit log-likelihood (reference class) is concave in its coefficients"


def build(X, y, priors=None, classes=None) -> pm.Model:
    """Softmax regression of class labels ``y`` on the columns of ``X``.

    ``classes`` (optional) fixes the class order; its first entry is the reference class.
    By default the sorted unique labels of ``y`` are used. Every class must occur in ``y``.
    The data container ``y`` holds integer codes into ``model.coords["class_all"]``.
    """
    check_aligned(("X", X), ("y", y))
    X_values, names = as_design_matrix(X, "X")
    codes, class_labels = as_labels(y, X_values.shape[0], "y", classes)
    p = resolve_priors(default_priors(X_values, len(class_labels)), priors)
    coords = {
        "predictor": names,
        "class": class_labels[1:],
        "class_all": class_labels,
        OBS_DIM: np.arange(X_values.shape[0]),
    }
    with pm.Model(coords=coords) as model:
        X_data = pm.Data("X", X_values, dims=(OBS_DIM, "predictor"))
        y_data = pm.Data("y", codes, dims=OBS_DIM)
        eta = centered_linear_predictor(p, X_data, X_values.mean(axis=0), dims="class")
        logits = pt.concatenate([pt.zeros((eta.shape[0], 1)), eta], axis=1)
        pm.Categorical("y_obs", logit_p=logits, observed=y_data, dims=OBS_DIM)
    return declare_unimodal(model, UNIMODAL)
