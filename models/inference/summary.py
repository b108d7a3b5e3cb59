"""Posterior summary tables keyed by labels, and the MLE-vs-posterior comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from models.base import stopwatch
from models.inference.labels import flat_by_label
from models.inference.mle import MLEResult


@stopwatch.timed('summaries and diagnostics')
def posterior_summary(idata: xr.DataTree, var_names=None, prob: float = 0.95,
                      group: str = "posterior") -> pd.DataFrame:
    """Per scalar parameter: mean, sd, equal-tailed interval at ``prob``, bulk/tail ESS,
    R-hat and MCSE, every row labelled from the variable's OWN dims and coords.

    Why not ``arviz.summary``: ArviZ 1.3 (arviz-stats 1.3.3) mislabels the rows of a 2-D
    variable when an earlier variable in the same call shares one of its dims (softmax's
    ``intercept_centered`` (class) then ``beta`` (predictor, class): values in the wrong rows).
    Here the moments and quantiles are plain xarray reductions over (chain, draw), and ESS,
    R-hat and MCSE come from ArviZ as Datasets (keyed by dims, so they cannot be misplaced);
    each is flattened with labels built from that variable's own dims and coords.
    Columns: ``mean``, ``sd``, ``eti{pct}_lb``, ``eti{pct}_ub``, ``ess_bulk``, ``ess_tail``,
    ``r_hat``, ``mcse_mean``, ``mcse_sd``.
    """
    import arviz as az

    post = idata[group].to_dataset() if isinstance(idata, xr.DataTree) else idata
    names = list(var_names) if var_names is not None else list(post.data_vars)
    pct = f"{round(prob * 100):d}"
    sample = ("chain", "draw")
    tree = xr.DataTree.from_dict({"posterior": post[names]})
    multi = post.sizes.get("chain", 1) > 1
    diag = {"ess_bulk": az.ess(tree, method="bulk").dataset,
            "ess_tail": az.ess(tree, method="tail").dataset,
            "r_hat": az.rhat(tree).dataset if multi else None,
            "mcse_mean": az.mcse(tree, method="mean").dataset,
            "mcse_sd": az.mcse(tree, method="sd").dataset}
    frames = []
    for name in names:
        da = post[name]
        q = da.quantile([0.5 - prob / 2, 0.5 + prob / 2], dim=sample)
        cols = {"mean": da.mean(sample), "sd": da.std(sample, ddof=1),
                f"eti{pct}_lb": q.isel(quantile=0, drop=True),
                f"eti{pct}_ub": q.isel(quantile=1, drop=True)}
        for key, ds in diag.items():
            cols[key] = ds[name] if ds is not None else xr.full_like(cols["mean"], np.nan)
        frames.append(pd.DataFrame({k: flat_by_label(v.transpose(*cols["mean"].dims), name)
                                    for k, v in cols.items()}))
    out = pd.concat(frames) if frames else pd.DataFrame()
    out.index.name = "parameter"
    return out



@stopwatch.timed('summaries and diagnostics')
def compare(mle: MLEResult, idata: xr.DataTree, prob: float = 0.95) -> pd.DataFrame:
    """MLE and posterior side by side, one row per scalar parameter.

    Columns: ``mle``, ``se``, ``wald_lb``/``wald_ub`` (Wald interval at ``prob``),
    ``post_mean``, ``post_sd``, ``eti_lb``/``eti_ub`` (equal-tailed credible interval at the
    same ``prob``; ArviZ 1.x would default to 89%), ``shift_in_se`` = (posterior mean - MLE)/SE
    and ``width_ratio`` = credible width / Wald width.
    """
    names = [n for n in mle.params if n in idata["posterior"].data_vars]
    summary = posterior_summary(idata, var_names=names, prob=prob)
    pct = f"{round(prob * 100):d}"
    summary = summary.rename(columns={"mean": "post_mean", "sd": "post_sd",
                                      f"eti{pct}_lb": "eti_lb", f"eti{pct}_ub": "eti_ub"})
    table = mle.table(prob).join(summary[["post_mean", "post_sd", "eti_lb", "eti_ub"]],
                                 how="inner")
    table["shift_in_se"] = (table["post_mean"] - table["mle"]) / table["se"]
    table["width_ratio"] = (table["eti_ub"] - table["eti_lb"]) / (table["wald_ub"] - table["wald_lb"])
    return table


# Below this many SEs the MLE-to-posterior shift is too small to split into shares.
SHARE_MIN_SHIFT_SE = 0.1


def compare_laplace(table: pd.DataFrame, laplace, prob: float = 0.95) -> pd.DataFrame:
    """:func:`compare`'s table with the Laplace approximation (with the model's prior) beside
    it: ``laplace_mean``/``laplace_sd``/``laplace_lb``/``laplace_ub`` (from its draws, as for
    NUTS), and two columns that say why MLE and posterior differ, per parameter:

    * ``prior_share`` = (Laplace mean - MLE) / (posterior mean - MLE): the part of the shift
      that a Gaussian with the prior explains (1: all of it is the prior's pull; NaN where the
      shift is below ``SHARE_MIN_SHIFT_SE`` standard errors, nothing to explain);
    * ``nuts_vs_laplace_sd`` = (posterior mean - Laplace mean) / posterior sd: how far the
      posterior is from its Gaussian approximation (the likelihood's non-Gaussianity: small
      data, a boundary, a funnel), in posterior sds; |value| well below 0.1 is Monte-Carlo
      noise at the usual ESS.

    ``laplace``: a :class:`models.inference.laplace.LaplaceFit` with ``prior=True``.
    """
    pct = f"{round(prob * 100):d}"
    lap = posterior_summary(laplace.idata, var_names=[n for n in laplace.mode
                                                        if n in laplace.idata["posterior"]],
                            prob=prob)
    lap = lap.rename(columns={"mean": "laplace_mean", "sd": "laplace_sd",
                              f"eti{pct}_lb": "laplace_lb", f"eti{pct}_ub": "laplace_ub"})
    out = table.join(lap[["laplace_mean", "laplace_sd", "laplace_lb", "laplace_ub"]], how="left")
    shift = out["post_mean"] - out["mle"]
    share = (out["laplace_mean"] - out["mle"]) / shift
    out["prior_share"] = share.where((shift / out["se"]).abs() >= SHARE_MIN_SHIFT_SE)
    out["nuts_vs_laplace_sd"] = (out["post_mean"] - out["laplace_mean"]) / out["post_sd"]
    return out

