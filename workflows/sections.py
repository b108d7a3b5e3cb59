"""One MLE-vs-posterior section of a report: :func:`fit_section` computes (MLE, NUTS,
diagnostics, comparison, posterior predictive, model-fit checks) and returns a
:class:`SectionFit`; :func:`render_section` turns it into tables, figures, sentences and a
verdict. Workflows stay thin: load data -> build -> ``model_section`` -> ``finish``."""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm

from models.base import stopwatch
from models.inference.pointwise import posterior_predictive_rows, pointwise_view, subsampled
from models.inference import (compare, compare_laplace, compare_loo, diagnose, fit_laplace,
                              fit_mle, posterior_summary, prior_sensitivity, rank_test,
                              sensitivity_data)
from workflows import plots
from workflows.options import Settings
from workflows.report import Report, grouped
from workflows.running import sentence


@dataclass(frozen=True)
class SectionSpec:
    """One MLE-vs-posterior section of a report: what it is called and says, and how to fit.

    ``ppc``: the posterior predictive check to draw ("continuous", "count", "binary",
    "multivariate" (vector observations: marginal PPC only, no LOO-PIT) or None);
    ``seed_offset``: added to the workflow's seed for this model; ``var_names``: the variables
    to plot (default all); ``target_accept``: NUTS's, if not the sampler's default;
    ``expect_failure``: the section shows a failure on purpose (the centered funnel);
    ``table_vars``: the variables whose rows the comparison tables show (e.g. mu and cov, not
    the packed Cholesky factor; every row stays in metrics.json)."""

    title: str
    math: str
    data_note: str
    ppc: str | None = "continuous"
    seed_offset: int = 0
    var_names: tuple[str, ...] | None = None
    target_accept: float | None = None
    expect_failure: bool = False
    table_vars: tuple[str, ...] | None = None  # rows of the MLE-vs-posterior tables (default all)


@dataclass
class SectionFit:
    """Everything :func:`fit_section` computed for one model, ready to render."""

    spec: SectionSpec
    mle: object  # MLEResult
    idata: object  # xarray.DataTree, with posterior_predictive when spec.ppc
    diagnostics: object  # Diagnostics
    comparison: pd.DataFrame
    summary: pd.DataFrame
    plotted: list[str]  # variables in the rank plot and the rank test (at most 12 panels)
    ranks: pd.Series  # rank-test p-value per scalar of ``plotted``
    fit: object  # FitCheck, or None when it could not be computed
    fit_error: str = ""
    laplace: object = None  # LaplaceFit with the model's prior, or None (see laplace_error)
    laplace_error: str = ""
    sensitivity: pd.DataFrame | None = None  # power-scaling prior/likelihood sensitivity
    sensitivity_error: str = ""
    sensitivity_data: object = None  # the DataTree psense read (for its plot)
    loo: pd.DataFrame | None = None  # PSIS-LOO of NUTS and of the Laplace approximation
    loo_error: str = ""
    road: pd.DataFrame | None = None  # comparison with the Laplace columns (compare_laplace)

    @property
    def shown(self) -> tuple[list[str], str]:
        """The comparison rows the page's tables show and the sentence naming the rows they
        leave out (:func:`display_rows`); every sentence and figure about them reads these."""
        return display_rows(self.comparison, self.spec.table_vars)

    def __post_init__(self):
        if self.road is None:  # computed once: compare_laplace summarises 4000 draws
            self.road = (compare_laplace(self.comparison, self.laplace)
                         if self.laplace is not None else self.comparison)


def fit_section(model: pm.Model, spec: SectionSpec, s: Settings, mle=None,
                progress=None) -> SectionFit:
    """Fit ``model`` for one section (MLE unless given, NUTS, diagnostics, comparison,
    posterior predictive, model-fit checks). No report, no figures: testable alone."""
    from models.inference.fitcheck import check_fit

    step = progress or (lambda what: None)
    step(f"MLE: {spec.title}")
    mle = mle or fit_mle(model, random_seed=s.seed, warn=False)
    step(f"NUTS ({s.sampler}, {s.chains}x{s.draws}): {spec.title}")
    options = {} if spec.target_accept is None else {"target_accept": spec.target_accept}
    idata = s.sample(model, seed_offset=spec.seed_offset, **options)
    plotted, panels = [], 0
    for n in spec.var_names or list(idata["posterior"].data_vars):
        size = idata["posterior"][n].size // (s.chains * s.draws)
        if panels + size <= 12:
            plotted.append(n)
            panels += size
    if spec.ppc:
        step(f"posterior predictive: {spec.title}")
        with stopwatch.stage("predictive draws"):
            if subsampled(idata) is None:
                pm.sample_posterior_predictive(idata, model=model, extend_inferencedata=True,
                                               random_seed=s.seed + spec.seed_offset,
                                               progressbar=False)
            else:  # the rows the pointwise log-likelihood holds (a large data set)
                idata["posterior_predictive"] = posterior_predictive_rows(
                    idata, model, idata["log_likelihood"]["obs_id"].values,
                    s.seed + spec.seed_offset)
    fit, fit_error = None, ""
    try:
        if spec.ppc != "multivariate":  # LOO-PIT is per scalar observation (said in the report)
            fit = check_fit(idata, spec.ppc if spec.ppc in ("continuous", "count", "binary")
                            else None)
    except Exception as exc:  # noqa: BLE001 - the report says so rather than hide it
        fit_error = str(exc)
    comparison = compare(mle, idata)
    laplace, laplace_error = None, ""
    step(f"Laplace approximation and prior sensitivity: {spec.title}")
    try:
        laplace = fit_laplace(model, prior=True, random_seed=s.seed + spec.seed_offset)
    except Exception as exc:  # noqa: BLE001 - the report says why there is none
        laplace_error = str(exc)
    sensitivity, sensitivity_error, tree = None, "", None
    names = [n for n in dict.fromkeys(label.split("[")[0] for label in comparison.index)
             if spec.var_names is None or n in spec.var_names]
    try:
        tree = sensitivity_data(idata, model, var_names=names)
        sensitivity = prior_sensitivity(tree)
    except Exception as exc:  # noqa: BLE001 - the report says why there is none
        sensitivity_error = str(exc)
    loo, loo_error = None, ""
    try:
        loo = compare_loo(idata, laplace, model)
    except Exception as exc:  # noqa: BLE001 - the report says why there is none
        loo_error = str(exc)
    return SectionFit(spec, mle, idata, diagnose(idata), comparison,
                      posterior_summary(idata, prob=0.95), plotted, rank_test(idata, plotted),
                      fit, fit_error, laplace, laplace_error, sensitivity, sensitivity_error,
                      tree, loo, loo_error)


def model_section(report: Report, spec: SectionSpec, model: pm.Model, s: Settings, *,
                  mle=None, progress=None) -> SectionFit:
    """Fit (:func:`fit_section`) and render (:func:`render_section`) one section."""
    report.heading(spec.title)
    fit = fit_section(model, spec, s, mle=mle, progress=progress)
    render_section(report, fit, s.quick)
    return fit


ROAD_COLUMNS = {  # (group, column) -> column of compare / compare_laplace
    ("MLE", "estimate"): "mle", ("MLE", "SE"): "se", ("MLE", "2.5%"): "wald_lb",
    ("MLE", "97.5%"): "wald_ub", ("Laplace", "mean"): "laplace_mean",
    ("Laplace", "sd"): "laplace_sd", ("Laplace", "2.5%"): "laplace_lb",
    ("Laplace", "97.5%"): "laplace_ub", ("NUTS posterior", "mean"): "post_mean",
    ("NUTS posterior", "sd"): "post_sd", ("NUTS posterior", "2.5%"): "eti_lb",
    ("NUTS posterior", "97.5%"): "eti_ub", ("", "shift_in_se"): "shift_in_se",
    ("", "width_ratio"): "width_ratio"}


def display_rows(table: pd.DataFrame, var_names=None) -> tuple[list[str], str]:
    """The rows a reader needs: the section's variables of interest (``var_names``, e.g. mu
    and cov, not the packed Cholesky factor), the lower triangle of a symmetric matrix
    (``cov[a, b]`` equal to ``cov[b, a]`` in every column), no constants (zero posterior sd
    and no SE). Returns the labels and a sentence naming what was left out (every row stays
    in metrics.json and summary.csv)."""
    keep, dropped = [], []
    labels = list(table.index)
    position = {lab: i for i, lab in enumerate(labels)}
    for lab in labels:
        name = lab.split("[")[0]
        if var_names is not None and name not in var_names:
            dropped.append(lab)
            continue
        row = table.loc[lab]
        if row["post_sd"] == 0 and not (row["se"] > 0):
            dropped.append(lab)
            continue
        inner = lab[len(name) + 1:-1].split(", ") if "[" in lab else []
        if len(inner) == 2 and inner[0] != inner[1]:
            mirror = f"{name}[{inner[1]}, {inner[0]}]"
            if mirror in position and position[mirror] < position[lab] and np.allclose(
                    table.loc[mirror].to_numpy(float), row.to_numpy(float), equal_nan=True):
                dropped.append(lab)
                continue
        keep.append(lab)
    if not dropped:
        return keep, ""
    names = ", ".join(dict.fromkeys(lab.split("[")[0] for lab in dropped))
    return keep, (f"{len(dropped)} of {len(labels)} rows not shown (of {names}: other "
                  "parametrisations, one triangle of a symmetric matrix, constants; all "
                  "are in metrics.json). ")


def road_table(road: pd.DataFrame) -> pd.DataFrame:
    """:func:`compare`'s table (with :func:`compare_laplace`'s columns when there are) under
    grouped headers MLE | Laplace | NUTS posterior, in the order of the road between them."""
    return grouped(road, {k: v for k, v in ROAD_COLUMNS.items() if v in road.columns})


def _mle_and_comparison(report: Report, f: SectionFit) -> None:
    mle, table, spec = f.mle, f.comparison, f.spec
    report.text(spec.data_note)
    report.math(spec.math)
    if mle.status != "ok" or mle.not_in_likelihood:
        report.text(f"MLE status: {mle.status}. {sentence(mle.message)}", kind="warn")
    report.text(f"MLE: log-likelihood {mle.loglik:.2f} nats, AIC {mle.aic:.2f}, BIC "
                f"{mle.bic:.2f}, N = {mle.n_obs}, k = {mle.n_params} (estimates and SEs in the "
                "first columns of the table below).")
    shown, left_out = f.shown
    report.table(road_table(f.road.loc[shown]), digits=3, caption=left_out + "From the MLE to the posterior: the MLE with its Wald 95% "
                 "interval" + (", the Laplace approximation (a normal at the posterior mode, "
                               "with the model's prior: mean, sd, 95% interval of its draws)"
                               if f.laplace is not None else "")
                 + " and the NUTS posterior with its 95% equal-tailed credible interval; "
                 "shift_in_se = (posterior mean - MLE) / SE; width_ratio = credible width / "
                 "Wald width")
    table = table.loc[shown]  # the sentences read the rows the table shows, as the "why" one does
    comparable = table[np.isfinite(table["shift_in_se"]) & np.isfinite(table["width_ratio"])]
    big = comparable[(comparable["shift_in_se"].abs() > 0.5)
                     | ((comparable["width_ratio"] - 1).abs() > 0.2)]
    if len(comparable) < len(table):
        missing = [lab for lab in table.index if lab not in comparable.index]
        outside = [lab for lab in missing if lab.split("[")[0] in mle.not_in_likelihood]
        other = [lab for lab in missing if lab not in outside]
        if outside:
            report.text(f"No MLE for {', '.join(outside)}: not in the likelihood (hyperparameters"
                        "); only " + ("the Laplace approximation and " if f.laplace is not None
                                      else "") + "the posterior are reported for them.",
                        kind="note")
        if other:
            report.text(f"No MLE comparison for {', '.join(other)}: the MLE or its standard "
                        f"error does not exist (MLE status: {mle.status}); only the posterior "
                        "is reported for them.", kind="warn")
    if len(big):
        big = big.reindex(big["shift_in_se"].abs().sort_values(ascending=False).index)
        report.text(
            f"Where they disagree ({len(big)} of {len(comparable)} parameters; |shift| > 0.5 SE "
            "or widths differ by more than 20%), largest shift first: " + "; ".join(
                f"{lab}: posterior mean {r.post_mean:.3g} vs MLE {r.mle:.3g} "
                f"({r.shift_in_se:+.2f} SE), interval width ratio {r.width_ratio:.2f}"
                for lab, r in big.head(5).iterrows())
            + (f"; and {len(big) - 5} more (the table above)" if len(big) > 5 else "") + ".",
            kind="note")
    elif len(comparable):
        report.text("MLE and posterior agree: every comparable posterior mean is within 0.5 SE "
                    "of the MLE and every credible interval within 20% of the Wald width.",
                    kind="note")


def _figures(report: Report, f: SectionFit) -> None:
    mle, idata, spec = f.mle, f.idata, f.spec
    names = [n for n in plots.identified(mle, idata)
             if spec.var_names is None or n in spec.var_names]
    if names:
        labels = plots.posterior_panels(mle, idata, names)
        shown = min(len(labels), 16)
        report.figure(plots.posterior_vs_mle(mle, idata, names, max_panels=16, laplace=f.laplace),
                      "Posterior (green histogram, dotted 95% ETI)"
                      + (", the Laplace approximation (purple outline)" if f.laplace else "")
                      + ", the MLE (orange line), its normal approximation N(MLE, SE², dashed) "
                      "and Wald 95% interval (orange band)"
                      + (f"; the first {shown} of {len(labels)} parameters, all of them in the "
                         "standardised plot and the tables" if shown < len(labels) else "") + ".")
    road = f.road
    if np.isfinite(road["mle"].astype(float)).any():
        fig, shown, total = plots.standardised(road)
        report.figure(fig, "Every estimator on one scale: (value - MLE) / SE, so the MLE's Wald "
                      "95% interval is [-1.96, 1.96] in every row whatever the parameter's "
                      "units; orange MLE, purple Laplace, green posterior (dot/diamond/square: "
                      "the mean)" + (f"; the {shown} of {total} parameters that moved most"
                                     if shown < total else "")
                      + (". Parameters without an MLE are not shown (no SE to scale by)"
                         if len(road) > total else "") + ".")
    n_vars = len(idata["posterior"].data_vars)
    report.figure(plots.rank(idata, f.plotted),
                  "Rank ECDF minus the uniform CDF, one line per chain, coloured as in its legend (ArviZ). Chains that "
                  "sample the same distribution stay close together near zero; lines that "
                  "part (one above, one below) are chains in different places. No band is "
                  "drawn: ArviZ prints its multi-chain test's p-value, which is less "
                  "sensitive than the R-hat in the diagnostics table, the check that decides"
                  + (f". Shown: {', '.join(f.plotted)} ({len(f.plotted)} of {n_vars} variables,"
                     " at most 12 panels); every variable's R-hat is in the posterior summary"
                     if len(f.plotted) < n_vars else "") + ".")
    report.figure(plots.energy(idata), "Energy plot (ArviZ): marginal energy vs energy "
                  "transition; similar widths = good exploration (E-BFMI).")
    if not spec.ppc:
        return
    view = pointwise_view(idata)  # the observed rows that the predictive draws are for
    n_all = subsampled(idata)
    if n_all is not None:
        n_sub = idata["log_likelihood"].sizes["obs_id"]
        report.text(f"Large data set: the pointwise checks below (predictive plots, LOO-PIT, "
                    f"Pareto k, PSIS-LOO) use a seeded random subsample of {n_sub:,} of the "
                    f"{n_all:,} training rows, so that memory stays draws x {n_sub:,} instead of "
                    f"draws x {n_all:,}; the posterior itself is fitted on every row, the LOO "
                    "totals are estimated for all rows (difference estimator, with its "
                    "subsampling SE) and the held-out scores use every test row.", kind="note")
    if spec.ppc == "count":
        report.figure(az.plot_ppc_rootogram(view), "Posterior predictive rootogram "
                      "(ArviZ): observed vs predicted frequency of each count.")
    elif spec.ppc == "binary":
        report.figure(az.plot_ppc_pava(view), "Calibration (PAV-adjusted reliability "
                      "diagram, ArviZ): the curve should follow the diagonal.")
    elif spec.ppc == "multivariate":
        obs = idata["observed_data"].to_dataset()
        inner = [d for n in obs.data_vars for d in obs[n].dims[1:]]
        report.figure(az.plot_ppc_dist(view, num_samples=50,
                                       cols=["__variable__", *dict.fromkeys(inner)],
                                       visuals={"predictive_dist": {"color": plots.POST_COLOR}},
                                       figure_kwargs={"layout": "constrained",
                                                      "figsize": (12, 3)}),
                      "Posterior predictive check, one panel per coordinate: the observed "
                      "marginal distribution (black) vs 50 replicated data sets (green; ArviZ). "
                      "Where the black curve leaves the green bundle, the model misses the "
                      "data's shape in that coordinate.")
        report.text("LOO-PIT and the model-fit checks are defined here for scalar observations; "
                    "this model's observations are vectors, so its fit is judged from the "
                    "marginal predictive checks above.", kind="note")
        return
    else:
        report.figure(az.plot_ppc_dist(view, num_samples=50,
                                       visuals={"predictive_dist": {"color": plots.POST_COLOR}}),
                      "Posterior predictive check: the observed data (black) vs 50 data sets "
                      "replicated from the posterior (green; ArviZ).")
    try:
        # ArviZ's default test ("pot_c"), not an envelope: LOO-PIT values are dependent,
        # for which ArviZ warns that a simultaneous envelope is not valid
        report.figure(az.plot_loo_pit(view),
                      "LOO-PIT ECDF minus the uniform CDF (ArviZ). No band is drawn: ArviZ's "
                      "pointwise-order test (pot_c) prints its p-value on the plot and marks "
                      "the points that drive a small one. The model-fit table reports the "
                      "same test computed by this project, which can differ slightly from "
                      "the plot's (ties of discrete outcomes are randomised separately).")
    except Exception as exc:  # noqa: BLE001 - report, do not hide, a failed LOO
        report.text(f"LOO-PIT could not be computed: {exc}", kind="warn")


WHY_CAPTION = (
    "Why MLE and posterior differ (the Laplace columns are in the table above: a normal at the "
    "posterior mode in the unconstrained space, draws mapped back). prior_share = (Laplace mean "
    "- MLE) / (posterior mean - MLE): the part of the shift a Gaussian with the prior explains "
    "(blank where the shift is under 0.1 SE). nuts_vs_laplace_sd = (posterior mean - Laplace "
    "mean) / posterior sd: how far the posterior is from its normal approximation (the "
    "likelihood's shape). prior/likelihood: power-scaling sensitivity (ArviZ psense; >= 0.05 "
    "is sensitive) and its diagnosis.")


def _why_they_differ(report: Report, f: SectionFit) -> pd.DataFrame | None:
    """The Laplace and prior-sensitivity table and what it says, per parameter, in words."""
    if f.laplace is None and f.sensitivity is None:
        if f.laplace_error or f.sensitivity_error:
            report.text("No Laplace approximation or prior sensitivity: "
                        + "; ".join(e for e in (f.laplace_error, f.sensitivity_error) if e),
                        kind="warn")
        return None
    table, road = f.comparison[["mle", "se", "post_mean", "post_sd", "shift_in_se"]], None
    if f.laplace is not None:
        road = f.road
        table = road[["shift_in_se", "laplace_mean", "laplace_sd", "prior_share",
                      "nuts_vs_laplace_sd"]]
    else:
        table = table[["shift_in_se"]]
        report.text(f"No Laplace approximation: {sentence(f.laplace_error)}", kind="note")
    if f.sensitivity is not None:
        table = table.join(f.sensitivity[["prior", "likelihood", "diagnosis"]], how="left")
    else:
        report.text(f"No prior sensitivity: {sentence(f.sensitivity_error)}", kind="note")
    full = table  # every row goes to metrics.json; the page and its sentences read the shown
    shown, left_out = f.shown
    table = table.loc[[lab for lab in table.index if lab in shown]]
    if road is not None:
        road = road.loc[table.index]
    report.table(table.drop(columns=["laplace_mean", "laplace_sd"], errors="ignore"),
                 caption=left_out + WHY_CAPTION, digits=3)
    sentences, conflict = [], False
    if f.laplace is not None:
        moved = table[table["shift_in_se"].abs() > 0.5]
        post_sd = f.comparison.loc[moved.index, "post_sd"]
        off, widths = moved["nuts_vs_laplace_sd"].abs(), moved["laplace_sd"] / post_sd
        poor = (off > 0.5) | ~widths.between(2 / 3, 1.5)
        prior = ~poor & (moved["prior_share"] >= 0.5)
        shape = ~poor & ~prior
        lines = []

        def names(mask):
            labels = list(moved.index[mask])
            return ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")

        if prior.any():
            s_ = moved["prior_share"][prior]
            lines.append(f"a normal approximation with the prior explains most of the shift "
                         f"({s_.min():.0%} to {s_.max():.0%}) for {names(prior)}: the prior's pull")
        if shape.any():
            lines.append(f"for {names(shape)} the prior explains less than half (NUTS up to "
                         f"{off[shape].max():.2f} posterior sd from the normal approximation): "
                         "the likelihood's shape")
        if poor.any():
            lines.append(f"for {names(poor)} the normal (Laplace) approximation is poor (its sd "
                         f"{widths[poor].min():.2f} to {widths[poor].max():.2f} times the "
                         f"posterior's, its mean up to {off[poor].max():.2f} sd away): the "
                         "posterior's shape (a skewed likelihood, a hierarchy's funnel) makes "
                         "the difference, not a Gaussian pull of the prior")
        if lines:
            sentences.append(f"Why they differ ({len(moved)} parameter(s) moved more than 0.5 "
                             "SE): " + "; ".join(lines) + ".")
        sentences += _no_mle_sentence(road)
    if f.sensitivity is not None:
        lines = []
        for kind in ("prior-data conflict", "prior-sensitive"):
            hit = [lab for lab in table.index if table.loc[lab, "diagnosis"] == kind]
            if hit:
                lines.append(f"{kind}: {', '.join(hit[:8])}"
                             + (f" and {len(hit) - 8} more" if len(hit) > 8 else ""))
                conflict = conflict or kind == "prior-data conflict"
        # rows outside the section's var_names get no power-scaling ('–'): say so, rather
        # than call every parameter of the table likelihood-dominated
        unchecked = [lab for lab in table.index if not isinstance(table.loc[lab, "diagnosis"], str)]
        checked = len(table) - len(unchecked)
        flagged = int(table["diagnosis"].isin(["prior-data conflict", "prior-sensitive"]).sum())
        parts = list(lines)
        if checked > flagged:  # some checked rows are likelihood-dominated
            if lines:
                parts.append("every other parameter " + ("" if not unchecked else
                             f"of the {checked} checked ") + "is likelihood-dominated")
            elif not unchecked:
                parts.append("every parameter is likelihood-dominated (prior sensitivity "
                             "below 0.05)")
            else:
                parts.append(("the one parameter checked is" if checked == 1 else
                              f"each of the {checked} parameters checked is")
                             + " likelihood-dominated (prior sensitivity below 0.05)")
        if unchecked:
            names = ", ".join(dict.fromkeys(lab.split("[")[0] for lab in unchecked))
            parts.append(f"the other {len(unchecked)} ({names}) "
                         + ("was" if len(unchecked) == 1 else "were")
                         + " not checked ('–' in the table)")
        sentences.append("Prior sensitivity (power-scaling): " + "; ".join(parts) + ".")
    if sentences:
        report.text(" ".join(sentences), kind="warn" if conflict else "note")
    return full


def _no_mle_sentence(road: pd.DataFrame) -> list[str]:
    """Parameters without an MLE (outside the likelihood, e.g. a hierarchy's mu and tau):
    only Laplace and NUTS can be compared; say where the normal approximation is poor."""
    free = road[~np.isfinite(road["mle"].astype(float))
                & np.isfinite(road["laplace_mean"].astype(float))]
    if not len(free):
        return []
    ratio = free["laplace_sd"] / free["post_sd"]
    poor = free[(free["nuts_vs_laplace_sd"].abs() > 0.5) | ~ratio.between(2 / 3, 1.5)]
    names = ", ".join(free.index)
    if not len(poor):
        return [f"{names} (no MLE: not in the likelihood): the Laplace approximation agrees "
                "with NUTS (means within 0.5 posterior sd, sds within a factor 1.5)."]
    return ["No MLE for " + names + " (not in the likelihood); the Laplace approximation "
            "there is poor: " + "; ".join(
                f"{lab}: Laplace mean {r.laplace_mean:.3g} (sd {r.laplace_sd:.3g}) vs posterior "
                f"{r.post_mean:.3g} (sd {r.post_sd:.3g}): means {abs(r.nuts_vs_laplace_sd):.2f} "
                f"posterior sd apart, Laplace sd {r.laplace_sd / r.post_sd:.2f} times the "
                "posterior's" for lab, r in poor.iterrows()) + " (poor: more than 0.5 sd apart "
            "or an sd ratio outside [0.67, 1.5])."]


# More than this share of high Pareto k makes PSIS-LOO unreliable (as the model-fit checks).
LOO_MAX_HIGH_K = 0.1


def _loo(report: Report, f: SectionFit) -> None:
    """PSIS-LOO of NUTS and of the Laplace approximation, with the paired difference."""
    if f.loo is None:
        if f.loo_error:
            report.text(f"No PSIS-LOO: {sentence(f.loo_error)}", kind="note")
        return
    report.table(f.loo, digits=4, caption="PSIS-LOO expected log predictive density (nats; "
                 "ArviZ loo; the Laplace row by loo_approximate_posterior, importance-corrected "
                 "from the normal to the posterior). share_k_high: share of observations with "
                 "Pareto k above ArviZ's good_k (LOO unreliable there). elpd_diff: Laplace "
                 "minus NUTS, with the standard error of the paired pointwise differences, "
                 "also in bits."
                 + (" Large data set: computed on the rows_used rows of a seeded random "
                    "subsample and estimated for all rows as ArviZ's loo_subsample does "
                    "(elpd_loo by the difference estimator around the log-likelihood at the "
                    "posterior mean, se including subsampling_se; p_loo and elpd_diff scaled "
                    "from the subsample, se_diff with its subsampling variance); "
                    "share_k_high is the subsample's." if "rows_used" in f.loo.columns else ""))
    high = f.loo["share_k_high"].astype(float)
    unreliable = high[high > LOO_MAX_HIGH_K]
    if len(unreliable):
        report.text("PSIS-LOO is unreliable for " + ", ".join(
            f"{name} ({share:.0%} of observations with high Pareto k)"
            for name, share in unreliable.items())
            + (": the normal approximation is too far from the posterior for importance "
               "sampling to correct it, so its elpd is not compared"
               if "Laplace" in unreliable.index else "")
            + "; exact LOO (refitting without each point) or K-fold would be needed.",
            kind="note")
    if "Laplace" in f.loo.index and not len(unreliable):
        r = f.loo.loc["Laplace"]
        # the loo package's FAQ (Sivula et al. 2022): below 4 nats a difference is small
        # whatever its SE (the SE itself is then poorly estimated), else compare with 2 SE
        small = abs(r.elpd_diff) < 4 or abs(r.elpd_diff) < 2 * r.se_diff
        report.text(
            f"PSIS-LOO: the Laplace approximation's elpd is {r.elpd_diff:+.2f} nats "
            f"(SE {r.se_diff:.2f}) from the posterior's: "
            + ("a small difference (under 4 nats or under 2 SE): no practical difference in "
               "predictive accuracy." if small else
               "over 4 nats and 2 SE: the normal approximation predicts held-out points "
               + ("worse." if r.elpd_diff < 0 else "better.")), kind="note")


def render_section(report: Report, f: SectionFit, quick: bool = False) -> None:
    """Tables, figures, sentences and the verdict of one fitted section (no fitting here);
    ``quick``: the run was a --quick smoke run (said beside a failed ESS check)."""
    mle, idata, diag, spec, title = f.mle, f.idata, f.diagnostics, f.spec, f.spec.title
    _mle_and_comparison(report, f)
    why = _why_they_differ(report, f)
    _psense_figure(report, f)
    _loo(report, f)
    report.diagnostics(diag, f"({title})")
    if not diag.passed:
        report.alert(f"{title}: convergence checks failed: {diag.failures()}."
                     + (" Expected for this model and shown on purpose." if spec.expect_failure
                        else " Treat its posterior numbers with caution" + (
                            " (a --quick run is too short for ESS >= 400)." if quick else ".")))
    if mle.status != "ok":
        report.alert(f"{title}: MLE status '{mle.status}': {mle.message}")
    summary = f.summary
    report.add_summary(title, summary, idata)
    report.table(summary, caption="Posterior summary: mean, sd, 95% ETI (xarray), "
                 "bulk/tail ESS, R-hat, MCSE (ArviZ), each row labelled from its variable's dims "
                 "and coords", csv="summary.csv")
    record = report.section_record(title)
    record.update({
        "mle": {"status": mle.status, "message": mle.message, "loglik": mle.loglik,
                "aic": mle.aic, "bic": mle.bic, "n_obs": mle.n_obs, "n_params": mle.n_params,
                "params": mle.params, "se": mle.se},
        "diagnostics": {**diag.to_frame()["value"].to_dict(), "passed": diag.passed,
                        "expected_to_fail": spec.expect_failure},
        "comparison": f.comparison,
    })
    if why is not None:
        record["why_they_differ"] = why
    if f.laplace_error:
        record["laplace_error"] = f.laplace_error
    if f.loo is not None:
        record["loo"] = f.loo
    _figures(report, f)
    flagged = f.ranks[f.ranks < 0.01]
    record["rank_test_p"] = f.ranks.to_dict()
    if len(flagged):
        report.alert(f"{title}: ArviZ's multi-chain rank test (the p-value on the rank plot) "
                     "flags " + ", ".join(f"{k} (p = {v:.2g})" for k, v in flagged.items())
                     + f" although max R-hat is {diag.r_hat_max:.3f}: the chains' rank "
                     "distributions differ more than chance would make them; look at that rank "
                     "plot, and run longer chains (more --draws) before trusting these tails.")
    fit = _fit_verdict(report, f)
    conv_text = (f"max R-hat {diag.r_hat_max:.3f}, min bulk/tail ESS "
                 f"{diag.ess_bulk_min:.0f}/{diag.ess_tail_min:.0f}, "
                 f"{diag.divergences} divergences, min E-BFMI {diag.e_bfmi_min:.2f}")
    if not diag.passed:
        conv_text = "failed: " + diag.failures() + (
            "; a --quick run is too short for ESS >= 400" if quick else "")
    if len(flagged):
        conv_text += "; rank test flags " + ", ".join(
            f"{k} (p = {v:.2g})" for k, v in flagged.items())
    mle_reason = ({"ok": "SEs from the observed information",
                   "does_not_exist": "does not exist (the likelihood rises without bound)",
                   "singular": "not unique: some parameters are not identified",
                   "not_converged": "the optimiser did not converge"}[mle.status]
                  + ("; hyperparameters outside the likelihood have none"
                     if mle.not_in_likelihood else ""))
    fit_text = None
    if fit is not None:
        fit_text = (fit.passed, fit.summary() + ("; " + "; ".join(fit.advice) if fit.advice else ""))
    report.verdict(title, (diag.passed, conv_text), fit_text, (mle.status == "ok", mle_reason),
                   expected=spec.expect_failure, what=_what(f))
    record["fit"] = fit.as_dict() if fit is not None else None


def _psense_figure(report: Report, f: SectionFit, top: int = 4) -> None:
    """ArviZ's power-scaling plot of the ``top`` most prior-sensitive scalars."""
    if f.sensitivity is None or f.sensitivity_data is None:
        return
    # the rows the "why" table shows: one triangle of a symmetric matrix, so that a covariance
    # is not plotted twice and "of N parameters" counts that table's rows
    shown, _ = f.shown
    order = f.sensitivity["prior"].astype(float)
    order = (order[[lab for lab in order.index if lab in shown]]
             if any(lab in shown for lab in order.index) else order).sort_values(ascending=False)
    labels = list(order.index[:top])
    try:
        pc = plots.psense(f.sensitivity_data, labels)
    except Exception as exc:  # noqa: BLE001 - say why the plot is missing
        report.text(f"No power-scaling plot: {sentence(str(exc))}", kind="note")
        return
    more = (f" ({len(labels)} most prior-sensitive of {len(order)} parameters; all are in the "
            "table above)" if len(order) > len(labels) else "")
    report.figure(pc, "Power-scaling sensitivity (ArviZ plot_psense_dist)" + more + ": each "
                  "posterior with the prior (left column) or the likelihood (right column) "
                  "raised to the power 0.8 (blue) or 1.25 (orange) by importance reweighting, "
                  "black as fitted; dot and line below: mean and 95% ETI. A curve that moves "
                  "with the prior's power depends on the prior.")


def _what(f: SectionFit) -> str:
    """One line for the first screen: the data size, the model, the largest MLE-to-posterior
    shift and the range of interval width ratios."""
    t = f.comparison.loc[f.shown[0]]  # the rows the table shows
    line = f"N = {f.mle.n_obs}, {f.mle.n_params} MLE parameters; " + f.spec.math.split("\n")[0]
    shift = t["shift_in_se"].astype(float).abs().dropna()
    if len(shift):
        lab = shift.idxmax()
        ratio = t["width_ratio"].astype(float).dropna()
        line += (f". Largest MLE-to-posterior shift: {lab} {t.loc[lab, 'shift_in_se']:+.2f} SE; "
                 f"credible/Wald width {ratio.min():.2f} to {ratio.max():.2f}")
    return line


def _fit_verdict(report: Report, f: SectionFit):
    """Model-fit checks (:mod:`models.inference.fitcheck`) of one section; a misfit is stated first."""
    fit = f.fit
    if fit is None:
        if f.fit_error:
            report.text(f"Model-fit checks could not be computed: {f.fit_error}", kind="warn")
        return None
    report.table(pd.DataFrame({"value": [fit.loo_pit_p, fit.pareto_k_share,
                                         *fit.ppc.values()]},
                              index=pd.Index(["LOO-PIT uniformity p-value",
                                              f"share of points with Pareto k > {fit.good_k:.2f}",
                                              *[f"posterior predictive p-value: {k}"
                                                for k in fit.ppc]], name="model-fit check")),
                 caption="Model fit: " + ("PASS" if fit.passed else "WARN") + " (a p-value "
                 "below 0.01 fails; more than 10% of points with high Pareto k makes LOO and "
                 "LOO-PIT unreliable, stated as a caveat)", digits=3)
    for caveat in fit.caveats:
        report.text(f"Caveat: {caveat}.", kind="note")
    if fit.problems:
        report.alert(f"{f.spec.title}: the model does not fit the data well: " + "; ".join(fit.problems)
                     + ".")
    return fit
