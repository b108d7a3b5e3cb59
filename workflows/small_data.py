"""Small data: a data-size sweep of the wells logistic regression (MLE ± SE vs posterior
intervals converging, Bernstein-von Mises), the frequentist coverage of the Wald and the
credible interval measured by simulation, and perfect separation, where the MLE does not
exist and the posterior is still finite."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import special, stats

from models import datasets, logistic
from models.inference import CompiledSampler, diagnose, fit_mle, set_data
from models.report import Report, data_hash
from workflows._common import Progress, finish, model_section, parser, settings

NAME = "small_data"
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())
PARAMS = ["beta[dist100]", "beta[arsenic]"]


def _interval(idata, j):
    d = idata["posterior"]["beta"].values[..., j].ravel()
    lo, hi = np.quantile(d, [0.025, 0.975])
    return d.mean(), lo, hi


def sweep(report, s, progress, X, y, model, sampler):
    sizes = [10, 20, 50, 100, 200, 500, 1000, len(y)]
    if s.quick:
        sizes = [10, 50, 200, len(y)]
    order = np.random.default_rng(s.seed).permutation(len(y))
    rows = []
    for n in sizes:
        progress(f"sweep: N = {n}")
        idx = order[:n]
        data = {"X": X.to_numpy()[idx], "y": y.to_numpy()[idx]}
        set_data(model, **data)
        mle = fit_mle(model, random_seed=s.seed, warn=False)
        post = sampler.sample(s.draws, s.tune, s.chains, s.seed + n, **data)
        diag = diagnose(post)
        for j, label in enumerate(PARAMS):
            m, lo, hi = _interval(post, j)
            est, se = float(mle.params["beta"][j]), float(mle.se["beta"][j])
            rows.append({"N": n, "parameter": label, "MLE status": mle.status, "MLE": est, "SE": se,
                         "Wald lo": est - 1.96 * se, "Wald hi": est + 1.96 * se,
                         "post mean": m, "ETI lo": lo, "ETI hi": hi,
                         "width ratio": (hi - lo) / (3.92 * se) if np.isfinite(se) else np.nan,
                         "divergences": diag.divergences, "max R-hat": diag.r_hat_max})
    table = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, label in zip(axes, PARAMS):
        t = table[table["parameter"] == label]
        ok = t["MLE status"] == "ok"
        ax.errorbar(t["N"][ok] * 0.93, t["MLE"][ok], yerr=[t["MLE"][ok] - t["Wald lo"][ok],
                    t["Wald hi"][ok] - t["MLE"][ok]], fmt="o", color="#d95f02", capsize=3,
                    label="MLE ± 1.96 SE (Wald)")
        ax.errorbar(t["N"] * 1.07, t["post mean"], yerr=[t["post mean"] - t["ETI lo"],
                    t["ETI hi"] - t["post mean"]], fmt="s", color="#1b9e77", capsize=3,
                    label="posterior mean, 95% ETI")
        for n in t["N"][~ok]:
            ax.axvline(n, color="#d95f02", ls=":", lw=1)
        ax.set(xscale="log", xlabel="N (households)", title=label)
        lo, hi = np.nanquantile(np.r_[t["ETI lo"], t["ETI hi"]], [0, 1])
        ax.set_ylim(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo))
    axes[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    report.figure(fig, "As N grows the Wald interval and the credible interval converge "
                  "(Bernstein-von Mises); at small N they differ. Dotted lines: N where the MLE "
                  "does not exist or its information is singular.")
    report.metrics["sweep"] = table.to_dict(orient="records")
    report.table(table.set_index(["N", "parameter"]), digits=3,
                 caption="Data-size sweep: the first N households of one random order.")


def coverage(report, s, progress, X, y, model, sampler, truth):
    sizes = [20, 50, 200] if not s.quick else [20, 100]
    sims = 100 if not s.quick else 20
    rng = np.random.default_rng(s.seed + 1)
    Xv = X.to_numpy()
    rows = []
    for n in sizes:
        progress(f"coverage: N = {n}, {sims} simulated data sets")
        hits = {"wald": np.zeros(2), "bayes": np.zeros(2)}
        missing = 0
        for k in range(sims):
            idx = rng.integers(0, len(Xv), size=n)
            Xs = Xv[idx]
            ys = rng.binomial(1, special.expit(truth["intercept"] + Xs @ truth["beta"]))
            set_data(model, X=Xs, y=ys)
            mle = fit_mle(model, random_seed=s.seed, warn=False)
            post = sampler.sample(s.draws, s.tune, s.chains, s.seed + 10_000 * n + k, X=Xs, y=ys)
            for j in range(2):
                t = truth["beta"][j]
                if mle.status == "ok":
                    est, se = mle.params["beta"][j], mle.se["beta"][j]
                    hits["wald"][j] += abs(est - t) <= 1.96 * se
                _, lo, hi = _interval(post, j)
                hits["bayes"][j] += lo <= t <= hi
            missing += mle.status != "ok"
        for j, label in enumerate(PARAMS):
            for kind, name in (("wald", "Wald 95% (MLE)"), ("bayes", "95% credible (ETI)")):
                cov = hits[kind][j] / sims
                rows.append({"N": n, "parameter": label, "interval": name, "coverage": cov,
                             "MC standard error": np.sqrt(0.95 * 0.05 / sims),
                             "simulations": sims, "MLE failed (counted as miss)": missing})
    report.metrics["coverage"] = rows
    table = pd.DataFrame(rows).set_index(["N", "parameter", "interval"])
    report.table(table, digits=3, caption="Frequentist coverage of nominal 95% intervals, "
                 "measured by simulation from the full-data MLE (households resampled from the "
                 "survey). A data set whose MLE does not exist or has singular information counts "
                 "as a miss for the Wald interval.")
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
    mle, idata, diag, _ = model_section(
        report, "Perfect separation: iris setosa vs versicolor by sepal size", model, s,
        ppc=None, seed_offset=7, var_names=["intercept", "beta"],
        data_note="Iris, the 100 setosa and versicolor flowers; sepal length and width separate "
                  "the two species perfectly, so the likelihood keeps rising as the coefficients "
                  "grow: there is no MLE. The weakly-informative prior keeps the posterior proper.",
        math="y_i ~ Bernoulli(logit⁻¹(α + x_iᵀβ)),  α = α_c - x̄ᵀβ\n"
             "α_c ~ Normal(0, 2.5),  β_j ~ Normal(0, 2.5 / s_xj)")
    sd = idata["posterior"]["beta"].std(("chain", "draw")).values
    report.text(f"The optimiser stopped at coefficients {np.round(mle.params['beta'], 1).tolist()} "
                f"(status: {mle.status}); the posterior sds are {np.round(sd, 2).tolist()}: "
                "finite, because the prior, not the data, bounds how steep the boundary can be.",
                kind="note")
    diags.append(("separation", diag))
    posteriors["posterior_separation"] = idata
    return X, yb


def main(argv=None) -> int:
    args = parser(NAME, __doc__).parse_args(argv)
    s = settings(NAME, args)
    X, y = datasets.wells()
    n_steps = (4 if s.quick else 8) + (2 if s.quick else 3) + 3
    progress = Progress(NAME, n_steps)
    report = Report(NAME, "Small data: when the MLE and the posterior part ways")
    model = logistic.build(X, y)  # priors scaled on the full survey, fixed for every subset
    full = fit_mle(model, random_seed=s.seed)
    truth = {"intercept": float(full.params["intercept"]), "beta": np.asarray(full.params["beta"])}
    progress("compiling the sampler once for all sweeps and simulations")
    sampler = CompiledSampler(model)
    report.heading("Data-size sweep (arsenic wells, logistic regression)")
    report.text("One model is compiled once; each N swaps its data into the same compiled "
                "log-likelihood (MLE) and the same compiled NUTS sampler (nutpie). Priors: the "
                "package defaults, scaled once on the full survey.")
    sweep(report, s, progress, X, y, model, sampler)
    report.heading("Coverage by simulation")
    coverage(report, s, progress, X, y, model, sampler, truth)
    diags, posteriors = [], {}
    Xs, ys = separation(report, s, progress, diags, posteriors)
    return finish(NAME, report, s, diags, posteriors, s.seed, data_hash(X, y, Xs, ys))


if __name__ == "__main__":
    raise SystemExit(main())
