"""Regression: linear (kidiq), logistic (arsenic wells), softmax (ANES 1996 party id) and
Poisson (warp breaks): MLE vs posterior, held-out log score of the plug-in MLE vs the posterior
predictive (nats and bits per observation), and calibration for the classifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.evaluation import scores as calibration
from models.base import datasets
from models.families import linear, logistic, poisson, softmax
from models.inference import predictive_class_probs, predictive_log_score
from workflows.report import Report, data_hash
from models.base.splits import random_split
from models.base.checks import DataError, as_labels
from workflows.options import parser, settings
from workflows.running import entry, finish, Progress
from workflows import plots
from workflows.sections import model_section, SectionSpec
from workflows.data_input import check_table, load_csv

NAME = "regression"
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())

FAMILIES = {
    "linear": dict(
        build=linear.build, data=datasets.kidiq, ppc="continuous",
        note="kidiq (Gelman & Hill 2007): child's test score on mother's high-school "
             "completion (0/1) and IQ; 434 children.",
        math="y_i ~ Normal(α + x_iᵀβ, σ²),  α = α_c - x̄ᵀβ  (α_c: intercept at the predictor means)\n"
             "α_c ~ Normal(ȳ, 2.5 s_y),  β_j ~ Normal(0, 2.5 s_y / s_xj),  σ ~ Exponential(1 / s_y)"),
    "logistic": dict(
        build=logistic.build, data=datasets.wells, ppc="binary",
        note="Arsenic wells (Bangladesh; Gelman & Hill 2007): did a household switch to a "
             "safe well, on distance to it (100 m) and its own arsenic level; 3020 households.",
        math="y_i ~ Bernoulli(logit⁻¹(α + x_iᵀβ)),  α = α_c - x̄ᵀβ\n"
             "α_c ~ Normal(0, 2.5),  β_j ~ Normal(0, 2.5 / s_xj)"),
    "softmax": dict(
        build=softmax.build, data=datasets.anes96, ppc=None,
        note="ANES 1996: party identification (7 classes, 0 = strong Democrat ... 6 = strong "
             "Republican; class 0 is the reference) on log population, left-right self-placement, "
             "age, education and income; 944 respondents (statsmodels' MNLogit example).",
        math="P(y_i = k) = softmax_k(η_i),  η_i0 = 0,  η_ik = α_k + x_iᵀβ_k (k ≥ 1)\n"
             "α_k = α_ck - x̄ᵀβ_k,  α_ck ~ Normal(0, 2.5),  β_jk ~ Normal(0, 2.5 / s_xj)"),
    "poisson": dict(
        build=poisson.build, data=datasets.warpbreaks, ppc="count",
        note="Warp breaks (Tippett 1950): breaks per loom on wool type (B vs A) and tension "
             "(M, H vs L); 54 looms.",
        math="y_i ~ Poisson(exp(α + x_iᵀβ)),  α = α_c - x̄ᵀβ\n"
             "α_c ~ Normal(ln(ȳ + 0.1), 2.5),  β_j ~ Normal(0, 2.5 / s_xj)"),
}


def run_family(report, family, X, y, s, progress, offset, source_note):
    spec = FAMILIES[family]
    train, test = random_split(len(y), s.seed + offset)
    Xtr, ytr, Xte, yte = X.iloc[train], y.iloc[train], X.iloc[test], y.iloc[test]
    classes = None
    if family == "softmax":
        codes, classes = as_labels(ytr, name=f"{s.target or 'y'} (training split)")
        unseen = sorted(set(yte) - set(classes), key=str)
        if unseen:
            raise DataError(f"{s.target or 'y'}: class(es) {unseen} occur only in the test split")
    model = spec["build"](Xtr, ytr)
    section = model_section(
        report, SectionSpec(
            f"{family.capitalize()} regression",
            math=spec["math"],
            data_note=f"{source_note} Training split: {len(train)} rows; held-out test split: "
                      f"{len(test)} rows (random, seed {s.seed + offset}).",
            ppc=spec["ppc"],
            seed_offset=offset,
        ), model, s, progress=progress)
    mle, idata, diag, laplace = section.mle, section.idata, section.diagnostics, section.laplace
    if family == "softmax":
        report.figure(plots.coefficient_grid(section.road, "beta"),
                      "Softmax coefficients as a predictor x class grid: one panel per predictor "
                      f"(its own scale), classes along x (class {classes[0]} is the reference, "
                      "its coefficients fixed at 0); in each class the MLE's Wald 95% interval "
                      "(orange), the Laplace interval (purple) and the posterior's 95% ETI "
                      "(green).")
    if classes is not None:
        lookup = {c: i for i, c in enumerate(classes)}
        y_test = np.array([lookup[v] for v in yte])
    else:
        y_test = yte.to_numpy()
    progress(f"held-out scores ({len(test):,} test rows): {family}")
    score = predictive_log_score(model, mle, idata, X=Xte.to_numpy(dtype=float), y=y_test)
    if laplace is not None:  # the same score with the Laplace draws as the posterior
        lap = predictive_log_score(model, mle, laplace.idata, X=Xte.to_numpy(dtype=float),
                                   y=y_test)
        score.loc["laplace_predictive"] = lap.loc["posterior_predictive"]
    report.table(score, caption="Held-out log score (higher is better): plug-in MLE predictive "
                 "p(y | θ̂) vs posterior predictive ∫ p(y | θ) p(θ | data) dθ"
                 + (" and the same integral over the Laplace approximation (4000 draws)"
                    if laplace is not None else "") + ".", digits=5)
    section = report.section_record(f"{family.capitalize()} regression")
    section["predictive"] = score
    section["split"] = {"train": len(train), "test": len(test), "seed": s.seed + offset}
    report.text(gain_sentence(score), kind="note")
    if family in ("logistic", "softmax"):
        k = 2 if family == "logistic" else len(classes)
        plug, post = predictive_class_probs(model, mle, idata, Xte.to_numpy(dtype=float), k)
        rows = {}
        for label, p in (("mle_plugin", plug), ("posterior_predictive", post)):
            if k == 2:
                rows[label] = {"accuracy": np.mean((p[:, 1] > 0.5) == y_test),
                               "brier": calibration.brier_score(y_test, p[:, 1]),
                               "ece (10 bins)": calibration.expected_calibration_error(y_test, p[:, 1])}
            else:
                rows[label] = {"accuracy": np.mean(p.argmax(1) == y_test),
                               "brier (multiclass)": calibration.multiclass_brier(y_test, p),
                               "top-label ece (10 bins)": calibration.top_label_ece(y_test, p)}
        report.table(pd.DataFrame(rows).T, caption="Held-out calibration and accuracy.")
        section["calibration"] = rows
        if k == 2:
            report.table(calibration.reliability_table(y_test, post[:, 1]),
                         caption="Reliability diagram (posterior predictive, held-out): observed "
                                 "frequency vs mean predicted probability per bin.")
    return diag, idata, (Xtr, ytr)


def gain_sentence(score) -> str:
    """The held-out gains over the plug-in MLE in words, with their paired SEs."""
    parts = []
    for row, name in (("posterior_predictive", "posterior predictive"),
                      ("laplace_predictive", "Laplace predictive")):
        if row not in score.index:
            continue
        r = score.loc[row]
        z = r.gain_vs_plugin_nats / r.gain_se_nats if r.gain_se_nats > 0 else np.nan
        parts.append(f"{name} minus plug-in MLE: {r.gain_vs_plugin_nats:+.3g} nats "
                     f"(SE {r.gain_se_nats:.2g}) = {r.gain_vs_plugin_bits:+.3g} bits "
                     f"(SE {r.gain_se_bits:.2g}) per held-out observation"
                     + (" (within 2 SE of no difference)" if abs(z) < 2 else ""))
    return "Held-out log score, paired over the same test points: " + "; ".join(parts) + "."


def main(argv=None) -> int:
    p = parser(NAME, __doc__, takes_data=True)
    p.add_argument("--family", choices=sorted(FAMILIES), default=None,
                   help="with --data: the regression family to fit (default linear); without "
                        "--data: run only this family on its bundled data")
    args = p.parse_args(argv)
    # nutpie on PyTensor's cached C functions for the bundled data sets: the same draws as
    # numba's here, 65 s against 90 s for this workflow (warm caches, 2026-11-26), most of it
    # numba's per-model compile. A user's --data may be large, where the gradient dominates
    # and numba's chains on every core win: numba stays the default there.
    s = settings(NAME, args, {"backend": "c"} if args.data is None else None)
    if s.data is not None:
        if not s.target:
            raise SystemExit("error: --data needs --target (the outcome column)")
        family = args.family or "linear"
        frame = load_csv(s.data)
        if s.target not in frame.columns:
            raise SystemExit(f"error: --data {s.data}: --target column {s.target!r} not found; "
                             f"the file has {list(frame.columns)}")
        predictors = s.predictors or [c for c in frame.columns if c != s.target]
        missing = [c for c in predictors if c not in frame.columns]
        if missing:
            raise SystemExit(f"error: --data {s.data}: column(s) {missing} not found; the file "
                             f"has {list(frame.columns)}")
        if not predictors:
            raise SystemExit(f"error: --data {s.data}: no predictor columns besides the target")
        # every row, training and test alike, before the split and before anything compiles
        X, y = check_table(s.data, frame, s.target, predictors, family)
        jobs = [(family, X, y, f"{s.data.name}: {s.target} on {list(X.columns)}.")]
    else:
        if s.target or s.predictors:
            raise SystemExit("error: --target/--predictors name columns of --data; give --data "
                             "too (without it the bundled data sets are used)")
        fams = [args.family] if args.family else list(FAMILIES)
        jobs = [(f, *FAMILIES[f]["data"](), FAMILIES[f]["note"]) for f in fams]
    # per family: MLE, NUTS, posterior predictive (if drawn), Laplace + prior sensitivity,
    # held-out scores
    progress = Progress(NAME, sum(4 + bool(FAMILIES[job[0]]["ppc"]) for job in jobs))
    report = Report(NAME, "Regression: MLE vs posterior, held-out log score, calibration")
    diags, posteriors, used = [], {}, []
    for offset, (family, X, y, note) in enumerate(jobs):
        try:
            diag, idata, data = run_family(report, family, X, y, s, progress, offset, note)
        except DataError as exc:
            raise SystemExit(f"error: {exc}") from None
        diags.append((family, diag))
        posteriors[f"posterior_{family}"] = idata
        used += list(data)
    return finish(NAME, report, s, diags, posteriors, s.seed, data_hash(*used))


if __name__ == "__main__":
    raise SystemExit(entry(main))
