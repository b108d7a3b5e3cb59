"""Convergence diagnostics with pass/fail thresholds, and ArviZ's multi-chain rank test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from models.base import stopwatch
from models.inference.labels import flat_by_label, scalars_by_label

# Thresholds of :func:`diagnose` (Vehtari et al. 2021 for R-hat/ESS; Betancourt 2016 for E-BFMI).
RHAT_MAX = 1.01
ESS_MIN = 400
EBFMI_MIN = 0.3
# Per chain, when each chain is judged on its own (within one mode): 100 is the per-chain share
# of ESS_MIN with four chains (Vehtari et al. 2021 ask for bulk and tail ESS > 100 per chain).
PER_CHAIN_ESS_MIN = 100


@dataclass
class Diagnostics:
    """Convergence diagnostics with pass/fail per threshold (see :func:`diagnose`)."""

    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    e_bfmi_min: float
    checks: dict[str, bool]
    note: str = ""  # e.g. how R-hat was computed for a single chain
    ess_min: float = ESS_MIN  # the ESS threshold the checks used (per chain for within-chain)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def failures(self) -> str:
        """The failed checks in words: 'r_hat_max = 1.012 (needs <= 1.01), ...'."""
        frame = self.to_frame()
        # R-hat to 4 decimals: 1.0102 fails where "1.01" would read as a pass
        return ", ".join(f"{k} = " + (f"{r['value']:.4f}" if k == "r_hat_max" else f"{r['value']:.4g}")
                         + f" (needs {r['threshold']})"
                         for k, r in frame.iterrows() if not r["passed"])

    def to_frame(self) -> pd.DataFrame:
        per = " per chain" if self.ess_min != ESS_MIN else ""
        rows = [
            ("r_hat_max", self.r_hat_max, f"<= {RHAT_MAX}" + (f" ({self.note})" if self.note
                                                               else "")),
            ("ess_bulk_min", self.ess_bulk_min, f">= {self.ess_min:g}" + per),
            ("ess_tail_min", self.ess_tail_min, f">= {self.ess_min:g}" + per),
            ("divergences", self.divergences, "== 0"),
            ("e_bfmi_min", self.e_bfmi_min, f">= {EBFMI_MIN}"),
        ]
        return pd.DataFrame([{"check": n, "value": v, "threshold": t, "passed": self.checks[n]}
                             for n, v, t in rows]).set_index("check")


def _extreme(tree, fn) -> float:
    values = [np.asarray(tree[v].values, dtype=float).ravel() for v in tree.data_vars]
    values = np.concatenate(values) if values else np.array([np.nan])
    values = values[np.isfinite(values)]
    return float(fn(values)) if values.size else float("nan")


@stopwatch.timed('summaries and diagnostics')
def diagnose(idata: xr.DataTree, var_names=None) -> Diagnostics:
    """Max R-hat (rank-normalised), min bulk and tail ESS, divergences and min E-BFMI.

    Thresholds: R-hat <= 1.01, ESS >= 400, no divergences, E-BFMI >= 0.3. All computed by
    ArviZ; Deterministics are included, so a hierarchical model's group effects count.
    """
    import arviz as az

    note = ""
    post = idata["posterior"]
    if post.sizes.get("chain", 1) == 1:
        # ArviZ's R-hat is NaN for one chain; split-R-hat of its two halves (as if they were
        # two chains) still checks that the chain is stationary, which is all one chain can show
        half = post.sizes["draw"] // 2
        halves = [post.to_dataset().isel(draw=slice(k * half, (k + 1) * half))
                  .assign_coords(draw=np.arange(half), chain=[k]) for k in (0, 1)]
        rhat_tree = xr.DataTree.from_dict({"posterior": xr.concat(halves, dim="chain")})
        note = ("one chain: R-hat compares its two halves (at least 2 chains are needed to see "
                "chains that settle in different places)")
    else:
        rhat_tree = idata
    rhat = _extreme(az.rhat(rhat_tree, var_names=var_names).dataset, np.max)
    ess_bulk = _extreme(az.ess(idata, var_names=var_names, method="bulk").dataset, np.min)
    ess_tail = _extreme(az.ess(idata, var_names=var_names, method="tail").dataset, np.min)
    divergences = int(idata["sample_stats"]["diverging"].sum())
    bfmi = float(np.min(az.bfmi(idata).dataset["energy"].values))
    checks = {
        "r_hat_max": bool(rhat <= RHAT_MAX),
        "ess_bulk_min": bool(ess_bulk >= ESS_MIN),
        "ess_tail_min": bool(ess_tail >= ESS_MIN),
        "divergences": divergences == 0,
        "e_bfmi_min": bool(bfmi >= EBFMI_MIN),
    }
    return Diagnostics(rhat, ess_bulk, ess_tail, divergences, bfmi, checks, note)


def split_rhat_one_chain(values) -> np.ndarray:
    """Rank-normalised split R-hat of ONE chain (``values``: (draw, ...)): its two halves
    compared as if they were two chains (ArviZ returns NaN for a single chain). Near 1 when the
    chain is stationary, whatever other chains do."""
    import arviz as az

    values = np.asarray(values, dtype=float)
    half = values.shape[0] // 2
    halves = values[:2 * half].reshape(2, half, *values.shape[1:])
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"v": (("chain", "draw", *[f"d{i}" for i in range(values.ndim - 1)]), halves)})})
    return np.asarray(az.rhat(tree).dataset["v"].values)


def chain_mixing(values) -> list[dict]:
    """Each chain ON ITS OWN, with no sampler statistics: ``values`` (chain, draw, K); per
    chain its index, the largest split R-hat of its two halves (:func:`split_rhat_one_chain`)
    and its smallest bulk and tail ESS over the K quantities. The part of
    :func:`within_chain_check` that any sampler's draws have (an unadjusted sampler, such as
    MCLMC, has no divergences or E-BFMI)."""
    import arviz as az

    values = np.asarray(values, dtype=float)
    rows = []
    for c in range(values.shape[0]):
        one = xr.DataTree.from_dict({"posterior": xr.Dataset(
            {"v": (("chain", "draw", "k"), values[c:c + 1].reshape(1, values.shape[1], -1))})})
        rows.append({
            "chain": c,
            "split_rhat_max": float(np.nanmax(split_rhat_one_chain(values[c]))),
            "ess_bulk_min": float(np.nanmin(az.ess(one, method="bulk").dataset["v"].values)),
            "ess_tail_min": float(np.nanmin(az.ess(one, method="tail").dataset["v"].values)),
        })
    return rows


def within_chain_check(values, idata: xr.DataTree) -> tuple[pd.DataFrame, Diagnostics]:
    """Convergence of each chain ON ITS OWN, for chains that may sit in different modes
    (chains started from the members of a deep ensemble: Sommer et al. 2024).

    ``values``: (chain, draw, K) quantities to diagnose (a network's predictions at test
    points); ``idata``: its sample_stats (divergences, energy). Per chain: the largest split
    R-hat of its two halves (:func:`split_rhat_one_chain`), the smallest bulk and tail ESS of
    the chain alone, its divergent transitions and E-BFMI. A chain passes when R-hat <= 1.01,
    both ESS >= ``PER_CHAIN_ESS_MIN``, no divergences and E-BFMI >= 0.3; the returned
    :class:`Diagnostics` passes only if every chain does (its values: the worst chain's).
    Between-chain R-hat is NOT part of it: chains in different modes disagree by design, and
    the predictive is their mixture. Returns (one row per chain, the Diagnostics)."""
    import arviz as az

    stats_ = idata["sample_stats"]
    bfmi = np.atleast_1d(np.asarray(az.bfmi(idata).dataset["energy"].values, dtype=float))
    rows = [{**row, "divergences": int(stats_["diverging"].isel(chain=c).sum()),
             "e_bfmi": float(bfmi[c])} for c, row in enumerate(chain_mixing(values))]
    frame = pd.DataFrame(rows).set_index("chain")
    frame["passed"] = ((frame["split_rhat_max"] <= RHAT_MAX)
                       & (frame["ess_bulk_min"] >= PER_CHAIN_ESS_MIN)
                       & (frame["ess_tail_min"] >= PER_CHAIN_ESS_MIN)
                       & (frame["divergences"] == 0) & (frame["e_bfmi"] >= EBFMI_MIN))
    rhat, bulk, tail = (float(frame["split_rhat_max"].max()), float(frame["ess_bulk_min"].min()),
                        float(frame["ess_tail_min"].min()))
    div, e = int(frame["divergences"].sum()), float(frame["e_bfmi"].min())
    checks = {"r_hat_max": bool(rhat <= RHAT_MAX), "ess_bulk_min": bool(bulk >= PER_CHAIN_ESS_MIN),
              "ess_tail_min": bool(tail >= PER_CHAIN_ESS_MIN), "divergences": div == 0,
              "e_bfmi_min": bool(e >= EBFMI_MIN)}
    return frame, Diagnostics(rhat, bulk, tail, div, e, checks,
                              note="each chain alone, its two halves", ess_min=PER_CHAIN_ESS_MIN)


# A chain whose bulk ESS is below this has hardly moved: a few effective draws in thousands.
STUCK_ESS = 10
# Why a chain failed :func:`within_chain_check`, the first that applies, in this order (the
# order of how much each says about the draws: a stuck chain's R-hat and ESS say nothing more).
FAILURE_CAUSES = ("stuck (bulk ESS < 10)", "divergences", "E-BFMI < 0.3",
                  "ESS < 100 per chain", "R-hat > 1.01 only")


def chain_failure_cause(split_rhat_max: float, ess_bulk_min: float, ess_tail_min: float,
                        divergences: int, e_bfmi: float) -> str | None:
    """Why one chain failed the within-chain checks (:data:`FAILURE_CAUSES`, the first that
    applies), or None if it passed. "R-hat > 1.01 only": every other check passed, so the
    chain moved, without divergences, with at least 100 effective draws, and still its two
    halves differ by more than R-hat allows (a slowly mixing chain, or a drifting one: the
    halves alone cannot tell which; more draws can, see benchmarks/within_chain_rhat_null.py)."""
    # "not x >= t" rather than "x < t": a NaN fails, as in within_chain_check's pass rule
    if not ess_bulk_min >= STUCK_ESS:
        return FAILURE_CAUSES[0]
    if divergences > 0:
        return FAILURE_CAUSES[1]
    if not e_bfmi >= EBFMI_MIN:
        return FAILURE_CAUSES[2]
    if not (ess_bulk_min >= PER_CHAIN_ESS_MIN and ess_tail_min >= PER_CHAIN_ESS_MIN):
        return FAILURE_CAUSES[3]
    if not split_rhat_max <= RHAT_MAX:
        return FAILURE_CAUSES[4]
    return None


def chain_failure_causes(per_chain) -> list[str | None]:
    """:func:`chain_failure_cause` for every row of :func:`within_chain_check`'s per-chain
    table (a DataFrame, or its ``to_dict(orient="list")`` as saved in function_space)."""
    frame = pd.DataFrame(per_chain)
    return [chain_failure_cause(c.split_rhat_max, c.ess_bulk_min, c.ess_tail_min,
                                c.divergences, c.e_bfmi) for c in frame.itertuples()]


def divergence_locations(idata: xr.DataTree, quantities: dict | None = None,
                         top: int = 3) -> pd.DataFrame:
    """Where each chain's divergent transitions sit, the numbers behind a pairs plot with the
    divergences marked (Betancourt 2017): for every chain with divergences, and every scalar of
    the posterior (labelled from its dims and coords) and of ``quantities`` (name -> (chain,
    draw) array, such as a scale derived from several parameters), the mean percentile of the
    divergent draws among that chain's own draws: near 50, the divergences are spread like the
    chain's draws; near 0 or 100, they sit in that quantity's tail, where the sampler's step is
    too large for the posterior's curvature. A divergent draw is the point NUTS kept from the
    part of the diverging trajectory built before it diverged, near where it diverged: the
    draws Stan's pairs plots mark. Returns the ``top`` quantities
    furthest from 50 per chain, one row each: chain, divergences, quantity, percentile, the
    median at the divergent draws and over the chain; no rows when nothing diverged."""
    from scipy.stats import rankdata

    diverging = np.asarray(idata["sample_stats"]["diverging"].transpose("chain", "draw").values,
                           dtype=bool)
    scalars = {label: np.asarray(da.values, dtype=float) for label, da in scalars_by_label(
        idata["posterior"].to_dataset(), list(idata["posterior"].data_vars)).items()}
    scalars.update({k: np.asarray(v, dtype=float) for k, v in (quantities or {}).items()})
    columns = ["chain", "divergences", "quantity", "percentile at divergences",
               "median at divergences", "median in chain"]
    rows = []
    for c in np.flatnonzero(diverging.any(axis=1)):
        hit = diverging[c]
        per_chain = []
        for label, x in scalars.items():
            x = x[c]
            if not np.all(np.isfinite(x)):
                continue
            pct = (rankdata(x) - 0.5) / len(x) * 100  # midrank percentile, symmetric: 0..100
            per_chain.append((int(c), int(hit.sum()), label, float(pct[hit].mean()),
                              float(np.median(x[hit])), float(np.median(x))))
        rows += sorted(per_chain, key=lambda r: -abs(r[3] - 50))[:top]
    return pd.DataFrame(rows, columns=columns)


def rank_test(idata: xr.DataTree, var_names=None) -> pd.Series:
    """p-value of ArviZ's multi-chain rank uniformity test ("mtc_c", the test ``plot_rank``
    prints on each panel) per scalar, labelled from dims/coords. Ranks are pooled over all
    chains and draws and scaled to (0, 1), as ``plot_rank`` does. A small p-value says the
    chains' rank distributions differ even where R-hat passes (it is reported beside R-hat,
    not folded into :func:`diagnose`'s thresholds)."""
    from scipy.stats import rankdata

    post = idata["posterior"].to_dataset()
    out = {}
    if post.sizes.get("chain", 1) < 2:
        return pd.Series(out, dtype=float)
    for name in var_names if var_names is not None else list(post.data_vars):
        da = post[name].transpose("chain", "draw", ...)
        flat = da.values.reshape(da.shape[0], da.shape[1], -1)
        labels = flat_by_label(da.isel(chain=0, draw=0, drop=True), name).index
        for j, label in enumerate(labels):
            x = flat[..., j]
            if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
                continue
            r = rankdata(x.ravel()).reshape(x.shape) / (x.size + 1)
            ds = xr.Dataset({"r": (("chain", "draw"), r)})
            out[label] = float(ds.azstats.mchain_uniformity_test(dim=("chain", "draw"))[0]["r"])
    return pd.Series(out, dtype=float)


