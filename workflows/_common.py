"""What every workflow shares: options, the MLE-vs-posterior section of a report, the summary.

Workflows stay thin: load data -> build -> ``model_section`` (MLE, NUTS, diagnostics,
comparison, plots) -> ``finish`` (atomic write, one summary line).
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import signal
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm

from workflows import plots
from models.inference import (SAMPLERS, SamplerConfig, compare, diagnose, fit_mle,
                              posterior_summary, rank_test, sample_posterior)
from models.base.interrupts import interrupted, note_interrupt
from workflows.report import OutputError, Report, check_out_dir

REPORTS = Path("reports")
QUICK = {"draws": 300, "tune": 300, "chains": 2}


@dataclass(frozen=True)
class Settings:
    """A workflow's options: how to sample (one :class:`SamplerConfig`, validated when it is
    made), where to write, and the user's data if any."""

    config: SamplerConfig
    out: Path
    quick: bool
    data: Path | None = None
    target: str | None = None
    predictors: list[str] | None = None

    @property
    def draws(self) -> int:
        return self.config.draws

    @property
    def tune(self) -> int:
        return self.config.tune

    @property
    def chains(self) -> int:
        return self.config.chains

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def sampler(self) -> str:
        return self.config.sampler

    def sample(self, model, seed_offset: int = 0, **options):
        """``sample_posterior`` with these settings, the seed offset by ``seed_offset`` and
        any :class:`SamplerConfig` field in ``options`` (e.g. ``target_accept``)."""
        config = self.config.offset_seed(seed_offset)
        return sample_posterior(model, config.replace(**options) if options else config,
                                progressbar=sys.stderr.isatty())

    def as_dict(self) -> dict:
        return {"draws": self.draws, "tune": self.tune, "chains": self.chains,
                "sampler": self.sampler, "quick": self.quick,
                "data": str(self.data) if self.data else "bundled"}


def cli_error(exc: Exception) -> SystemExit:
    """A :class:`SamplerConfig` error as the command line says it: "--target-accept must ..."."""
    field, _, rest = str(exc).partition(" ")
    return SystemExit(f"error: --{field.replace('_', '-')} {rest}")


def parser(name: str, description: str, takes_data: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"mlebayes run {name}", description=description)
    s = p.add_argument_group("sampling")
    s.add_argument("--draws", type=int, default=None, help="posterior draws per chain (default 1000)")
    s.add_argument("--tune", type=int, default=None, help="tuning steps per chain (default 1000)")
    s.add_argument("--chains", type=int, default=None, help="number of chains (default 4)")
    s.add_argument("--seed", type=int, default=None, help="random seed (default 20261124)")
    s.add_argument("--sampler", choices=SAMPLERS, default=None, help="NUTS implementation (default nutpie)")
    s.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK['draws']} draws, {QUICK['tune']} tune, {QUICK['chains']} chains, fewer sweep steps")
    p.add_argument("--out", type=Path, default=None,
                   help=f"report directory (default reports/{name})")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file with any of these options as keys (command-line flags win)")
    if takes_data:
        d = p.add_argument_group("your own data")
        d.add_argument("--data", type=Path, default=None, help="CSV file with a header row")
        d.add_argument("--target", default=None, help="outcome column of --data")
        d.add_argument("--predictors", default=None,
                       help="comma-separated predictor columns of --data (default: all others)")
    return p


def add_fanout(p: argparse.ArgumentParser) -> None:
    """Options of the many-fit workflows: where the fits run (Dask distributed)."""
    g = p.add_argument_group("fan-out (Dask distributed)")
    g.add_argument("--workers", type=int, default=None,
                   help="worker processes of a LocalCluster on this machine (default: one per "
                        "core); 0 runs every fit in this process, without Dask")
    g.add_argument("--scheduler", default=None,
                   help="address of an existing Dask scheduler, e.g. tcp://host:8786 (instead of --workers)")


def fanout_client(args: argparse.Namespace):
    """Context manager yielding the Dask client for ``--workers`` / ``--scheduler``."""
    from models.inference.distributed import dask_client

    if args.workers is not None and args.workers < 0:
        raise SystemExit(f"error: --workers must be 0 (no Dask) or a positive integer, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise SystemExit("error: give --workers (a local cluster) or --scheduler (an existing "
                         "cluster), not both")
    if args.workers == 0:
        return contextlib.nullcontext(None)
    return dask_client(workers=args.workers, scheduler=args.scheduler)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


CONFIG_TYPES = {
    "draws": _is_int, "tune": _is_int, "chains": _is_int, "seed": _is_int,
    "sampler": lambda v: isinstance(v, str), "out": lambda v: isinstance(v, str),
    "quick": lambda v: isinstance(v, bool), "data": lambda v: isinstance(v, str),
    "target": lambda v: isinstance(v, str),
    "predictors": lambda v: isinstance(v, str) or (isinstance(v, list)
                                                   and all(isinstance(x, str) for x in v)),
}
CONFIG_EXPECTED = {
    "draws": "an integer", "tune": "an integer", "chains": "an integer",
    "seed": "an integer (0 to 4294967295)", "sampler": f"one of {SAMPLERS}",
    "out": "a path (a string)", "quick": "true or false (TOML booleans, no quotes)",
    "data": "a path (a string)", "target": "a column name (a string)",
    "predictors": 'a list of column names or one comma-separated string, e.g. ["a", "b"]',
}


def settings(name: str, args: argparse.Namespace) -> Settings:
    """Merge defaults < TOML config < command line, and validate before anything runs."""
    values = {"draws": 1000, "tune": 1000, "chains": 4, "seed": 20261124, "sampler": "nutpie",
              "out": REPORTS / name, "quick": False, "data": None, "target": None,
              "predictors": None}
    if args.config is not None:
        try:
            config = tomllib.loads(Path(args.config).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(f"error: --config {args.config}: {exc}") from None
        unknown = sorted(set(config) - set(values))
        if unknown:
            raise SystemExit(f"error: --config {args.config}: unknown option(s) {unknown}; "
                             f"known: {sorted(values)}")
        for key, value in config.items():
            ok = CONFIG_TYPES[key](value)
            if not ok:
                raise SystemExit(f"error: --config {args.config}: {key} = {value!r} must be "
                                 f"{CONFIG_EXPECTED[key]}")
        values.update(config)
    for key in values:
        v = getattr(args, key, None)
        if v is not None and v is not False:  # not `v not in (None, False)`: 0 == False
            values[key] = v
    if values["quick"]:
        for key, v in QUICK.items():
            if getattr(args, key, None) is None:
                values[key] = v
    try:
        config = SamplerConfig(values["sampler"], values["draws"], values["tune"],
                               values["chains"], values["seed"])
    except ValueError as exc:
        raise cli_error(exc) from None
    try:
        out = check_out_dir(values["out"])
    except (ValueError, PermissionError) as exc:
        raise SystemExit(f"error: {exc}") from None
    predictors = values["predictors"]
    if isinstance(predictors, str):
        predictors = [c.strip() for c in predictors.split(",") if c.strip()]
    return Settings(config, Path(out), bool(values["quick"]),
                    Path(values["data"]) if values["data"] else None, values["target"],
                    predictors)


def entry(main, argv=None) -> int:
    """Run a workflow's ``main`` as a command: Ctrl-C / SIGTERM stop it with exit 130 and
    one line (no traceback), whatever phase they land in: the signal is recorded
    (:mod:`models.base.interrupts`) before the KeyboardInterrupt is raised, so a library that
    swallows the exception cannot make the run carry on to a report."""
    def handler(signum, frame):
        note_interrupt()
        raise KeyboardInterrupt

    def note_only(signum, frame):  # while stopping: a second Ctrl-C must not cut the exit
        note_interrupt()

    def unraisable(hook_args):
        # A KeyboardInterrupt raised where Python cannot propagate it (a weakref or __del__
        # callback, e.g. during numba compilation) is printed as "Exception ignored ..." and
        # dropped. It is already recorded: print nothing, and deliver the signal once more so
        # that it lands in ordinary code and stops the run now.
        if issubclass(hook_args.exc_type, KeyboardInterrupt):
            # from another thread, a moment later: raised here it would be swallowed again
            threading.Timer(0.05, _thread.interrupt_main).start()
            return
        default_unraisable(hook_args)

    default_unraisable = sys.unraisablehook
    sys.unraisablehook = unraisable
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            signal.signal(sig, handler)
            installed.append(sig)
    try:
        rc = main(argv)
        if interrupted():
            raise KeyboardInterrupt
        return rc
    except KeyboardInterrupt:
        for sig in installed:
            signal.signal(sig, note_only)
        print("interrupted: stopped, no report written (a previous report there is unchanged)",
              file=sys.stderr, flush=True)
        return 130
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


class Progress:
    """One line per step on stderr: ``[regression 2/7] sampling logistic (wells)``."""

    def __init__(self, name: str, total: int):
        self.name, self.total, self.step, self.start = name, total, 0, time.time()

    def __call__(self, what: str) -> None:
        self.step += 1
        print(f"[{self.name} {self.step}/{self.total} {time.time() - self.start:5.0f}s] {what}",
              file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SectionSpec:
    """One MLE-vs-posterior section of a report: what it is called and says, and how to fit.

    ``ppc``: the posterior predictive check to draw ("continuous", "count", "binary" or None);
    ``seed_offset``: added to the workflow's seed for this model; ``var_names``: the variables
    to plot (default all); ``target_accept``: NUTS's, if not the sampler's default;
    ``expect_failure``: the section shows a failure on purpose (the centered funnel)."""

    title: str
    math: str
    data_note: str
    ppc: str | None = "continuous"
    seed_offset: int = 0
    var_names: tuple[str, ...] | None = None
    target_accept: float | None = None
    expect_failure: bool = False


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
        pm.sample_posterior_predictive(idata, model=model, extend_inferencedata=True,
                                       random_seed=s.seed + spec.seed_offset, progressbar=False)
    fit, fit_error = None, ""
    try:
        fit = check_fit(idata, spec.ppc if spec.ppc in ("continuous", "count", "binary") else None)
    except Exception as exc:  # noqa: BLE001 - the report says so rather than hide it
        fit_error = str(exc)
    return SectionFit(spec, mle, idata, diagnose(idata), compare(mle, idata),
                      posterior_summary(idata, prob=0.95), plotted, rank_test(idata, plotted),
                      fit, fit_error)


def model_section(report: Report, spec: SectionSpec, model: pm.Model, s: Settings, *,
                  mle=None, progress=None) -> SectionFit:
    """Fit (:func:`fit_section`) and render (:func:`render_section`) one section."""
    report.heading(spec.title)
    fit = fit_section(model, spec, s, mle=mle, progress=progress)
    render_section(report, fit, s.quick)
    return fit


def _mle_and_comparison(report: Report, f: SectionFit) -> None:
    mle, table, spec = f.mle, f.comparison, f.spec
    report.text(spec.data_note)
    report.math(spec.math)
    if mle.status != "ok" or mle.not_in_likelihood:
        report.text(f"MLE status: {mle.status}. {sentence(mle.message)}", kind="warn")
    report.table(mle.table(), caption=f"MLE (log-likelihood {mle.loglik:.2f} nats, "
                 f"AIC {mle.aic:.2f}, BIC {mle.bic:.2f}, N = {mle.n_obs}, k = {mle.n_params})")
    report.table(table, caption="MLE vs posterior: Wald 95% interval vs 95% equal-tailed "
                 "credible interval; shift_in_se = (posterior mean - MLE) / SE; width_ratio = "
                 "credible width / Wald width")
    comparable = table[np.isfinite(table["shift_in_se"]) & np.isfinite(table["width_ratio"])]
    big = comparable[(comparable["shift_in_se"].abs() > 0.5)
                     | ((comparable["width_ratio"] - 1).abs() > 0.2)]
    if len(comparable) < len(table):
        missing = [lab for lab in table.index if lab not in comparable.index]
        report.text(f"No MLE comparison for {missing}: the MLE or its standard error does not "
                    f"exist ({mle.status}); only the posterior is reported for them.", kind="warn")
    if len(big):
        report.text(
            "Where they disagree: " + "; ".join(
                f"{lab}: posterior mean {r.post_mean:.3g} vs MLE {r.mle:.3g} "
                f"({r.shift_in_se:+.2f} SE), interval width ratio {r.width_ratio:.2f}"
                for lab, r in big.iterrows()), kind="note")
    elif len(comparable):
        report.text("MLE and posterior agree: every comparable posterior mean is within 0.5 SE "
                    "of the MLE and every credible interval within 20% of the Wald width.",
                    kind="note")


def _figures(report: Report, f: SectionFit) -> None:
    mle, idata, spec = f.mle, f.idata, f.spec
    names = [n for n in plots.identified(mle, idata)
             if spec.var_names is None or n in spec.var_names]
    if names:
        report.figure(plots.posterior_vs_mle(mle, idata, names),
                      "Posterior (histogram, dotted 95% ETI) with the MLE, its normal "
                      "approximation N(MLE, SE²) and Wald 95% interval.")
        report.figure(plots.forest(mle, idata, names),
                      "Forest plot: MLE's asymptotic normal (Wald) vs posterior; thick 50%, "
                      "thin 95% intervals.")
    report.figure(plots.rank(idata, f.plotted),
                  "Rank ECDF minus the uniform CDF, one line per chain (ArviZ). Chains that "
                  "sample the same distribution stay close together near zero; lines that "
                  "part (one above, one below) are chains in different places. No band is "
                  "drawn: ArviZ prints its multi-chain test's p-value, which is less "
                  "sensitive than the R-hat in the diagnostics table, the check that decides.")
    report.figure(plots.energy(idata), "Energy plot (ArviZ): marginal energy vs energy "
                  "transition; similar widths = good exploration (E-BFMI).")
    if not spec.ppc:
        return
    if spec.ppc == "count":
        report.figure(az.plot_ppc_rootogram(idata), "Posterior predictive rootogram "
                      "(ArviZ): observed vs predicted frequency of each count.")
    elif spec.ppc == "binary":
        report.figure(az.plot_ppc_pava(idata), "Calibration (PAV-adjusted reliability "
                      "diagram, ArviZ): the curve should follow the diagonal.")
    else:
        report.figure(az.plot_ppc_dist(idata, num_samples=50),
                      "Posterior predictive check: observed data vs 50 replicated data sets.")
    try:
        # ArviZ's default test ("pot_c"), not an envelope: LOO-PIT values are dependent,
        # for which ArviZ warns that a simultaneous envelope is not valid
        report.figure(az.plot_loo_pit(idata),
                      "LOO-PIT ECDF minus the uniform CDF (ArviZ). No band is drawn: ArviZ's "
                      "pointwise-order test (pot_c) prints its p-value on the plot and marks "
                      "the points that drive a small one. The model-fit table reports the "
                      "same test computed by this project, which can differ slightly from "
                      "the plot's (ties of discrete outcomes are randomised separately).")
    except Exception as exc:  # noqa: BLE001 - report, do not hide, a failed LOO
        report.text(f"LOO-PIT could not be computed: {exc}", kind="warn")


def render_section(report: Report, f: SectionFit, quick: bool = False) -> None:
    """Tables, figures, sentences and the verdict of one fitted section (no fitting here);
    ``quick``: the run was a --quick smoke run (said beside a failed ESS check)."""
    mle, idata, diag, spec, title = f.mle, f.idata, f.diagnostics, f.spec, f.spec.title
    _mle_and_comparison(report, f)
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
    report.table(summary.head(40), caption="Posterior summary: mean, sd, 95% ETI (xarray), "
                 "bulk/tail ESS, R-hat, MCSE (ArviZ), each row labelled from its variable's dims "
                 "and coords" + (f"; first 40 of {len(summary)} rows, all in summary.csv"
                                 if len(summary) > 40 else ""))
    record = report.section_record(title)
    record.update({
        "mle": {"status": mle.status, "message": mle.message, "loglik": mle.loglik,
                "aic": mle.aic, "bic": mle.bic, "n_obs": mle.n_obs, "n_params": mle.n_params,
                "params": mle.params, "se": mle.se},
        "diagnostics": {**diag.to_frame()["value"].to_dict(), "passed": diag.passed,
                        "expected_to_fail": spec.expect_failure},
        "comparison": f.comparison,
    })
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
    mle_reason = ({"ok": "exists; SEs from the observed information",
                   "does_not_exist": "does not exist (the likelihood rises without bound)",
                   "singular": "not unique: some parameters are not identified",
                   "not_converged": "the optimiser did not converge"}[mle.status]
                  + ("; hyperparameters outside the likelihood have none"
                     if mle.not_in_likelihood else ""))
    fit_text = None
    if fit is not None:
        fit_text = (fit.passed, fit.summary() + ("; " + "; ".join(fit.advice) if fit.advice else ""))
    report.verdict(title, (diag.passed, conv_text), fit_text, (mle.status == "ok", mle_reason),
                   expected=spec.expect_failure)
    record["fit"] = fit.as_dict() if fit is not None else None


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


@dataclass(frozen=True)
class Verdict:
    """A pass/fail check that is not a sampler diagnostic (an SBC family, a reference
    posterior), for :func:`finish`: ``passed`` and, when it failed, ``reason`` in words."""

    passed: bool
    reason: str = ""


def _failed_checks(d) -> str:
    """'convergence: r_hat_max = 1.51 (needs <= 1.01), ...' for a Diagnostics object."""
    return "convergence: " + d.failures() if hasattr(d, "failures") else "failed"


def finish(name: str, report: Report, s: Settings, diags: list, posteriors: dict,
           seed, data_sha: str, required: bool = False) -> int:
    """Write the report and print one line. ``diags``: (label, object with ``.passed``).

    ``required``: the checks are the workflow's purpose (validation): any failure prints FAIL
    and returns 1. Otherwise a failed check is a WARN (the report says why) and returns 0."""
    failed = [(label, d) for label, d in diags if not d.passed]
    reasons = [f"{label}: {getattr(d, 'reason', '') or _failed_checks(d)}" for label, d in failed]
    misfit = [v["model"] for v in report.verdicts
              if v["fit"] is not None and not v["fit"][0] and not v["expected"]]
    reasons += [f"{model}: the model does not fit the data (see its model-fit checks)"
                for model in misfit]
    report.provenance(seed, data_sha, s.as_dict())
    report.metrics["workflow"] = name
    report.metrics["settings"] = {**s.as_dict(), "seed": seed}
    report.metrics["data_sha256_16"] = data_sha
    report.metrics["diagnostics_passed"] = not failed
    report.metrics["fit_passed"] = not misfit
    report.metrics["checks"] = {label: bool(d.passed) for label, d in diags}
    report.metrics["failed_checks"] = reasons
    path = report.write(s.out, posteriors)
    word = "FAIL" if required else "WARN"
    verdict = "PASS" if not reasons else f"{word} ({'; '.join(reasons)})"
    print(f"{name}: {verdict}  report: {path}", flush=True)
    return 1 if (failed and required) else 0


def sentence(text: str) -> str:
    """A message as a sentence: capitalised, one full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def summary_table(items: dict) -> pd.DataFrame:
    return pd.DataFrame({"value": list(items.values())}, index=pd.Index(list(items), name="quantity"))

