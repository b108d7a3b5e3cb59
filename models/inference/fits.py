"""Many fits of ONE compiled model: data-size sweeps and coverage simulations.

:func:`fit_many` fits the MLE (``fit_mle``, priors ignored) and the NUTS posterior (nutpie,
one compile) of the same model on each of many data sets, in this process or on Dask workers
(``client``; see :mod:`models.inference.distributed`). Each task is a chunk of (data set, seed) pairs;
a worker compiles the model once (``worker_cached``) however many chunks it runs, and swaps
each data set into the compiled log-likelihood (``set_data``) and the compiled sampler
(nutpie's ``with_data``). A chunk that fails twice is reported in ``failures``, never dropped.
Only summaries travel back (posterior mean, sd and the central interval of each scalar, the
MLE result, the diagnostics), not the draws.

:func:`interval_coverage` turns the summaries of simulated data sets with known truth into
the frequentist coverage of the Wald interval (MLE ± z SE), the Laplace interval (when
fitted) and the central credible interval.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
from scipy import special

from models.inference.config import SamplerConfig
from models.inference.diagnostics import Diagnostics, diagnose
from models.inference.distributed import run_tasks, worker_cached
from models.inference.laplace import fit_laplace
from models.inference.mle import MLEResult, fit_mle
from models.inference.sampling import CompiledSampler, set_data

MANY_FITS_DEFAULT = SamplerConfig(draws=500, tune=500, chains=2)


@dataclass(frozen=True)
class FitPlan:
    """What :func:`fit_many` does to each data set: NUTS with ``sampler`` (nutpie, compiled
    once; each fit's own seed replaces ``sampler.seed``), summaries of ``var_names`` with
    central ``prob`` intervals, the MLE (``fit_mle(random_seed=mle_seed)``) if ``mle``, and
    the Laplace approximation with the model's prior (``fit_laplace``, ``laplace_draws``
    draws, the fit's seed) if ``laplace``."""

    var_names: tuple[str, ...]
    sampler: SamplerConfig = MANY_FITS_DEFAULT
    prob: float = 0.95
    mle: bool = True
    mle_seed: int = 0
    laplace: bool = False
    laplace_draws: int = 2000

    def __post_init__(self):
        object.__setattr__(self, "var_names", tuple(self.var_names))
        if not 0 < self.prob < 1:
            raise ValueError(f"prob must be in (0, 1), got {self.prob}")


@dataclass
class FitSummary:
    """One data set's fits: ``posterior[name]`` has flattened ``mean``, ``sd``, ``lo``, ``hi``
    (the central ``prob`` interval) per scalar of ``name``; ``mle`` is None if not asked;
    ``laplace`` likewise from the Laplace draws, None if not asked or if the approximation
    does not exist (``laplace_error`` says why)."""

    index: int
    seed: int
    n_obs: int
    mle: MLEResult | None
    posterior: dict[str, dict[str, np.ndarray]]
    diagnostics: Diagnostics
    laplace: dict[str, dict[str, np.ndarray]] | None = None
    laplace_error: str = ""


def summarise_draws(idata, var_names: Sequence[str], prob: float = 0.95) -> dict:
    """Mean, sd and central ``prob`` interval of every scalar of each variable."""
    out = {}
    a = (1 - prob) / 2
    for name in var_names:
        d = np.asarray(idata["posterior"][name].values)
        d = d.reshape(d.shape[0] * d.shape[1], -1)
        lo, hi = np.quantile(d, [a, 1 - a], axis=0)
        out[name] = {"mean": d.mean(0), "sd": d.std(0, ddof=1), "lo": lo, "hi": hi}
    return out


def _fit_chunk(model, key, items, plan: FitPlan, cores):
    """Fit one chunk of data sets; the model and its compiled sampler are cached per process."""
    m, sampler = worker_cached(("fits", key),
                               lambda: (model, CompiledSampler(model, plan.sampler)))
    names = list(plan.var_names)
    out = []
    for index, data, seed in items:
        set_data(m, **data)
        mle = fit_mle(m, random_seed=plan.mle_seed, warn=False) if plan.mle else None
        laplace, laplace_error = None, ""
        if plan.laplace:
            try:
                fit = fit_laplace(m, prior=True, draws=plan.laplace_draws, random_seed=seed,
                                  log_densities=False)
                laplace = summarise_draws(fit.idata, names, plan.prob)
            except ValueError as exc:  # no positive-definite curvature: said, not hidden
                laplace_error = str(exc)
        post = sampler.sample(seed, cores=cores, **data)
        n_obs = len(next(iter(data.values())))
        out.append(FitSummary(index, seed, n_obs, mle, summarise_draws(post, names, plan.prob),
                              diagnose(post, names), laplace, laplace_error))
    return out


def fit_many(model: pm.Model, datasets: Sequence[dict], seeds: Sequence[int], plan: FitPlan,
             client=None, chunks: int | None = None, key: str | None = None):
    """Fit ``model`` to every data set (a dict of ``pm.Data`` names -> arrays) with its seed,
    as ``plan`` (:class:`FitPlan`) says.

    Returns ``(summaries, failures)``: ``summaries[i]`` is a :class:`FitSummary` or None if its
    chunk failed twice; ``failures`` lists ``(chunk, error)``. ``client``: a Dask client (chunks
    default to 4 per worker; chains run on one core per worker), None runs here. Same seeds,
    same numbers either way. ``key``: reuse one compile across calls (e.g. a sweep and a
    coverage study of the same model); by default each call compiles once per process.
    """
    if len(datasets) != len(seeds):
        raise ValueError(f"seeds: expected one per data set ({len(datasets)}), got {len(seeds)}")
    if not datasets:
        raise ValueError("datasets: expected at least one data set")
    names = {v.name for v in model.data_vars}
    for i, data in enumerate(datasets):
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"datasets[{i}]: {unknown} are not pm.Data of the model "
                             f"(it has {sorted(names)})")
    if client is None:
        n_chunks, cores = 1, None
    else:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        n_chunks, cores = min(len(datasets), chunks or 4 * n_workers), 1
    key = key or uuid.uuid4().hex
    items = [(i, data, int(seed)) for i, (data, seed) in enumerate(zip(datasets, seeds))]
    tasks = [(model, key, [items[i] for i in idx], plan, cores)
             for idx in np.array_split(np.arange(len(items)), n_chunks) if len(idx)]
    results, failures = run_tasks(_fit_chunk, tasks, client=client)
    summaries: list[FitSummary | None] = [None] * len(items)
    for chunk in results:
        for fs in chunk or []:
            summaries[fs.index] = fs
    return summaries, failures


def _converged(s: FitSummary) -> bool:
    d = s.diagnostics
    return d is None or bool(d.checks["r_hat_max"] and d.checks["divergences"])


def interval_coverage(summaries: Sequence[FitSummary | None], truth: dict[str, np.ndarray],
                      labels: dict[str, Sequence[str]], prob: float = 0.95) -> pd.DataFrame:
    """Coverage of the Wald interval (MLE ± z SE, z for ``prob``) and of the central credible
    interval (the summaries' ``prob``) of each scalar of ``truth``, over the fitted data sets.

    A data set whose MLE does not exist, is singular or did not converge counts as a MISS for
    the Wald interval (the method gave no interval); with Laplace summaries (``FitPlan(laplace=
    True)``) its central interval gets a row too, a fit without one counting as a miss; failed fits (None) are left out and
    counted in ``failed fits``; fits whose posterior did not converge (R-hat above 1.01 or any
    divergent transition) are left out too and counted in ``dropped (not converged)``: their
    intervals are not the posterior's. (An ESS below 400 alone does not drop a fit: it adds
    Monte-Carlo noise to the interval's ends, not bias.) Columns: coverage, its Monte-Carlo
    standard error at the nominal level, the number of simulations counted, of those that gave
    no such interval (MLE failures for the Wald row, fits without a Laplace approximation for
    the Laplace row, none for the credible row), of failed fits and of dropped fits."""
    z = special.ndtri(0.5 + prob / 2)
    returned = [s for s in summaries if s is not None]
    if not returned:
        raise ValueError("summaries: no successful fit to measure coverage on")
    done = [s for s in returned if _converged(s)]
    n = len(done)
    rows = []
    for name, t in truth.items():
        t = np.ravel(t)
        wald = np.zeros(t.size)
        bayes = np.zeros(t.size)
        laplace = np.zeros(t.size)
        mle_failed = laplace_failed = 0
        with_laplace = any(s.laplace is not None or s.laplace_error for s in done)
        for s in done:
            p = s.posterior[name]
            bayes += (p["lo"] <= t) & (t <= p["hi"])
            if s.laplace is not None:
                q = s.laplace[name]
                laplace += (q["lo"] <= t) & (t <= q["hi"])
            else:
                laplace_failed += 1
            if s.mle is not None and s.mle.status == "ok":
                est, se = np.ravel(s.mle.params[name]), np.ravel(s.mle.se[name])
                wald += np.abs(est - t) <= z * se
            else:
                mle_failed += 1
        # (interval, hits, fits that gave no such interval: each counted as a miss; a
        # converged posterior always has its credible interval)
        kinds = [(f"Wald {prob:.0%} (MLE)", wald, mle_failed),
                 (f"{prob:.0%} credible (ETI)", bayes, 0)]
        if with_laplace:
            kinds.insert(1, (f"Laplace {prob:.0%} (MAP, curvature)", laplace, laplace_failed))
        for j, label in enumerate(labels[name]):
            for kind, hits, missing in ((k, h[j], m) for k, h, m in kinds):
                rows.append({"parameter": label, "interval": kind,
                             "coverage": hits / n if n else np.nan,
                             "MC standard error": np.sqrt(prob * (1 - prob) / n) if n else np.nan,
                             "simulations": n, "no interval (counted as miss)": missing,
                             "failed fits": len(summaries) - len(returned),
                             "dropped (not converged)": len(returned) - n})
    return pd.DataFrame(rows)


__all__ = ["FitPlan", "FitSummary", "fit_many", "interval_coverage", "summarise_draws"]
