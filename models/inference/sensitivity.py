"""How much of a posterior is the prior? Power-scaling sensitivity (Kallioinen, Paananen,
Buerkner & Vehtari 2023, "Detecting and diagnosing prior and likelihood sensitivity with
power-scaling"), from the existing draws, without refitting.

ArviZ 1.3 computes it (``arviz.psense``: the cumulative Jensen-Shannon distance between the
posterior and its importance-reweighted power-scaled versions, per unit of log2 alpha); this
module only labels its Datasets per scalar from each variable's own dims and coords (as
:func:`posterior_summary` does, rather than trusting ``psense_summary``'s row labels) and
applies ``psense_summary``'s documented diagnosis rule at its threshold (0.05):

* prior AND likelihood sensitivity above the threshold: "prior-data conflict";
* prior above, likelihood below: "prior-sensitive" (a strong prior or a weak likelihood);
* otherwise: "likelihood-dominated".
"""

from __future__ import annotations

import pandas as pd
import pymc as pm
import xarray as xr

from models.base import stopwatch
from models.inference.labels import flat_by_label

THRESHOLD = 0.05
CONFLICT = "prior-data conflict"
PRIOR_SENSITIVE = "prior-sensitive"
LIKELIHOOD_DOMINATED = "likelihood-dominated"


def diagnosis(prior: float, likelihood: float, threshold: float = THRESHOLD) -> str:
    """``psense_summary``'s rule (arviz-stats 1.3), in this project's words."""
    if prior >= threshold and likelihood >= threshold:
        return CONFLICT
    if prior > threshold > likelihood:
        return PRIOR_SENSITIVE
    return LIKELIHOOD_DOMINATED


@stopwatch.timed('prior sensitivity')
def sensitivity_data(idata: xr.DataTree, model: pm.Model, var_names=None) -> xr.DataTree:
    """The DataTree that ArviZ's power-scaling functions read (``psense``,
    ``plot_psense_dist``): ``posterior`` (``var_names``, default all), ``log_prior`` and
    ``log_likelihood``, taken from ``idata`` or computed by PyMC when it lacks them
    (``idata`` itself is not changed).

    ``log_likelihood`` holds each draw's total over every row (one value per draw and observed
    variable), not the pointwise values: ``psense`` only sums them (arviz-stats 1.3,
    ``_get_power_scale_weights``), so the weights are the same, while stacking a draws x rows
    array cost it seconds per call. From ``idata``'s pointwise group when it has every row;
    otherwise (no group, or a subsample of rows) computed one draw at a time."""
    from models.inference.pointwise import subsampled, total_log_likelihood

    post = idata["posterior"].to_dataset()
    names = list(var_names) if var_names is not None else list(post.data_vars)
    groups = {"posterior": post[names]}
    if "log_likelihood" in idata.children and subsampled(idata) is None:
        ll = idata["log_likelihood"].to_dataset()
        groups["log_likelihood"] = xr.Dataset(
            {k: v.sum([d for d in v.dims if d not in ("chain", "draw")]).expand_dims("all_rows", -1)
             for k, v in ll.data_vars.items()})
    else:
        # a subsample of rows would power-scale a different likelihood: each draw's total
        # over every row gives psense the weights of the full pointwise group
        if model is None:
            raise ValueError("model: needed for the total log-likelihood of a posterior "
                             "without the pointwise log_likelihood of every row")
        groups["log_likelihood"] = total_log_likelihood(model, idata)
    if "log_prior" in idata.children:
        groups["log_prior"] = idata["log_prior"].to_dataset()
    else:
        ds = pm.stats.compute_log_prior(idata, model=model, extend_inferencedata=False,
                                        progressbar=False)
        groups["log_prior"] = ds.to_dataset() if isinstance(ds, xr.DataTree) else ds
    return xr.DataTree.from_dict(groups)


@stopwatch.timed('prior sensitivity')
def prior_sensitivity(idata: xr.DataTree, model: pm.Model | None = None, var_names=None,
                      threshold: float = THRESHOLD) -> pd.DataFrame:
    """Per scalar parameter: ``prior`` and ``likelihood`` power-scaling sensitivity and the
    ``diagnosis``. Needs the model's proper priors (a flat prior cannot be power-scaled); the
    log prior and the pointwise log-likelihood are computed by PyMC when ``idata`` lacks them
    (:func:`sensitivity_data`; ``model`` may be None when it has both)."""
    import arviz as az

    if model is None and not {"log_prior", "log_likelihood"} <= set(idata.children):
        raise ValueError("model: needed to compute the log prior and log-likelihood, which "
                         "idata lacks")
    tree = sensitivity_data(idata, model, var_names)
    names = list(tree["posterior"].data_vars)
    values = {g: az.psense(tree, group=g) for g in ("prior", "likelihood")}
    frames = []
    for name in names:
        cols = {g: flat_by_label(ds[name], name) for g, ds in values.items()}
        frames.append(pd.DataFrame(cols))
    out = pd.concat(frames)
    out.index.name = "parameter"
    out["diagnosis"] = [diagnosis(p, lk, threshold) for p, lk in
                        zip(out["prior"].to_numpy(float), out["likelihood"].to_numpy(float))]
    return out


__all__ = ["CONFLICT", "LIKELIHOOD_DOMINATED", "PRIOR_SENSITIVE", "THRESHOLD", "diagnosis",
           "prior_sensitivity", "sensitivity_data"]
