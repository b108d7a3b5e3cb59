"""The Laplace approximation, the bridge between the MLE and the posterior, for ANY model.

A normal distribution in the unconstrained space (log sigma, ...) centred at the mode of the
objective, with covariance the inverse of its negative Hessian there; draws are mapped back
through the transforms, so a :class:`LaplaceFit` carries a ``xarray.DataTree`` with a
``posterior`` group (one chain) that every ArviZ function accepts.

* ``prior=True``: the mode of the log posterior density of the unconstrained parameters
  (priors and the transforms' log-Jacobians included, as Stan's ``laplace_sample`` does): the
  MAP and the curvature of the log posterior.
* ``prior=False``: a flat prior on the unconstrained parameters: the mode is the MLE and the
  delta-method sds of the constrained parameters are the Wald standard errors of
  :func:`models.inference.fit_mle` (the same observed information).

Hand-written because pymc-extras' ``fit_laplace`` does not install with PyMC 6.4 (see issue
17); it reuses the MLE's compiled gradient, optimiser (L-BFGS then Newton) and Hessian (central
differences of the exact gradient), so both ends of the bridge are computed the same way.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from scipy import stats

from models.base import stopwatch
from models.inference.mle import CompiledMLE, compiled_mle, fit_mle_with_optimum, maximise

# One compiled log posterior per model (weakly held), like the MLE's compiled likelihood.
_COMPILED_LOGP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class LaplaceFit:
    """A Laplace approximation. ``mode``/``sd``: constrained parameters at the mode and their
    delta-method sds (``sd = sqrt(diag(J Sigma J^T))``, J the Jacobian of the transforms);
    ``cov_unconstrained``: Sigma, labelled by the unconstrained coordinates; ``idata``: draws
    from N(mode, Sigma) mapped back through the transforms (``posterior`` group, one chain);
    ``prior``: whether the priors were included (False: the flat-prior, MLE version);
    ``logdensity``: the objective at the mode (log posterior density up to a constant, or
    the log-likelihood); ``log_p``/``log_q``: at each draw, the target's log density (the
    same objective) and the approximation's (the normal's), both in the unconstrained space,
    for :func:`laplace_loo` (None when ``fit_laplace(..., log_densities=False)``)."""

    mode: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    cov_unconstrained: pd.DataFrame
    idata: xr.DataTree
    prior: bool
    logdensity: float
    log_p: np.ndarray | None
    log_q: np.ndarray | None


def _compiled(model: pm.Model, prior: bool) -> CompiledMLE:
    if not prior:
        return compiled_mle(model)
    cached = _COMPILED_LOGP.get(model)
    if cached is None:
        cached = _COMPILED_LOGP[model] = CompiledMLE(model, objective="logp")
    return cached


@stopwatch.timed("Laplace")
def fit_laplace(model: pm.Model, prior: bool = True, draws: int = 4000,
                random_seed: int | None = 0, maxiter: int = 20_000,
                log_densities: bool = True) -> LaplaceFit:
    """The Laplace approximation of ``model`` (see the module doc); ``draws`` samples.
    ``log_densities=False`` skips the target's log density at each draw (``log_p``/``log_q``,
    needed only by :func:`laplace_loo`; on 3,020 wells households they are half the time).

    Raises ValueError, in words, when the mode has no finite negative-definite Hessian (a
    flat direction: the approximation does not exist there, e.g. the flat-prior version of a
    model whose MLE does not exist)."""
    x = None
    if not prior:
        # The flat-prior mode is the MLE: whether it exists is fit_mle's verdict (the log-
        # likelihood far out along the flattest directions), not an eigenvalue threshold,
        # which depends on the units and on how far the optimiser went before it stopped.
        # Where fit_mle converged, its optimum is the mode (no second optimisation).
        mle, x_mle = fit_mle_with_optimum(model, maxiter=maxiter, warn=False)
        status = mle.status
        if status == "ok":
            x = x_mle
        if status in ("does_not_exist", "singular"):
            raise ValueError(
                "no Laplace approximation: the likelihood is flat or unbounded in some direction ("
                + ("it keeps rising as some parameters grow without bound, e.g. perfect "
                   "separation: no MLE" if status == "does_not_exist"
                   else "flat along a ridge: a parameter is not identified") + ")")
    c = _compiled(model, prior)
    x0 = c.ravel(model.initial_point())
    if not np.isfinite(c.loglik(x0)):
        raise ValueError("the log density is not finite at the model's initial point")
    if x is None:
        x, _ = maximise(c, x0, maxiter)
    info = -np.asarray(c.f_hess(x), dtype=float)
    diag = np.diag(info)
    if np.all(np.isfinite(info)) and np.all(diag > 0):
        # again with steps on each coordinate's own scale, as fit_mle does (units-free)
        info = -np.asarray(c.f_hess(x, scale=1.0 / np.sqrt(diag)), dtype=float)
    info = 0.5 * (info + info.T)
    eig = np.linalg.eigvalsh(info) if np.all(np.isfinite(info)) else np.array([np.nan])
    if not np.all(np.isfinite(eig)) or eig.min() <= 1e-12 * max(1.0, abs(eig).max()):
        raise ValueError("no Laplace approximation: the negative Hessian at the mode is not "
                         f"positive definite (smallest eigenvalue {eig.min():.3g}); the "
                         + ("posterior" if prior else "likelihood")
                         + " is flat or unbounded in some direction")
    cov_x = np.linalg.inv(info)
    cov_x = 0.5 * (cov_x + cov_x.T)
    flat, jac = c.f_out(x)
    sd_flat = np.sqrt(np.clip(np.diag(jac @ cov_x @ jac.T), 0, None))
    rng = np.random.default_rng(random_seed)
    z = rng.multivariate_normal(x, cov_x, size=int(draws), method="cholesky")
    samples = c.flat_batch(z)
    log_p = log_q = None
    if log_densities:
        log_p = np.array([c.loglik(zi) for zi in z])
        log_q = stats.multivariate_normal(x, cov_x).logpdf(z).reshape(len(z))
    mode, sd, data, offset = {}, {}, {}, 0
    for name, shape in zip(c.out_names, c.out_shapes):
        size = int(np.prod(shape))
        mode[name] = flat[offset:offset + size].reshape(shape)
        sd[name] = sd_flat[offset:offset + size].reshape(shape)
        dims = list(model.named_vars_to_dims.get(name) or [])
        if len(dims) != len(shape):
            dims = [f"{name}_dim_{i}" for i in range(len(shape))]
        data[name] = (["chain", "draw", *dims], samples[:, offset:offset + size]
                      .reshape(1, len(z), *shape))
        offset += size
    coords = {d: list(v) for d, v in model.coords.items() if v is not None}
    used = {d for _, (dims, _) in data.items() for d in dims}
    posterior = xr.Dataset(data, coords={"chain": [0], "draw": np.arange(len(z)),
                                         **{d: v for d, v in coords.items() if d in used}})
    posterior.attrs["inference"] = "laplace" + ("" if prior else " (flat prior)")
    return LaplaceFit(mode, sd, pd.DataFrame(cov_x, index=c.x_labels, columns=c.x_labels),
                      xr.DataTree.from_dict({"posterior": posterior}), prior,
                      float(c.loglik(x)), log_p, log_q)


def laplace_loo(fit: LaplaceFit, model: pm.Model, rows=None):
    """PSIS-LOO of the Laplace approximation (``arviz.loo_approximate_posterior``): the
    pointwise log-likelihood at its draws (PyMC, on ``model``'s data, or on the training rows
    ``rows`` only), importance-corrected from the approximation to the target with
    ``fit.log_p - fit.log_q``. Returns ArviZ's ELPD object (``elpd``, ``se``, ``pareto_k``...)."""
    import arviz as az

    from models.inference.pointwise import log_likelihood_rows

    if fit.log_p is None:
        raise ValueError("fit: no log densities at the draws; fit it with log_densities=True")
    if rows is None:
        ll = pm.stats.compute_log_likelihood(fit.idata, model=model, extend_inferencedata=False,
                                             progressbar=False)
        ll = ll.to_dataset() if isinstance(ll, xr.DataTree) else ll
    else:
        ll = log_likelihood_rows(fit.idata, model, rows)
    tree = xr.DataTree.from_dict({"posterior": fit.idata["posterior"].to_dataset(),
                                  "log_likelihood": ll})
    sample = {"chain": [0], "draw": np.arange(len(fit.log_p))}
    as_da = lambda v: xr.DataArray(v.reshape(1, -1), dims=("chain", "draw"), coords=sample)  # noqa: E731
    return az.loo_approximate_posterior(tree, as_da(fit.log_p), as_da(fit.log_q))


def _plpd(model: pm.Model, posterior: xr.Dataset) -> np.ndarray:
    """log p(y_i | posterior mean) for every row: the cheap per-row approximation that the
    subsampled-LOO difference estimator corrects (Magnusson et al. 2019's "plpd")."""
    from models.inference.predictive import point_tree, pointwise_log_likelihood

    point = {rv.name: posterior[rv.name].mean(("chain", "draw")).values for rv in model.free_RVs}
    return pointwise_log_likelihood(model, point_tree(model, point))[0]


@stopwatch.timed('LOO')
def compare_loo(idata: xr.DataTree, laplace: LaplaceFit | None, model: pm.Model) -> pd.DataFrame:
    """PSIS-LOO of the NUTS posterior (``arviz.loo`` on ``idata``'s log_likelihood) and, if
    given, of the Laplace approximation (:func:`laplace_loo`), one row each: ``elpd_loo`` and
    its ``se`` (nats), ``p_loo``, ``share_k_high`` (share of observations with Pareto k above
    ArviZ's ``good_k``: LOO unreliable there), and for Laplace the paired difference to NUTS
    ``elpd_diff`` with ``se_diff`` = sqrt(n) x sd of the pointwise differences, and both in
    bits (``elpd_diff_bits``, ``se_diff_bits``).

    When ``idata``'s log_likelihood holds a subsample of the rows (a large data set, see
    :mod:`models.inference.pointwise`), both are computed on those rows and the totals are
    estimated for all N rows as ArviZ's ``loo_subsample`` does: ``elpd_loo`` by the difference
    estimator around the log-likelihood at the posterior mean (``diff_srs_estimator``; ``se``
    includes the subsampling error, also alone in ``subsampling_se``), ``p_loo`` and
    ``elpd_diff`` by simple-random-sample scaling (``se_diff`` with its subsampling
    variance); ``share_k_high`` is the subsample's; ``rows_used`` says how many rows."""
    from arviz_stats.base import array_stats
    from scipy import special

    from models.inference.pointwise import OBS_DIM, psis_loo, subsampled

    n_all = subsampled(idata)
    rows = None if n_all is None else idata["log_likelihood"][OBS_DIM].values
    nuts = psis_loo(idata)  # computed once per posterior (the fit checks read it too)
    fits = {"NUTS": (nuts, idata["posterior"].to_dataset())}
    if laplace is not None:
        fits["Laplace"] = (laplace_loo(laplace, model, rows),
                           laplace.idata["posterior"].to_dataset())
    base = np.ravel(nuts.elpd_i.values)
    rows_out = {}
    for name, (e, posterior) in fits.items():
        k = np.ravel(np.asarray(e.pareto_k))
        elpd_i = np.ravel(e.elpd_i.values)
        row = {"elpd_loo": float(e.elpd), "se": float(e.se), "p_loo": float(e.p),
               "share_k_high": float(np.mean(k > e.good_k))}
        if n_all is not None:
            approx_all = _plpd(model, posterior)
            elpd, sub_se, se = array_stats.diff_srs_estimator(elpd_i, approx_all[rows],
                                                               approx_all, n_all)
            if name == "NUTS":
                ll = idata["log_likelihood"].to_dataset()[model.observed_RVs[0].name]
                flat = ll.values.reshape(-1, ll.shape[-1])
                lpd_i = special.logsumexp(flat, axis=0) - np.log(flat.shape[0])
                p_hat = array_stats.srs_estimator(lpd_i - elpd_i, n_all)[0]
            else:  # Laplace: ArviZ's p on the subsample, scaled to all rows
                p_hat = float(e.p) * n_all / elpd_i.size
            row.update({"elpd_loo": float(elpd), "se": float(se), "p_loo": float(p_hat),
                        "subsampling_se": float(sub_se), "rows_used": int(elpd_i.size)})
        if name != "NUTS":
            d = elpd_i - base
            if n_all is None:
                row["elpd_diff"] = float(d.sum())
                row["se_diff"] = float(np.sqrt(d.size) * d.std(ddof=1))
            else:
                total, var_hat, var_total = array_stats.srs_estimator(d, n_all)
                row["elpd_diff"] = float(total)
                row["se_diff"] = float(np.sqrt(var_total + var_hat))
            row["elpd_diff_bits"] = row["elpd_diff"] / np.log(2)
            row["se_diff_bits"] = row["se_diff"] / np.log(2)
        rows_out[name] = row
    rows = rows_out
    out = pd.DataFrame(rows).T
    out.index.name = "posterior"
    return out
