"""Report figures. ArviZ draws every diagnostic plot; the one hand-written figure overlays the
MLE's exact normal approximation N(theta_hat, SE^2) and Wald interval on the posterior
density, which no ArviZ plot does for an external point estimate."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from scipy import stats  # noqa: E402

# One colour per estimator in every hand-drawn figure (ColorBrewer Dark2).
MLE_COLOR, LAPLACE_COLOR, POST_COLOR = "#d95f02", "#7570b3", "#1b9e77"


def identified(mle, idata) -> list[str]:
    """Variables with a finite MLE and SE that are also in the posterior."""
    post = idata["posterior"].data_vars
    return [n for n in mle.params if n in post and np.all(np.isfinite(mle.se[n]))]


def mle_as_tree(mle, idata, var_names, seed: int = 0) -> xr.DataTree:
    """The MLE's asymptotic distribution N(theta_hat, I^-1), as draws shaped exactly like the
    posterior (same chains and draws), so that ArviZ can plot it beside the posterior; its 95%
    ETI is the Wald interval up to the Monte-Carlo error of that many draws."""
    labels = [lab for n in var_names for lab in mle.labels[n]]
    mean = np.concatenate([np.ravel(mle.params[n]) for n in var_names])
    cov = mle.cov.loc[labels, labels].to_numpy()
    chains, draws = idata["posterior"].sizes["chain"], idata["posterior"].sizes["draw"]
    flat = np.random.default_rng(seed).multivariate_normal(mean, cov, size=(chains, draws),
                                                           method="eigh")
    data, offset = {}, 0
    for n in var_names:
        shape = np.shape(mle.params[n])
        size = int(np.prod(shape))
        template = idata["posterior"][n]
        arr = flat[..., offset:offset + size].reshape(chains, draws, *shape)
        data[n] = xr.DataArray(arr, dims=template.dims,
                               coords={d: template.coords[d] for d in template.dims
                                       if d not in ("chain", "draw") and d in template.coords})
        offset += size
    return xr.DataTree.from_dict({"posterior": xr.Dataset(data)})


def forest(mle, idata, var_names=None):
    names = var_names or identified(mle, idata)
    pc = az.plot_forest({"MLE (Wald)": mle_as_tree(mle, idata, names), "posterior": idata},
                        var_names=names, combined=True, ci_kind="eti", ci_probs=[0.5, 0.95])
    pc.add_legend("model")
    return pc


def posterior_vs_mle(mle, idata, var_names=None, max_panels: int = 16):
    """Posterior density (histogram) with the MLE, its Wald 95% interval and N(MLE, SE^2)."""
    names = var_names or identified(mle, idata)
    panels = []
    for n in names:
        draws = idata["posterior"][n].values
        draws = draws.reshape(draws.shape[0] * draws.shape[1], -1)
        for j, label in enumerate(mle.labels[n]):
            panels.append((label, draws[:, j], np.ravel(mle.params[n])[j], np.ravel(mle.se[n])[j]))
    panels = panels[:max_panels]
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.7 * rows), squeeze=False)
    for ax, (label, d, m, s) in zip(axes.flat, panels):
        ax.hist(d, bins=50, density=True, color=POST_COLOR, alpha=0.45, label="posterior")
        lo, hi = np.quantile(d, [0.025, 0.975])
        ax.axvline(lo, color=POST_COLOR, ls=":", lw=1)
        ax.axvline(hi, color=POST_COLOR, ls=":", lw=1, label="95% credible (ETI)")
        if np.isfinite(s) and s > 0:
            grid = np.linspace(min(d.min(), m - 4 * s), max(d.max(), m + 4 * s), 300)
            ax.plot(grid, stats.norm.pdf(grid, m, s), color=MLE_COLOR, lw=1.6,
                    label="N(MLE, SE²)")
            ax.axvspan(m - 1.96 * s, m + 1.96 * s, color=MLE_COLOR, alpha=0.12,
                       label="Wald 95%")
        ax.axvline(m, color=MLE_COLOR, lw=1.5, label="MLE")
        ax.set_title(label, fontsize=10)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=5, frameon=False,
               bbox_to_anchor=(0.5, 1.0 + 0.02 / rows))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.08 / rows))
    return fig


def rank(idata, var_names):
    """Rank ECDF per chain, ArviZ's default multi-chain test ("mtc_c": a p-value, suspicious
    points marked). Not method="envelope": in ArviZ 1.3 its band is drawn for the ECDF while
    the lines are ECDF differences (seen in a rendered figure), so it misleads."""
    return az.plot_rank(idata, var_names=var_names)


def energy(idata):
    return az.plot_energy(idata)


def psense(tree: xr.DataTree, labels) -> object:
    """ArviZ's power-scaling plot (``plot_psense_dist``) of the chosen scalars (``labels``,
    e.g. ``theta[A]``) of a :func:`models.inference.sensitivity_data` tree: each posterior
    with the prior (left) or the likelihood (right) raised to the power 0.8 and 1.25 by
    importance reweighting; mean and 95% ETI below each curve. One row per scalar, so no
    variable's dims decide what is shown."""
    from models.inference.labels import scalars_by_label

    post = tree["posterior"].to_dataset()
    names = list(dict.fromkeys(label.split("[")[0] for label in labels))
    scalars = scalars_by_label(post, names)
    sub = xr.DataTree.from_dict({
        "posterior": xr.Dataset({label: scalars[label] for label in labels}),
        "log_prior": tree["log_prior"].to_dataset(),
        "log_likelihood": tree["log_likelihood"].to_dataset()})
    return az.plot_psense_dist(sub, var_names=list(labels), point_estimate="mean",
                               ci_kind="eti", ci_prob=0.95,
                               figure_kwargs={"figsize": (11, 1.2 + 2.1 * len(labels)),
                                              "layout": "constrained"})
