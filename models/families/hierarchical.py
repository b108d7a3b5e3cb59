r"""Hierarchical (multilevel) normal models.

**Normal hierarchical model** (eight schools; :func:`build`): J groups, each with an estimate
:math:`y_j` and its known standard error :math:`\sigma_j`:

.. math::

    y_j \sim \mathcal N(\theta_j, \sigma_j^2), \quad \theta_j \sim \mathcal N(\mu, \tau^2),
    \quad \mu \sim \mathcal N(\bar y,\ 5 s_y), \quad \tau \sim \text{HalfCauchy}(s_y)

``centered=False`` (default) samples :math:`\eta_j \sim \mathcal N(0,1)` and sets
:math:`\theta_j = \mu + \tau\eta_j` (a Deterministic), which removes the funnel that makes the
centered form diverge when the data say little about :math:`\tau`.

**Varying-intercept regression** (radon; :func:`build_varying_intercept`): observations
:math:`i` in groups :math:`g[i]`:

.. math::

    y_i \sim \mathcal N(\alpha_{g[i]} + x_i^\top\beta, \sigma^2), \quad
    \alpha_g \sim \mathcal N(\mu_\alpha, \sigma_\alpha^2)

**MLEs.** The joint MLE over group effects and hyperparameters is degenerate: the likelihood
does not involve :math:`(\mu, \tau)` once the :math:`\theta_j` are free (centered), or has a
ridge (non-centered); :func:`models.inference.fit_mle` says so. The meaningful likelihood
estimate of the hyperparameters is the marginal (type-II) MLE, with the group effects
integrated out analytically, :math:`y_j \sim \mathcal N(\mu, \sigma_j^2 + \tau^2)`:
:func:`type2_mle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import pymc as pm
from scipy import optimize

from models.base.coords import OBS_DIM
from models.families.common import resolve_priors, scale_of
from models.base.checks import DataError, as_design_matrix, as_labels, as_outcome, check_aligned


def default_priors(y: np.ndarray) -> dict:
    sy = float(scale_of(y))
    return {
        "mu": partial(pm.Normal, mu=float(np.mean(y)), sigma=5 * sy),
        "tau": partial(pm.HalfCauchy, beta=sy),
    }


def _groups(y, groups):
    if groups is not None:
        labels = [str(g) for g in groups]
    elif isinstance(y, pd.Series):
        labels = [str(g) for g in y.index]
    else:
        labels = [str(j) for j in range(len(y))]
    if len(set(labels)) != len(labels):
        raise DataError(f"groups must be unique labels, one per estimate, got {labels}")
    return labels


def build(y, sigma, groups=None, centered: bool = False, priors=None) -> pm.Model:
    """Normal hierarchical model for group estimates ``y`` with known standard errors ``sigma``.

    ``groups``: labels of the J groups (coordinate ``group``; default: the Series index of ``y``
    or 0..J-1). Variables: ``mu``, ``tau``, ``theta`` (dim ``group``) and, non-centered, ``eta``.
    """
    y_values = as_outcome(y, None, "y")
    sigma_values = as_outcome(sigma, y_values.size, "sigma", against="y")
    if (sigma_values <= 0).any():
        raise DataError("sigma must be > 0 for every group (they are known standard errors)")
    labels = _groups(y, groups)
    if len(labels) != y_values.size:
        raise DataError(f"groups has {len(labels)} labels but y has {y_values.size} values")
    p = resolve_priors(default_priors(y_values), priors)
    with pm.Model(coords={"group": labels}) as model:
        y_data = pm.Data("y", y_values, dims="group")
        sigma_data = pm.Data("sigma", sigma_values, dims="group")
        mu = p["mu"]("mu", dims=None)
        tau = p["tau"]("tau", dims=None)
        if centered:
            theta = pm.Normal("theta", mu=mu, sigma=tau, dims="group")
        else:
            eta = pm.Normal("eta", 0.0, 1.0, dims="group")
            theta = pm.Deterministic("theta", mu + tau * eta, dims="group")
        pm.Normal("y_obs", mu=theta, sigma=sigma_data, observed=y_data, dims="group")
    return model


def default_varying_intercept_priors(X, y) -> dict:
    sy = float(scale_of(y))
    out = {
        "mu_alpha": partial(pm.Normal, mu=float(np.mean(y)), sigma=10 * sy),
        "sigma_alpha": partial(pm.Exponential, lam=1.0 / sy),
        "sigma": partial(pm.Exponential, lam=1.0 / sy),
    }
    if X is not None:
        out["beta"] = partial(pm.Normal, mu=0.0, sigma=2.5 * sy / scale_of(X))
    return out


def build_varying_intercept(X, y, group, centered: bool = False, priors=None) -> pm.Model:
    """Varying-intercept regression: ``y`` on ``X`` (or ``None``) with one intercept per group.

    ``group``: one label per observation (coordinate ``group``, sorted labels). Variables:
    ``mu_alpha``, ``sigma_alpha``, ``alpha`` (dim ``group``), ``beta`` (dim ``predictor``,
    when ``X`` is given), ``sigma``. Data containers: ``X``, ``y``, ``group_idx``.
    """
    check_aligned(("X", X), ("y", y), ("group", group))
    y_values = as_outcome(y, None, "y")
    X_values, names = (None, [])
    if X is not None:
        X_values, names = as_design_matrix(X, "X")
        if X_values.shape[0] != y_values.size:
            raise DataError(f"y has {y_values.size} values but X has {X_values.shape[0]} rows")
    codes, labels = as_labels(group, y_values.size, "group", against="y")
    p = resolve_priors(default_varying_intercept_priors(X_values, y_values), priors)
    coords = {"group": [str(g) for g in labels], OBS_DIM: np.arange(y_values.size)}
    if names:
        coords["predictor"] = names
    with pm.Model(coords=coords) as model:
        y_data = pm.Data("y", y_values, dims=OBS_DIM)
        g_data = pm.Data("group_idx", codes, dims=OBS_DIM)
        mu_alpha = p["mu_alpha"]("mu_alpha", dims=None)
        sigma_alpha = p["sigma_alpha"]("sigma_alpha", dims=None)
        if centered:
            alpha = pm.Normal("alpha", mu=mu_alpha, sigma=sigma_alpha, dims="group")
        else:
            z = pm.Normal("alpha_z", 0.0, 1.0, dims="group")
            alpha = pm.Deterministic("alpha", mu_alpha + sigma_alpha * z, dims="group")
        mean = alpha[g_data]
        if X_values is not None:
            X_data = pm.Data("X", X_values, dims=(OBS_DIM, "predictor"))
            beta = p["beta"]("beta", dims="predictor")
            mean = mean + X_data @ beta
        sigma = p["sigma"]("sigma", dims=None)
        pm.Normal("y_obs", mu=mean, sigma=sigma, observed=y_data, dims=OBS_DIM)
    return model


@dataclass(frozen=True)
class TypeIIMLE:
    """Marginal (type-II, empirical-Bayes) MLE of (mu, tau) for the normal hierarchical model."""

    mu: float
    tau: float
    se_mu: float  # from the observed information at (mu, tau); conditional on tau at a boundary
    se_tau: float  # NaN when tau is on the boundary 0 (no two-sided information there)
    loglik: float
    at_boundary: bool
    message: str


def marginal_loglik(mu, tau, y, sigma) -> float:
    """log p(y | mu, tau) = sum_j log N(y_j | mu, sigma_j^2 + tau^2), group effects integrated out."""
    v = np.asarray(sigma, float) ** 2 + tau**2
    return float(np.sum(-0.5 * np.log(2 * np.pi * v) - 0.5 * (np.asarray(y, float) - mu) ** 2 / v))


def _mu_hat(tau, y, sigma):
    w = 1.0 / (sigma**2 + tau**2)
    return float(np.sum(w * y) / np.sum(w)), w


def profile_loglik(taus, y, sigma) -> np.ndarray:
    """The marginal log-likelihood of tau with mu profiled out (maximised in closed form,
    the precision-weighted mean), at each of ``taus``: the curve whose maximum is the type-II
    MLE and whose drop of 1.92 (half the chi-square(1) 95% point) bounds the profile-
    likelihood 95% interval."""
    y, sigma = np.asarray(y, float), np.asarray(sigma, float)
    return np.array([marginal_loglik(_mu_hat(t, y, sigma)[0], t, y, sigma) for t in taus])


def type2_mle(y, sigma) -> TypeIIMLE:
    """Maximise the marginal likelihood over tau >= 0, with mu profiled out in closed form.

    For fixed tau the maximiser is the precision-weighted mean mu(tau) = sum w y / sum w with
    w = 1/(sigma^2 + tau^2), so the problem is 1-D; a bounded scalar search over tau covers
    the boundary tau = 0, where the eight-schools estimate famously lands. (Hand-written: the
    generic optimiser works on log tau and cannot reach the boundary.)
    """
    y = as_outcome(y, None, "y")
    sigma = as_outcome(sigma, y.size, "sigma", against="y")

    def neg_profile(tau):
        return -marginal_loglik(_mu_hat(tau, y, sigma)[0], tau, y, sigma)

    upper = 10 * (np.ptp(y) + sigma.max())
    res = optimize.minimize_scalar(neg_profile, bounds=(0.0, upper), method="bounded",
                                   options={"xatol": 1e-10})
    tau = float(res.x)
    # The bounded search stops within xatol of 0; compare with the boundary value exactly.
    if neg_profile(0.0) <= res.fun:
        tau = 0.0
    mu, w = _mu_hat(tau, y, sigma)
    at_boundary = bool(tau < 1e-6 * upper)
    se_mu = float(np.sqrt(1.0 / np.sum(w)))
    if at_boundary:
        tau, se_tau = 0.0, float("nan")
        message = ("tau-hat is on the boundary 0: the marginal likelihood is maximised by "
                   "complete pooling; se_tau is undefined and se_mu is conditional on tau = 0")
    else:
        # Observed information of the marginal loglik in (mu, tau) by central differences of a
        # closed-form function (hand-written: a 2x2 numerical Hessian of a 1-line formula).
        h = 1e-4 * max(1.0, tau)

        def ll(m, t):
            return marginal_loglik(m, t, y, sigma)

        hmm = (ll(mu + h, tau) - 2 * ll(mu, tau) + ll(mu - h, tau)) / h**2
        htt = (ll(mu, tau + h) - 2 * ll(mu, tau) + ll(mu, tau - h)) / h**2
        hmt = (ll(mu + h, tau + h) - ll(mu + h, tau - h) - ll(mu - h, tau + h)
               + ll(mu - h, tau - h)) / (4 * h**2)
        cov = np.linalg.inv(-np.array([[hmm, hmt], [hmt, htt]]))
        se_mu, se_tau = float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1]))
        message = "interior maximum"
    return TypeIIMLE(mu, tau, se_mu, se_tau, marginal_loglik(mu, tau, y, sigma), at_boundary,
                     message)


def neck_logp(model: pm.Model, taus) -> np.ndarray:
    """The log posterior density of a CENTERED :func:`build` model (unconstrained space, log
    Jacobian included: what a mode-finder climbs) along the funnel's neck: every theta_j at
    mu (the prior mean of mu) and tau at each of ``taus``. With J groups it grows like
    -(J - 1) log tau as tau -> 0: no mode exists, so neither does a Laplace approximation."""
    names = {v.name for v in model.value_vars}
    if names != {"mu", "tau_log__", "theta"}:
        raise ValueError(f"model: expected the centered eight-schools form (mu, tau, theta), "
                         f"got value variables {sorted(names)}")
    logp = model.compile_logp(jacobian=True)
    mu = float(model.initial_point()["mu"])
    j = int(model.initial_point()["theta"].size)
    return np.array([float(logp({"mu": mu, "tau_log__": np.log(t), "theta": np.full(j, mu)}))
                     for t in taus])
