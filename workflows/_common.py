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

from models import plots
from models.inference import (compare, diagnose, fit_mle, posterior_summary, rank_test,
                               sample_posterior)
from models.interrupts import interrupted, note_interrupt
from models.report import OutputError, Report, check_out_dir
from models.validation import check_positive_int

REPORTS = Path("reports")
QUICK = {"draws": 300, "tune": 300, "chains": 2}
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")


@dataclass
class Settings:
    draws: int
    tune: int
    chains: int
    seed: int
    sampler: str
    out: Path
    quick: bool
    data: Path | None = None
    target: str | None = None
    predictors: list[str] | None = None

    def sample(self, model, seed_offset: int = 0, **kwargs):
        return sample_posterior(model, draws=self.draws, tune=self.tune, chains=self.chains,
                                random_seed=self.seed + seed_offset, sampler=self.sampler,
                                progressbar=sys.stderr.isatty(), **kwargs)

    def as_dict(self) -> dict:
        return {"draws": self.draws, "tune": self.tune, "chains": self.chains,
                "sampler": self.sampler, "quick": self.quick,
                "data": str(self.data) if self.data else "bundled"}


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
    from models.distributed import dask_client

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
        check_positive_int(values["draws"], "--draws", maximum=100_000)
        check_positive_int(values["tune"], "--tune", maximum=100_000, minimum=0)
        check_positive_int(values["chains"], "--chains", maximum=64)
        check_positive_int(values["seed"], "--seed", maximum=2**32 - 1, minimum=0)
        if values["sampler"] not in SAMPLERS:
            raise ValueError(f"--sampler must be one of {SAMPLERS}, got {values['sampler']!r}")
        out = check_out_dir(values["out"])
    except (ValueError, PermissionError) as exc:
        raise SystemExit(f"error: {exc}") from None
    predictors = values["predictors"]
    if isinstance(predictors, str):
        predictors = [c.strip() for c in predictors.split(",") if c.strip()]
    return Settings(int(values["draws"]), int(values["tune"]), int(values["chains"]),
                    int(values["seed"]), values["sampler"], Path(out), bool(values["quick"]),
                    Path(values["data"]) if values["data"] else None, values["target"],
                    predictors)


def entry(main, argv=None) -> int:
    """Run a workflow's ``main`` as a command: Ctrl-C / SIGTERM stop it with exit 130 and
    one line (no traceback), whatever phase they land in: the signal is recorded
    (:mod:`models.interrupts`) before the KeyboardInterrupt is raised, so a library that
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


def model_section(report: Report, title: str, model: pm.Model, s: Settings, *,
                  math: str, data_note: str, ppc: str | None = "continuous",
                  seed_offset: int = 0, var_names=None, mle=None, progress=None,
                  sample_kwargs=None, expect_failure: bool = False):
    """Fit the MLE and the posterior of ``model`` and add the full comparison to ``report``.

    Returns (mle, idata, diagnostics, comparison table).
    """
    report.heading(title)
    report.text(data_note)
    report.math(math)
    if progress:
        progress(f"MLE: {title}")
    mle = mle or fit_mle(model, random_seed=s.seed, warn=False)
    if mle.status != "ok" or mle.not_in_likelihood:
        report.text(f"MLE status: {mle.status}. {sentence(mle.message)}", kind="warn")
    report.table(mle.table(), caption=f"MLE (log-likelihood {mle.loglik:.2f} nats, "
                 f"AIC {mle.aic:.2f}, BIC {mle.bic:.2f}, N = {mle.n_obs}, k = {mle.n_params})")
    if progress:
        progress(f"NUTS ({s.sampler}, {s.chains}x{s.draws}): {title}")
    idata = s.sample(model, seed_offset=seed_offset, **(sample_kwargs or {}))
    diag = diagnose(idata)
    table = compare(mle, idata)
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
    report.diagnostics(diag, f"({title})")
    if not diag.passed:
        report.alert(f"{title}: convergence checks failed: {diag.failures()}."
                     + (" Expected for this model and shown on purpose." if expect_failure else
                        " Treat its posterior numbers with caution" + (
                            " (a --quick run is too short for ESS >= 400)." if s.quick else ".")))
    if mle.status != "ok":
        report.alert(f"{title}: MLE status '{mle.status}': {mle.message}")
    summary = posterior_summary(idata, prob=0.95)
    report.add_summary(title, summary, idata)
    shown = summary.head(40)
    report.table(shown, caption="Posterior summary: mean, sd, 95% ETI (xarray), bulk/tail ESS, "
                 "R-hat, MCSE (ArviZ), each row labelled from its variable's dims and coords" + (f"; first 40 of {len(summary)} rows, all in summary.csv"
                                  if len(summary) > 40 else ""))
    sections = report.metrics.setdefault("sections", {})
    sections[title] = {
        "mle": {"status": mle.status, "message": mle.message, "loglik": mle.loglik,
                "aic": mle.aic, "bic": mle.bic, "n_obs": mle.n_obs, "n_params": mle.n_params,
                "params": mle.params, "se": mle.se},
        "diagnostics": {**diag.to_frame()["value"].to_dict(), "passed": diag.passed,
                        "expected_to_fail": expect_failure},
        "comparison": table,
    }
    names = [n for n in plots.identified(mle, idata) if var_names is None or n in var_names]
    post_names, panels = [], 0
    for n in var_names or list(idata["posterior"].data_vars):
        size = idata["posterior"][n].size // (s.chains * s.draws)
        if panels + size <= 12:
            post_names.append(n)
            panels += size
    if names:
        report.figure(plots.posterior_vs_mle(mle, idata, names),
                      "Posterior (histogram, dotted 95% ETI) with the MLE, its normal "
                      "approximation N(MLE, SE²) and Wald 95% interval.")
        report.figure(plots.forest(mle, idata, names),
                      "Forest plot: MLE's asymptotic normal (Wald) vs posterior; thick 50%, "
                      "thin 95% intervals.")
    report.figure(plots.rank(idata, post_names),
                  "Rank ECDF minus the uniform CDF, one line per chain (ArviZ). Chains that "
                  "sample the same distribution stay close together near zero; lines that "
                  "part (one above, one below) are chains in different places. No band is "
                  "drawn: ArviZ prints its multi-chain test's p-value, which is less "
                  "sensitive than the R-hat in the diagnostics table, the check that decides.")
    report.figure(plots.energy(idata), "Energy plot (ArviZ): marginal energy vs energy "
                  "transition; similar widths = good exploration (E-BFMI).")
    if ppc:
        if progress:
            progress(f"posterior predictive: {title}")
        pm.sample_posterior_predictive(idata, model=model, extend_inferencedata=True,
                                       random_seed=s.seed + seed_offset, progressbar=False)
        if ppc == "count":
            report.figure(az.plot_ppc_rootogram(idata), "Posterior predictive rootogram "
                          "(ArviZ): observed vs predicted frequency of each count.")
        elif ppc == "binary":
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
    ranks = rank_test(idata, post_names)
    flagged = ranks[ranks < 0.01]
    sections[title]["rank_test_p"] = ranks.to_dict()
    if len(flagged):
        report.alert(f"{title}: ArviZ's multi-chain rank test (the p-value on the rank plot) "
                     "flags " + ", ".join(f"{k} (p = {v:.2g})" for k, v in flagged.items())
                     + f" although max R-hat is {diag.r_hat_max:.3f}: the chains' rank "
                     "distributions differ more than chance would make them; look at that rank "
                     "plot, and run longer chains (more --draws) before trusting these tails.")
    fit = _fit_verdict(report, title, idata, ppc)
    conv_text = (f"max R-hat {diag.r_hat_max:.3f}, min bulk/tail ESS "
                 f"{diag.ess_bulk_min:.0f}/{diag.ess_tail_min:.0f}, "
                 f"{diag.divergences} divergences, min E-BFMI {diag.e_bfmi_min:.2f}")
    if not diag.passed:
        conv_text = "failed: " + diag.failures() + (
            "; a --quick run is too short for ESS >= 400" if s.quick else "")
    if len(flagged):
        conv_text += "; rank test flags " + ", ".join(
            f"{k} (p = {v:.2g})" for k, v in flagged.items())
    conv = (diag.passed, conv_text)
    mle_reason = ({"ok": "exists; SEs from the observed information",
                   "does_not_exist": "does not exist (the likelihood rises without bound)",
                   "singular": "not unique: some parameters are not identified",
                   "not_converged": "the optimiser did not converge"}[mle.status]
                  + ("; hyperparameters outside the likelihood have none"
                     if mle.not_in_likelihood else ""))
    fit_text = None
    if fit is not None:
        fit_text = (fit.passed, fit.summary() + ("; " + "; ".join(fit.advice) if fit.advice else ""))
    report.verdict(title, conv, fit_text, (mle.status == "ok", mle_reason), expected=expect_failure)
    sections[title]["fit"] = fit.as_dict() if fit is not None else None
    return mle, idata, diag, table


def _fit_verdict(report: Report, title: str, idata, ppc: str | None):
    """Model-fit checks (:mod:`models.fitcheck`) of one section; a misfit is stated first."""
    from models.fitcheck import check_fit

    kind = ppc if ppc in ("continuous", "count", "binary") else None
    try:
        fit = check_fit(idata, kind)
    except Exception as exc:  # noqa: BLE001 - say so rather than hide it
        report.text(f"Model-fit checks could not be computed: {exc}", kind="warn")
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
        report.alert(f"{title}: the model does not fit the data well: " + "; ".join(fit.problems)
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

