"""Small helpers shared by the family modules: prior resolution and the GLM skeleton.

The data conventions every family follows are in :mod:`models.base.coords` (``OBS_DIM``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from models.base.coords import OBS_DIM


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


def glm(X, y, *, priors, defaults, likelihood, coords_extra=None, y_kind="real",
        intercept: bool = True):
    """Build the shared GLM skeleton: intercept + X @ beta -> ``likelihood(eta, y_data)``.

    ``defaults`` is a function (X_values, y_values) -> {name: prior factory} so that the
    documented weakly-informative scales can depend on the data's own scale.
    """
    import pymc as pm

    from models.base.checks import as_design_matrix, as_outcome, check_aligned

    check_aligned(("X", X), ("y", y))
    X_values, names = as_design_matrix(X, "X", check_columns=intercept)
    y_values = as_outcome(y, X_values.shape[0], "y", kind=y_kind)
    default = defaults(X_values, y_values)
    if not intercept:
        default.pop("intercept")
    p = resolve_priors(default, priors)
    coords = {"predictor": names, OBS_DIM: np.arange(X_values.shape[0]), **(coords_extra or {})}
    with pm.Model(coords=coords) as model:
        X_data = pm.Data("X", X_values, dims=(OBS_DIM, "predictor"))
        y_data = pm.Data("y", y_values, dims=OBS_DIM)
        if intercept:
            eta = centered_linear_predictor(p, X_data, X_values.mean(axis=0), dims=None)
        else:  # the design carries its own constant column, or the model has none
            eta = X_data @ p["beta"]("beta", dims="predictor")
        likelihood(eta, y_data, p)
    return model


def centered_linear_predictor(p, X_data, x_mean, dims):
    """alpha + X beta, sampled as alpha_c + (X - x_mean) beta with alpha = alpha_c - x_mean beta.

    Centering the predictors (at the means of the data passed to ``build``) removes the strong
    intercept-slope correlation that makes NUTS slow for uncentered predictors (age, IQ, ...);
    rstanarm and brms do the same. ``intercept`` (the usual, uncentered intercept) is a
    Deterministic; the ``intercept`` prior applies to ``intercept_centered``, the intercept at
    the predictor means. The likelihood, and so the MLE, is unchanged (MLEs are invariant to
    reparametrisation; the delta method is exact for this linear map).
    """
    import pymc as pm

    x_mean = np.asarray(x_mean, dtype=float)
    intercept_c = p["intercept"]("intercept_centered", dims=dims)
    beta = p["beta"]("beta", dims=("predictor", dims) if dims else "predictor")
    pm.Deterministic("intercept", intercept_c - x_mean @ beta, dims=dims)
    return intercept_c + (X_data - x_mean) @ beta
