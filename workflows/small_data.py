"""Small data: a data-size sweep of the wells logistic regression (MLE ± SE, the Laplace
approximation and the posterior converging, Bernstein-von Mises), the frequentist coverage of
the Wald, Laplace and credible intervals measured by simulation, and perfect separation, where
the MLE does not exist and the Laplace approximation and the posterior are still finite."""

from __future__ import annotations

import time
import uuid

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import special

from models.base import datasets
from models.families import logistic
from models.inference.distributed import format_failures
from models.inference.fits import FitPlan, fit_many, interval_coverage
from models.inference import fit_mle
from workflows.plots import LAPLACE_COLOR, MLE_COLOR, POST_COLOR
from workflows.report import Report, data_hash, grouped
from workflows.options import add_fanout, fanout_client, parser, settings
from workflows.running import entry, finish, Progress
from workflows.sections import model_section, SectionSpec

NAME = "small_data"
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())
PARAMS = ["beta[dist100]", "beta[arsenic]"]


def _plan(s) -> FitPlan:
    """Every sweep and coverage fit: nutpie compiled once (whatever --sampler says: the
    many-fit runner reuses one compiled model), the workflow's draws/tune/chains, and the
    Laplace approximation with the same prior (MAP and curvature) beside the MLE and NUTS."""
    return FitPlan(("beta",), s.config.replace(sampler="nutpie"), mle_seed=s.seed, laplace=True)


def sweep(report, s, progress, X, y, model, pool):
    sizes = [10, 20, 50, 100, 200, 500, 1000, len(y)]
    if s.quick:
        sizes = [10, 50, 200, len(y)]
    order = np.random.default_rng(s.seed).permutation(len(y))
    progress(f"sweep: N = {', '.join(map(str, sizes))}")
    data = [{"X": X.to_numpy()[order[:n]], "y": y.to_numpy()[order[:n]]} for n in sizes]
    fits, failures = fit_many(model, data, [s.seed + n for n in sizes], _plan(s), **pool)
    _failed(report, "sweep", failures)
    rows = []
    for n, f in zip(sizes, fits):
        if f is None:
            continue
        mle, post, diag = f.mle, f.posterior["beta"], f.diagnostics
        for j, label in enumerate(PARAMS):
            est, se = float(mle.params["beta"][j]), float(mle.se["beta"][j])
            if mle.status == "does_not_exist":
                est = np.nan  # where the optimiser stopped on its way out: not an estimate
            lo, hi = post["lo"][j], post["hi"][j]
            lap = f.laplace["beta"] if f.laplace is not None else None
            rows.append({"N": n, "parameter": label, "MLE status": mle.status, "MLE": est, "SE": se,
                         "Wald lo": est - 1.96 * se, "Wald hi": est + 1.96 * se,
                         "Laplace mean": lap["mean"][j] if lap else np.nan,
                         "Laplace lo": lap["lo"][j] if lap else np.nan,
                         "Laplace hi": lap["hi"][j] if lap else np.nan,
                         "post mean": post["mean"][j], "post sd": post["sd"][j],
                         "ETI lo": lo, "ETI hi": hi,
                         "width ratio": (hi - lo) / (3.92 * se) if np.isfinite(se) else np.nan,
                         "divergences": diag.divergences, "max R-hat": diag.r_hat_max,
                         "min ESS": diag.ess_bulk_min})
    table = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, label in zip(axes, PARAMS):
        t = table[table["parameter"] == label]
        ok = t["MLE status"] == "ok"
        ax.errorbar(t["N"][ok] * 0.9, t["MLE"][ok], yerr=[t["MLE"][ok] - t["Wald lo"][ok],
                    t["Wald hi"][ok] - t["MLE"][ok]], fmt="o", color=MLE_COLOR, capsize=3,
                    label="MLE ± 1.96 SE (Wald)")
        lap = t["Laplace mean"].notna()
        ax.errorbar(t["N"][lap], t["Laplace mean"][lap],
                    yerr=[t["Laplace mean"][lap] - t["Laplace lo"][lap],
                          t["Laplace hi"][lap] - t["Laplace mean"][lap]], fmt="D",
                    color=LAPLACE_COLOR, capsize=3, label="Laplace (MAP, curvature), 95%")
        ax.errorbar(t["N"] * 1.1, t["post mean"], yerr=[t["post mean"] - t["ETI lo"],
                    t["ETI hi"] - t["post mean"]], fmt="s", color=POST_COLOR, capsize=3,
                    label="posterior (NUTS) mean, 95% ETI")
        for n in t["N"][~ok]:
            ax.axvline(n, color=MLE_COLOR, ls=":", lw=1)
        ax.set(xscale="log", xlabel="N (households)", title=label)
        lo, hi = np.nanquantile(np.r_[t["ETI lo"], t["ETI hi"]], [0, 1])
        ax.set_ylim(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo))
    axes[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    report.figure(fig, "MLE with its Wald interval, the Laplace approximation (the same "
                  "prior as NUTS: MAP and curvature) and the NUTS posterior at each N, side by "
                  "side (shifted left/right for legibility). Dotted lines: N where the MLE does "
                  "not exist or its information is singular.")
    report.metrics["sweep"] = table.to_dict(orient="records")
    report.table(sweep_display(table), digits=3,
                 caption="Data-size sweep: the first N households of one random order.")
    gaps = sweep_gaps(table)
    report.metrics["sweep_gaps"] = gaps.reset_index().to_dict(orient="records")
    report.table(gaps, digits=3, caption="Distance from the posterior mean, in posterior sds, "
                 "largest over the two coefficients: |MLE - posterior mean| / posterior sd and "
                 "|Laplace mean - posterior mean| / posterior sd; beside them the Monte-Carlo "
                 "error of the posterior mean, 1/sqrt(min bulk ESS) sd, below which a gap is "
                 "noise.")
    report.text(sweep_sentence(gaps), kind="note")


SWEEP_COLUMNS = {  # (group, column) -> column of the sweep rows (metrics.json)
    ("MLE", "status"): "MLE status", ("MLE", "estimate"): "MLE", ("MLE", "SE"): "SE",
    ("MLE", "2.5%"): "Wald lo", ("MLE", "97.5%"): "Wald hi",
    ("Laplace", "mean"): "Laplace mean", ("Laplace", "2.5%"): "Laplace lo",
    ("Laplace", "97.5%"): "Laplace hi", ("NUTS posterior", "mean"): "post mean",
    ("NUTS posterior", "sd"): "post sd", ("NUTS posterior", "2.5%"): "ETI lo",
    ("NUTS posterior", "97.5%"): "ETI hi", ("NUTS posterior", "width ratio"): "width ratio",
    ("NUTS posterior", "diverg."): "divergences", ("NUTS posterior", "R-hat"): "max R-hat",
    ("NUTS posterior", "min ESS"): "min ESS"}


def sweep_display(table: pd.DataFrame) -> pd.DataFrame:
    """The sweep rows under grouped headers MLE | Laplace | NUTS posterior (narrower)."""
    return grouped(table.set_index(["N", "parameter"]), SWEEP_COLUMNS)


def sweep_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Per N: the largest |MLE - posterior mean| and |Laplace mean - posterior mean| over the
    parameters, in posterior sds (NaN where that estimate does not exist)."""
    t = table.assign(mle_gap=(table["MLE"] - table["post mean"]).abs() / table["post sd"],
                     laplace_gap=(table["Laplace mean"] - table["post mean"]).abs()
                     / table["post sd"])
    t.loc[t["MLE status"] != "ok", "mle_gap"] = np.nan
    t["noise"] = 1 / np.sqrt(t["min ESS"])
    out = t.groupby("N")[["mle_gap", "laplace_gap", "noise"]].max(min_count=1)
    return out.rename(columns={"mle_gap": "MLE gap (post sd)",
                               "laplace_gap": "Laplace gap (post sd)",
                               "noise": "MC error of the posterior mean (post sd)"})


def sweep_sentence(gaps: pd.DataFrame) -> str:
    """What the gaps table says, in words, computed from it (smallest and largest N)."""
    small, large = gaps.index.min(), gaps.index.max()
    m0, l0, _ = gaps.loc[small]
    m1, l1, noise = gaps.loc[large]
    if not np.isfinite(m0):
        first = (f"At N = {small} the MLE does not exist; the Laplace mean is {l0:.2f} "
                 "posterior sd from the posterior's")
    elif l0 < m0 / 2:
        first = (f"At N = {small} the MLE is {m0:.2f} posterior sd from the posterior mean and "
                 f"the Laplace approximation {l0:.2f}: a normal with the prior explains most "
                 "of the gap, so there it is the prior's pull")
    else:
        first = (f"At N = {small} the MLE is {m0:.2f} posterior sd from the posterior mean and "
                 f"the Laplace approximation {l0:.2f}: the prior explains less than half of the "
                 "gap, the rest is the likelihood's non-normal shape")
    return (f"{first}. At N = {large} they are {m1:.2f} and {l1:.2f} posterior sd apart "
            f"(the posterior mean's own Monte-Carlo error is about {noise:.2f} sd): "
            + ("all three agree as the data grow (Bernstein-von Mises)."
               if max(m1, l1) < max(0.25, 3 * noise) else
               "they have not all met even at the full data."))


def _failed(report, what, failures):
    if failures:
        report.alert(f"{what}: {len(failures)} chunk(s) of fits failed twice and are missing: "
                     + format_failures(failures))


def coverage(report, s, progress, X, y, model, truth, pool):
    sizes = [20, 50, 200] if not s.quick else [20, 100]
    sims = 100 if not s.quick else 20
    rng = np.random.default_rng(s.seed + 1)
    Xv = X.to_numpy()
    data, seeds, size_of = [], [], []
    for n in sizes:
        for k in range(sims):
            idx = rng.integers(0, len(Xv), size=n)
            Xs = Xv[idx]
            ys = rng.binomial(1, special.expit(truth["intercept"] + Xs @ truth["beta"]))
            data.append({"X": Xs, "y": ys})
            seeds.append(s.seed + 10_000 * n + k)
            size_of.append(n)
    progress(f"coverage: N = {', '.join(map(str, sizes))}, {sims} simulated data sets each "
             f"({len(data)} fits)")
    fits, failures = fit_many(model, data, seeds, _plan(s), **pool)
    _failed(report, "coverage", failures)
    size_of = np.array(size_of)
    tables = []
    for n in sizes:
        t = interval_coverage([f for f, m in zip(fits, size_of) if m == n],
                              {"beta": truth["beta"]}, {"beta": PARAMS})
        tables.append(t.assign(N=n))
    table = pd.concat(tables).set_index(["N", "parameter", "interval"])
    report.metrics["coverage"] = table.reset_index().to_dict(orient="records")
    report.table(table, digits=3, caption="Frequentist coverage of nominal 95% intervals, "
                 "measured by simulation from the full-data MLE (households resampled from the "
                 "survey). A data set whose MLE does not exist or has singular information counts "
                 "as a miss for the Wald interval (one without a Laplace approximation, for the "
                 "Laplace interval); a fit whose posterior did not converge (R-hat > "
                 "1.01 or a divergence) is dropped and counted, not scored.")
    dropped = table.groupby(level="N")["dropped (not converged)"].max()
    report.text("Fits dropped because their posterior did not converge: " + ", ".join(
        f"{int(d)} of {int(d) + int(table.loc[n]['simulations'].max())} at N = {n}"
        for n, d in dropped.items()) + ".", kind="note" if not dropped.any() else "warn")
    lo = 0.95 - 2 * np.sqrt(0.95 * 0.05 / sims)
    bad = table[table["coverage"] < lo]
    report.text("Intervals below 95% by more than 2 Monte-Carlo standard errors: "
                + ("; ".join(f"{i[2]} for {i[1]} at N = {i[0]} ({r.coverage:.2f})"
                             for i, r in bad.iterrows()) if len(bad) else "none."), kind="note")


def separation(report, s, progress, diags, posteriors):
    progress("separation: setosa vs versicolor")
    X, y = datasets.iris(("sepal_length", "sepal_width"))
    keep = y.isin(["setosa", "versicolor"])
    X, yb = X[keep].reset_index(drop=True), (y[keep] == "versicolor").astype(int).reset_index(drop=True)
    model = logistic.build(X, yb)
    section = model_section(
        report, SectionSpec(
            "Perfect separation: iris setosa vs versicolor by sepal size",
            math="y_i ~ Bernoulli(logit⁻¹(α + x_iᵀβ)),  α = α_c - x̄ᵀβ\n"
                 "α_c ~ Normal(0, 2.5),  β_j ~ Normal(0, 2.5 / s_xj)",
            data_note="Iris, the 100 setosa and versicolor flowers; sepal length and width separate "
                      "the two species perfectly, so the likelihood keeps rising as the coefficients "
                      "grow: there is no MLE. The weakly-informative prior keeps the posterior proper.",
            ppc=None,
            seed_offset=7,
            var_names=("intercept", "beta"),
        ), model, s)
    mle, idata, diag = section.mle, section.idata, section.diagnostics
    sd = idata["posterior"]["beta"].std(("chain", "draw")).values
    report.text(f"The optimiser stopped at coefficients {np.round(mle.params['beta'], 1).tolist()} "
                f"(status: {mle.status}); the posterior sds are {np.round(sd, 2).tolist()}: "
                "finite, because the prior, not the data, bounds how steep the boundary can be.",
                kind="note")
    report.text(separation_laplace_sentence(section, model), kind="note")
    report.figure(separation_figure(X, yb, section), "The separated data with decision "
                  "boundaries (where P(versicolor) = 1/2): 60 posterior draws (green), the "
                  "Laplace approximation's mode (purple, dashed) and where the MLE's optimiser "
                  "stopped (orange; there is no MLE: any line in the gap separates perfectly, "
                  "and the likelihood keeps rising as the boundary gets steeper). The posterior "
                  "keeps every separating line the prior finds plausible, so its spread is the "
                  "honest uncertainty about where the boundary lies.")
    diags.append(("separation", diag))
    posteriors["posterior_separation"] = idata
    return X, yb


def separation_figure(X, y, section):
    """Data and decision boundaries x2 = -(a + b1 x1) / b2 of posterior draws, Laplace and MLE."""
    post = section.idata["posterior"]
    a = post["intercept"].values.ravel()
    b = post["beta"].values.reshape(-1, 2)
    x1 = np.linspace(X.iloc[:, 0].min() - 0.3, X.iloc[:, 0].max() + 0.3, 50)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for k in np.random.default_rng(0).choice(len(a), size=min(60, len(a)), replace=False):
        ax.plot(x1, -(a[k] + b[k, 0] * x1) / b[k, 1], color=POST_COLOR, alpha=0.25, lw=1)
    ax.plot([], [], color=POST_COLOR, label="posterior draws")
    if section.laplace is not None:
        la, lb = float(section.laplace.mode["intercept"]), np.ravel(section.laplace.mode["beta"])
        ax.plot(x1, -(la + lb[0] * x1) / lb[1], color=LAPLACE_COLOR, ls="--", lw=2,
                label="Laplace (MAP)")
    ma, mb = float(section.mle.params["intercept"]), np.ravel(section.mle.params["beta"])
    ax.plot(x1, -(ma + mb[0] * x1) / mb[1], color=MLE_COLOR, lw=2,
            label=f"MLE optimiser's stop ({section.mle.status})")
    for value, marker, name in ((0, "o", "setosa"), (1, "^", "versicolor")):
        keep = np.asarray(y) == value
        ax.scatter(X.iloc[keep, 0], X.iloc[keep, 1], marker=marker, s=22, color="#444" if value
                   else "white", edgecolor="#444", label=name, zorder=3)
    ax.set(xlabel=X.columns[0], ylabel=X.columns[1],
           ylim=(X.iloc[:, 1].min() - 0.3, X.iloc[:, 1].max() + 0.3), xlim=(x1[0], x1[-1]))
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    return fig


def separation_laplace_sentence(section, model) -> str:
    """The Laplace approximation on separated data, in words: with the prior it exists (a
    finite MAP and curvature) while its flat-prior version, the MLE with Wald SEs, does not."""
    from models.inference import fit_laplace

    try:
        fit_laplace(model, prior=False, draws=10, log_densities=False)
        flat = "the flat-prior Laplace approximation (the MLE with its Wald SEs) was found"
    except ValueError as exc:
        flat = ("the flat-prior Laplace approximation (the MLE with its Wald SEs) does not "
                f"exist: {exc}")
    if section.laplace is None:
        return f"No Laplace approximation with the prior either: {section.laplace_error}; {flat}."
    lap, post = section.laplace, section.idata["posterior"]["beta"]
    gap = np.abs(np.ravel(lap.mode["beta"]) - np.ravel(post.mean(("chain", "draw")).values))
    return (f"With the prior, the Laplace approximation exists: the MAP is beta = "
            f"{np.round(np.ravel(lap.mode['beta']), 2).tolist()} with sds "
            f"{np.round(np.ravel(lap.sd['beta']), 2).tolist()} (finite: the prior's curvature "
            f"bounds the steepness), whereas {flat}. The MAP is up to "
            f"{float(np.max(gap / np.ravel(post.std(('chain', 'draw')).values))):.2f} posterior "
            "sd from the NUTS mean: on separated data the posterior is shaped by the prior on one "
            "side and a flat likelihood on the other, so its mode and its mean part.")


def main(argv=None) -> int:
    p = parser(NAME, __doc__)
    # in this process on 2 cores: 167 s wall and 216 CPU s vs 187 s and 288 CPU s on 2 Dask
    # workers (each worker imports PyMC and compiles the model again; measured 2026-11-26)
    add_fanout(p, in_process_cores=2)
    args = p.parse_args(argv)
    s = settings(NAME, args)
    with fanout_client(args) as client:
        return _run(s, client)


def _run(s, client) -> int:
    X, y = datasets.wells()
    progress = Progress(NAME, 3)
    report = Report(NAME, "Small data: when the MLE and the posterior part ways")
    model = logistic.build(X, y)  # priors scaled on the full survey, fixed for every subset
    full = fit_mle(model, random_seed=s.seed)
    truth = {"intercept": float(full.params["intercept"]), "beta": np.asarray(full.params["beta"])}
    key = f"small_data-{uuid.uuid4().hex}"  # one compile per process for the sweep AND coverage
    n_workers = len(client.scheduler_info().get("workers", {})) if client is not None else 0
    where = (f"{n_workers} Dask worker(s) ({client.dashboard_link})" if client is not None
             else "this process")
    report.heading("Data-size sweep (arsenic wells, logistic regression)")
    report.text("One model is compiled once per process; each N swaps its data into the same "
                "compiled log-likelihood (MLE) and the same compiled NUTS sampler (nutpie). "
                f"The fits run on {where}. Priors: the package defaults, scaled once on the full "
                "survey.")
    start = time.perf_counter()
    pool = {"client": client, "key": key}  # one compile shared by the sweep and the coverage fits
    sweep(report, s, progress, X, y, model, pool)
    report.heading("Coverage by simulation")
    coverage(report, s, progress, X, y, model, truth, pool)
    seconds = time.perf_counter() - start
    report.text(f"Sweep and coverage fits: {seconds:.0f} s wall on {where}.", kind="note")
    report.metrics["fanout_seconds"] = seconds
    report.metrics["dask_workers"] = n_workers
    diags, posteriors = [], {}
    Xs, ys = separation(report, s, progress, diags, posteriors)
    return finish(NAME, report, s, diags, posteriors, s.seed, data_hash(X, y, Xs, ys))


if __name__ == "__main__":
    raise SystemExit(entry(main))
