"""Does the model fit the data? The checks a verdict needs beside convergence.

* **LOO-PIT uniformity** (ArviZ): each observation's leave-one-out predictive CDF at its
  observed value (randomised between the steps for discrete data, so that a correct model gives
  uniform values for counts and binary outcomes too), tested for uniformity with ArviZ's
  ``uniformity_test`` (the "pot_c" test that ``plot_loo_pit`` draws).
* **Pareto k** of PSIS-LOO: the share of observations above ArviZ's ``good_k`` (LOO, and the
  LOO-PIT above, are unreliable there: highly influential points). A caveat, not a misfit:
  a model with one parameter per group (eight schools: 8 points, 8 effects) has high k by
  construction however well it fits.
* **Posterior predictive p-values** of test statistics that target the family's usual failure:
  min and max of a continuous outcome (outliers, heavy tails: Newcomb's light-speed data),
  dispersion (variance / mean) and the share of zeros of counts (over-dispersion, excess zeros).
  Two-sided: p = 2 min(P(T_rep >= T_obs), P(T_rep <= T_obs)).

Each failed check comes with what a user would try. The thresholds are conventional, not
tuned: p < 0.01 for a p-value fails; more than 10% of points with high Pareto k is a caveat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from models.base import stopwatch
P_MIN = 0.01  # a p-value below this is a misfit
K_SHARE_MAX = 0.10  # more than this share of points above good_k: LOO unreliable

STATISTICS = {
    "continuous": {
        "min": (np.min, "the smallest observations are more extreme than the model predicts "
                        "(outliers or a heavy lower tail): try a Student-t likelihood"),
        "max": (np.max, "the largest observations are more extreme than the model predicts "
                        "(outliers or a heavy upper tail): try a Student-t likelihood"),
    },
    "count": {
        "variance / mean": (lambda y: np.var(y) / max(np.mean(y), 1e-12),
                            "the counts are over- (or under-) dispersed for a Poisson: try a "
                            "negative binomial likelihood or an observation-level random effect"),
        "share of zeros": (lambda y: np.mean(y == 0),
                           "more (or fewer) zeros than the model predicts: try a zero-inflated "
                           "or hurdle model"),
    },
}


@dataclass
class FitCheck:
    """Model-fit verdict of one posterior (see module docstring)."""

    loo_pit_p: float | None
    pareto_k_share: float | None
    good_k: float | None
    ppc: dict[str, float] = field(default_factory=dict)  # statistic -> two-sided p-value
    problems: list[str] = field(default_factory=list)  # one sentence each, with advice
    caveats: list[str] = field(default_factory=list)  # what limits the checks themselves

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def advice(self) -> list[str]:
        """What to try, once each (the text after the last ': ' of each problem)."""
        out = []
        for p in self.problems:
            tip = p.rsplit(": ", 1)[-1] if ": try" in p or ": K-fold" in p else ""
            if tip.startswith("try") and tip not in out:
                out.append(tip)
        return out

    def summary(self) -> str:
        parts = []
        if self.loo_pit_p is not None:
            parts.append(f"LOO-PIT uniformity p = {self.loo_pit_p:.2g}")
        if self.pareto_k_share is not None:
            parts.append(f"{self.pareto_k_share:.0%} of points with Pareto k > {self.good_k:.2f}")
        parts += [f"PPC p({name}) = {p:.2g}" for name, p in self.ppc.items()]
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {"passed": self.passed, "loo_pit_p": self.loo_pit_p,
                "pareto_k_share": self.pareto_k_share, "good_k": self.good_k,
                "ppc_p": dict(self.ppc), "problems": list(self.problems),
                "caveats": list(self.caveats)}


def ppc_p_value(t_obs: float, t_rep: np.ndarray) -> float:
    """Two-sided posterior predictive p-value of a statistic (ties count half)."""
    t_rep = np.asarray(t_rep, dtype=float)
    above = np.mean(t_rep > t_obs) + 0.5 * np.mean(t_rep == t_obs)
    return float(min(1.0, 2 * min(above, 1 - above)))


@stopwatch.timed('model-fit checks')
def check_fit(idata: xr.DataTree, kind: str, var_name: str = "y_obs") -> FitCheck:
    """Fit checks of a posterior that has ``log_likelihood``, ``observed_data`` and
    ``posterior_predictive`` groups. ``kind``: "continuous", "count", "binary" (LOO-PIT and
    Pareto k only; calibration is in the report) or None (Pareto k only, no posterior
    predictive needed: unordered classes, where a PIT means nothing, or a multivariate outcome)."""
    from models.inference.pointwise import loo_pit_from, pointwise_view, psis_loo

    idata = pointwise_view(idata)  # observed rows = the rows of a subsampled log_likelihood
    problems, caveats, ppc = [], [], {}
    loo = psis_loo(idata, var_name)
    k = np.asarray(loo.pareto_k).ravel()
    good_k = float(getattr(loo, "good_k", 0.7))
    k_share = float(np.mean(k > good_k))
    if k_share > K_SHARE_MAX:
        caveats.append(f"{k_share:.0%} of observations have Pareto k > {good_k:.2f}: they "
                        "dominate their own fit (influential points or a misspecified model); "
                        "LOO and LOO-PIT are unreliable there; K-fold CV would be honest")
    pit_p = None
    if kind is not None:
        pit = loo_pit_from(idata, var_name, loo)  # the same PSIS weights as the Pareto k
        dims = list(pit[var_name].dims)
        pit_p = float(pit.azstats.uniformity_test(dim=dims)[0][var_name])
        if pit_p < P_MIN:
            problems.append(f"the leave-one-out predictive distributions are not calibrated "
                            f"(LOO-PIT uniformity p = {pit_p:.2g})")
    stats = STATISTICS.get(kind, {})
    if stats:
        y = np.asarray(idata["observed_data"][var_name].values, dtype=float).ravel()
        rep = idata["posterior_predictive"][var_name].values
        rep = rep.reshape(rep.shape[0] * rep.shape[1], -1).astype(float)
    for name, (stat, advice) in stats.items():
        p = ppc_p_value(stat(y), np.apply_along_axis(stat, 1, rep))
        ppc[name] = p
        if p < P_MIN:
            problems.append(f"posterior predictive p-value of the {name} is {p:.2g}: {advice}")
    return FitCheck(pit_p, k_share, good_k, ppc, problems, caveats)
