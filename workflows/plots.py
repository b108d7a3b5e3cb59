"""Report figures. ArviZ draws every diagnostic plot (rank, energy, PPC, LOO-PIT, power-scaling);
two hand-written figures compare estimators, which no ArviZ plot does for an external point
estimate: the MLE's exact normal approximation N(theta_hat, SE^2) and Wald interval over the
posterior (and Laplace) draws, and every estimator on one standardised scale. One colour per
estimator everywhere: MLE orange, Laplace purple, posterior green."""

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
# Chains get colours none of the estimators use (a blue chain is never "the MLE").
CHAIN_COLORS = ["#1f77b4", "#7f7f7f", "#17becf", "#8c564b", "#bcbd22", "#e377c2", "#000000",
                "#aec7e8", "#c49c94", "#9edae5"]


def identified(mle, idata) -> list[str]:
    """Variables with a finite MLE and SE that are also in the posterior."""
    post = idata["posterior"].data_vars
    return [n for n in mle.params if n in post and np.all(np.isfinite(mle.se[n]))]


def posterior_panels(mle, idata, var_names=None) -> list[str]:
    """The scalar labels :func:`posterior_vs_mle` can draw (a finite MLE and SE)."""
    names = var_names or identified(mle, idata)
    return [label for n in names for label in mle.labels[n]]


def posterior_vs_mle(mle, idata, var_names=None, max_panels: int = 16, laplace=None):
    """Posterior density (histogram) with the MLE, its Wald 95% interval and N(MLE, SE^2),
    and the Laplace approximation's draws (step histogram) when ``laplace`` is given; the
    first ``max_panels`` scalars (the caller says how many there were)."""
    names = var_names or identified(mle, idata)
    lap_post = laplace.idata["posterior"] if laplace is not None else None
    panels = []
    for n in names:
        draws = idata["posterior"][n].values
        draws = draws.reshape(draws.shape[0] * draws.shape[1], -1)
        lap = None
        if lap_post is not None and n in lap_post:
            lap = lap_post[n].values.reshape(lap_post[n].shape[0] * lap_post[n].shape[1], -1)
        for j, label in enumerate(mle.labels[n]):
            panels.append((label, draws[:, j], np.ravel(mle.params[n])[j],
                           np.ravel(mle.se[n])[j], None if lap is None else lap[:, j]))
    panels = panels[:max_panels]
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.7 * rows), squeeze=False,
                             layout="constrained")
    for ax, (label, d, m, s, lap) in zip(axes.flat, panels):
        ax.hist(d, bins=50, density=True, color=POST_COLOR, alpha=0.45, label="posterior (NUTS)")
        lo, hi = np.quantile(d, [0.025, 0.975])
        ax.axvline(lo, color=POST_COLOR, ls=":", lw=1.2)
        ax.axvline(hi, color=POST_COLOR, ls=":", lw=1.2, label="95% credible (ETI)")
        if lap is not None:
            ax.hist(lap, bins=50, density=True, histtype="step", color=LAPLACE_COLOR, lw=1.3,
                    range=(min(d.min(), lap.min()), max(d.max(), lap.max())),
                    label="Laplace (with prior)")
        if np.isfinite(s) and s > 0:
            grid = np.linspace(min(d.min(), m - 4 * s), max(d.max(), m + 4 * s), 300)
            ax.plot(grid, stats.norm.pdf(grid, m, s), color=MLE_COLOR, lw=1.6, ls="--",
                    label="N(MLE, SE²)")
            ax.axvspan(m - 1.96 * s, m + 1.96 * s, color=MLE_COLOR, alpha=0.12,
                       label="Wald 95%")
        ax.axvline(m, color=MLE_COLOR, lw=2.2, label="MLE")
        ax.set_title(label, fontsize=10)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=6, frameon=False)
    return fig


def standardised(road, max_rows: int = 30):
    """Every estimator on ONE scale whatever the parameters' units: (value - MLE) / SE per
    parameter, so the MLE's Wald 95% interval is [-1.96, 1.96] in every row; the Laplace
    interval and the posterior's 95% ETI (with their means) beside it. ``road``: the
    comparison table (``compare``, with ``compare_laplace``'s columns if available); rows
    without an MLE cannot be standardised and are left out; at most ``max_rows`` rows, the
    largest |shift_in_se| first. Returns (figure, rows shown, rows standardisable)."""
    t = road[np.isfinite(road["mle"].astype(float)) & (road["se"].astype(float) > 0)]
    n_all = len(t)
    t = t.reindex(t["shift_in_se"].astype(float).abs().sort_values(ascending=False).index)
    t = t.iloc[:max_rows]
    z = lambda col: (t[col].astype(float) - t["mle"].astype(float)) / t["se"].astype(float)  # noqa: E731
    y = np.arange(len(t))[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.32 * len(t)), layout="constrained")
    ax.axvline(0, color="#999", lw=0.8)
    ax.hlines(y + 0.22, -1.959964, 1.959964, color=MLE_COLOR, lw=2.5, label="MLE, Wald 95%")
    ax.plot(np.zeros(len(t)), y + 0.22, "o", color=MLE_COLOR, ms=4)
    if "laplace_lb" in t:
        ax.hlines(y, z("laplace_lb"), z("laplace_ub"), color=LAPLACE_COLOR, lw=2.5,
                  label="Laplace (with prior), 95%")
        ax.plot(z("laplace_mean"), y, "D", color=LAPLACE_COLOR, ms=4)
    ax.hlines(y - 0.22, z("eti_lb"), z("eti_ub"), color=POST_COLOR, lw=2.5,
              label="posterior (NUTS), 95% ETI")
    ax.plot(z("post_mean"), y - 0.22, "s", color=POST_COLOR, ms=4)
    ax.set_yticks(y, list(t.index))
    ax.set_xlabel("(value − MLE) / SE of the MLE")
    fig.legend(loc="outside upper center", ncol=3, frameon=False, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return fig, len(t), n_all


def rank(idata, var_names):
    """Rank ECDF per chain, ArviZ's default multi-chain test ("mtc_c": a p-value, suspicious
    points marked). Not method="envelope": in ArviZ 1.3 its band is drawn for the ECDF while
    the lines are ECDF differences (seen in a rendered figure), so it misleads."""
    n = idata["posterior"].sizes.get("chain", 1)
    colors = [CHAIN_COLORS[i % len(CHAIN_COLORS)] for i in range(n)]
    pc = az.plot_rank(idata, var_names=var_names, color=colors)
    pc.add_legend("chain", loc="outside right upper")
    return pc


def energy(idata):
    """ArviZ's energy plot, its per-chain E-BFMI panel with whole-number chain ticks (ArviZ
    1.3 labels the chains 0.0, 0.5, 1.0, ...)."""
    from matplotlib.ticker import MaxNLocator

    pc = az.plot_energy(idata)
    figure = pc.get_viz("figure")
    figure = figure.item() if hasattr(figure, "item") else figure
    for ax in figure.axes:
        if ax.get_ylabel() == "Chain":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return pc


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


def coefficient_grid(road, name: str = "beta"):
    """A predictor x class coefficient matrix (softmax's ``beta[predictor, class]``) as small
    multiples: one panel per predictor (its own y scale), classes along x, the MLE's Wald 95%
    interval, the Laplace interval and the posterior's 95% ETI side by side in each class.
    ``road``: the comparison table (with ``compare_laplace``'s columns if available)."""
    rows = [lab for lab in road.index if lab.startswith(f"{name}[") and ", " in lab]
    cells = [lab[len(name) + 1:-1].split(", ") for lab in rows]
    predictors = list(dict.fromkeys(p for p, _ in cells))
    classes = list(dict.fromkeys(c for _, c in cells))
    cols = min(3, len(predictors))
    nrows = int(np.ceil(len(predictors) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 2.6 * nrows), squeeze=False,
                             layout="constrained")
    x = np.arange(len(classes))
    spec = [("mle", "wald_lb", "wald_ub", MLE_COLOR, "o", -0.2, "MLE, Wald 95%"),
            ("laplace_mean", "laplace_lb", "laplace_ub", LAPLACE_COLOR, "D", 0.0,
             "Laplace (with prior), 95%"),
            ("post_mean", "eti_lb", "eti_ub", POST_COLOR, "s", 0.2, "posterior (NUTS), 95% ETI")]
    for ax, p in zip(axes.flat, predictors):
        t = road.loc[[f"{name}[{p}, {c}]" for c in classes]]
        for mid, lo, hi, color, marker, dx, label in spec:
            if mid not in t:
                continue
            m = t[mid].astype(float).to_numpy()
            ax.errorbar(x + dx, m, yerr=[m - t[lo].astype(float), t[hi].astype(float) - m],
                        fmt=marker, color=color, ms=4, capsize=2, label=label)
        ax.axhline(0, color="#999", lw=0.8)
        ax.set_xticks(x, classes)
        ax.set_title(p, fontsize=10)
    for ax in list(axes.flat)[len(predictors):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=3, frameon=False, fontsize=9)
    return fig
