"""Small helpers shared by the family modules: prior resolution and data conventions.

Conventions every family follows (so that :mod:`models.inference` needs no per-family code):
the observation dimension is ``obs_id``; the design matrix is ``pm.Data("X")`` and the outcome
``pm.Data("y")``; the likelihood is the observed variable ``y_obs``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

OBS_DIM = "obs_id"

PriorFactory = Callable[..., object]


def resolve_priors(defaults: Mapping[str, PriorFactory], priors: Mapping[str, PriorFactory] | None):
    """Merge user overrides into the documented defaults; unknown names are an error."""
    priors = dict(priors or {})
    unknown = sorted(set(priors) - set(defaults))
    if unknown:
        raise ValueError(f"priors: unknown variable(s) {unknown}; this model's variables with "
                         f"priors are {sorted(defaults)}")
    for name, factory in priors.items():
        if not callable(factory):
            raise ValueError(f"priors[{name!r}] must be callable as f(name, dims=...), e.g. "
                             f"functools.partial(pm.Normal, mu=0, sigma=10); got {factory!r}")
    return {**defaults, **priors}


def scale_of(values: np.ndarray) -> np.ndarray:
    """Standard deviation used to scale weakly-informative priors (1 where it is 0)."""
    sd = np.std(values, axis=0)
    return np.where(sd > 0, sd, 1.0)


def glm(X, y, *, priors, defaults, likelihood, coords_extra=None, y_kind="real"):
    """Build the shared GLM skeleton: intercept + X @ beta -> ``likelihood(eta, y_data)``.

    ``defaults`` is a function (X_values, y_values) -> {name: prior factory} so that the
    documented weakly-informative scales can depend on the data's own scale.
    """
    import pymc as pm

    from models.validation import as_design_matrix, as_outcome

    X_values, names = as_design_matrix(X, "X")
    y_values = as_outcome(y, X_values.shape[0], "y", kind=y_kind)
    p = resolve_priors(defaults(X_values, y_values), priors)
    coords = {"predictor": names, OBS_DIM: np.arange(X_values.shape[0]), **(coords_extra or {})}
    with pm.Model(coords=coords) as model:
        X_data = pm.Data("X", X_values, dims=(OBS_DIM, "predictor"))
        y_data = pm.Data("y", y_values, dims=OBS_DIM)
        intercept = p["intercept"]("intercept", dims=None)
        beta = p["beta"]("beta", dims="predictor")
        eta = intercept + X_data @ beta
        likelihood(eta, y_data, p)
    return model
