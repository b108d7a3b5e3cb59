"""UCI benchmark: the published protocol (one hidden layer of 50 ReLU units, standardised by the
training split, metrics in original units, the standard 20 splits) for the MLE net, the MAP
net, a deep ensemble, Laplace approximations, the NUTS BNN (or none: --no-nuts) and optional
ADVI, mean ± standard error over splits next to PBP, MC dropout and deep ensembles."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluation import bnn, escalation
from models.base import datasets
from models.inference.distributed import format_failures
from models.inference import ADAPTATIONS, FAILURE_CAUSES, RHAT_MAX, chain_failure_causes, mclmc
from workflows.report import OutputError, Report, data_hash
from models.evaluation.uci_reference import BEST_BNN_LL, GBT_LL, PUBLISHED
from workflows.options import (add_fanout, add_mclmc, check_mclmc, check_member_pool, cli_error,
                               fanout_client, parser, settings)
from workflows.running import entry, finish, Progress

NAME = "uci_benchmark"
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())


def main(argv=None) -> int:
    p = parser(NAME, __doc__)
    g = p.add_argument_group("benchmark")
    g.add_argument("--datasets", default="yacht,energy",
                   help=f"comma-separated, from {', '.join(datasets.UCI)} (default yacht,energy)")
    g.add_argument("--splits", type=int, default=None,
                   help="use splits 0..N-1 (default all 20; --quick: 2)")
    g.add_argument("--hidden", type=int, default=None, help="hidden units (default 50; --quick: 10)")
    g.add_argument("--activation", choices=bnn.ACTIVATIONS, default="relu",
                   help="default relu (the protocol)")
    g.add_argument("--prior", choices=bnn.PRIORS, default=None,
                   help="weight prior (default he_normal for relu, xavier_normal otherwise)")
    g.add_argument("--adaptation", choices=ADAPTATIONS, default="diag",
                   help="nutpie's mass-matrix adaptation (default diag; low_rank: see the bnn workflow)")
    g.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance in (0, 1) (default: the sampler's, 0.8)")
    g.add_argument("--advi", type=int, default=0,
                   help="mean-field ADVI iterations per split, as a fourth method (default 0: off; "
                        "the bnn workflow uses 30000)")
    g.add_argument("--chains-from", choices=bnn.CHAIN_STARTS, default="ensemble",
                   help="where the NUTS chains start: ensemble (default; chain k at deep-ensemble "
                        "member k, each chain judged on its own) or prior (prior draws, judged "
                        "across chains)")
    g.add_argument("--member-pool", type=int, default=0,
                   help="train this many MAP nets per split (>= --chains) and keep the --chains "
                        "with the highest training log posterior as the deep ensemble and the "
                        "chains' starts (default 0: one MAP net per chain, no selection)")
    g.add_argument("--coordinates", choices=bnn.COORDINATES, default="weights",
                   help="where NUTS runs: weights (default, the network's own), product (one "
                        "tanh layer: log output weight and output x input weights per unit, the "
                        "same posterior over functions; see the bnn workflow)")
    g.add_argument("--product-power", type=float, default=1.0,
                   help="with --coordinates product: a in (0, 1], the input weights times the "
                        "output weight to the power a (default 1; a < 1 is partly non-centred)")
    g.add_argument("--ggn-noise", choices=bnn.GGN_NOISES, default="map",
                   help="the GGN Laplace rows' noise sd: map (default), each member's own; "
                        "evidence, chosen with the prior precision by the Laplace evidence")
    g.add_argument("--no-nuts", action="store_true",
                   help="skip NUTS and its checks: MLE net, MAP net, deep ensemble (--chains "
                        "members), the Laplace rows and optional ADVI only (for nets too wide "
                        "to sample on this machine)")
    g.add_argument("--rerun-failing", action="store_true",
                   help="rerun a split whose NUTS chains failed their within-chain checks, up to "
                        "3 times, with settings chosen from why they failed: a stuck chain: a "
                        "member pool of twice the chains; divergences in product coordinates: "
                        "power 0.75 and at least 24000 draws; otherwise at least 24000 draws, "
                        "then twice as many, up to 48000 (ensemble-started NUTS only; the "
                        "page counts the splits that passed only after a rerun)")
    add_mclmc(g)
    g.add_argument("--splits-dir", default=None,
                   help="where each finished split is saved as it ends, so a rerun with the same "
                        "settings skips it (default: OUT.splits beside the report directory)")
    add_fanout(p)
    args = p.parse_args(argv)
    s = settings(NAME, args)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in datasets.UCI]
    if unknown:
        raise SystemExit(f"error: --datasets: unknown {unknown}; choose from {datasets.UCI}")
    n_splits = args.splits or (2 if s.quick else 20)
    if not 1 <= n_splits <= 20:
        raise SystemExit(f"error: --splits must be between 1 and 20, got {n_splits}")
    hidden = args.hidden or (10 if s.quick else 50)
    if hidden < 1:
        raise SystemExit(f"error: --hidden must be a positive integer, got {hidden}")
    if not 0 <= args.advi <= 10_000_000:
        raise SystemExit(f"error: --advi must be between 0 and 10,000,000 iterations, got {args.advi}")
    check_member_pool(args.member_pool, s.config.chains)
    args.mclmc, args.mclmc_keep = check_mclmc(args.mclmc, args.mclmc_keep)
    if args.rerun_failing and (args.no_nuts or args.chains_from != "ensemble"):
        raise SystemExit("error: --rerun-failing reruns ensemble-started NUTS chains by the causes "
                         "of their failures; it needs NUTS (not --no-nuts) and --chains-from "
                         "ensemble")
    try:  # every sampler option is checked in one place, SamplerConfig
        config = s.config.replace(adaptation=args.adaptation, target_accept=args.target_accept,
                                  init="prior")
    except ValueError as exc:
        raise cli_error(exc) from None
    try:
        proto = protocol(args, config, hidden)
    except ValueError as exc:
        raise cli_error(exc) from None
    try:  # checked before any work, like --out: never write into a directory not ours
        store = SplitStore.open(args.splits_dir or f"{s.out}.splits", proto)
    except OutputError as exc:
        raise SystemExit(f"error: {exc}") from None
    with fanout_client(args) as client:
        return _run(s, names, n_splits, proto, client, store, rerun=args.rerun_failing)


def protocol(args, config, hidden: int) -> bnn.BNNProtocol:
    """The protocol the options name: one hidden layer of ``hidden`` units; the weight prior
    is --prior, else He-normal for ReLU and Xavier-normal otherwise (the same default as the
    bnn workflow, so a run without --prior keeps its splits' fingerprint)."""
    prior = args.prior or ("he_normal" if args.activation == "relu" else "xavier_normal")
    return bnn.BNNProtocol(bnn.NetworkSpec((hidden,), args.activation, prior), config,
                           advi_iterations=args.advi, chains_from=args.chains_from,
                           nuts=not args.no_nuts, member_pool=args.member_pool,
                           coordinates=args.coordinates, product_power=args.product_power,
                           ggn_noise=args.ggn_noise, mclmc_steps=args.mclmc,
                           mclmc_keep=args.mclmc_keep)


SPLITS_MARKER = ".mlebayes-splits"


@dataclass(frozen=True)
class SplitStore:
    """Finished UCI splits on disk, one pickle per (data set, split), for resumable runs
    (:func:`models.evaluation.bnn.uci_splits` calls ``load`` and ``save``). The directory
    holds a marker naming the protocol's fingerprint (a hash of the full
    :class:`BNNProtocol`: network, priors, sampler settings, seed): a different protocol is
    refused rather than mixed in. Each file is written to a temporary name and renamed, so a
    killed run leaves whole files only. Nothing but this tool's own files is ever read or
    replaced (the pickles are read only from a directory holding the marker)."""

    directory: Path
    fingerprint: str

    @staticmethod
    def fingerprint_of(protocol) -> str:
        return hashlib.sha256(repr(protocol).encode()).hexdigest()[:16]

    @classmethod
    def open(cls, directory, protocol) -> SplitStore:
        path = Path(directory)
        fingerprint = cls.fingerprint_of(protocol)
        marker = path / SPLITS_MARKER
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise OutputError(f"--splits-dir {path}: exists and is not a directory")
        if path.is_dir() and any(path.iterdir()):
            if not marker.is_file():
                raise OutputError(f"--splits-dir {path}: holds files this tool did not write; "
                                  "give a new or empty directory (nothing was changed)")
            saved = json.loads(marker.read_text(encoding="utf-8")).get("protocol")
            if saved != fingerprint:
                raise OutputError(f"--splits-dir {path}: holds splits of other settings "
                                  f"(protocol {saved}, this run {fingerprint}); give another "
                                  "directory to start afresh (nothing was changed)")
        else:
            path.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"tool": "mlebayes", "kind": "uci splits",
                                          "protocol": fingerprint,
                                          "settings": repr(protocol)}) + "\n", encoding="utf-8")
        return cls(path, fingerprint)

    def _file(self, name: str, split: int) -> Path:
        return self.directory / f"{name}-{split:02d}.pkl"

    def load(self, name: str, split: int):
        f = self._file(name, split)
        if not f.is_file():
            return None
        with f.open("rb") as fh:
            result = pickle.load(fh)
        if (result.data, result.split) != (name, split):
            raise OutputError(f"{f}: holds {result.data} split {result.split}, not {name} "
                              f"split {split}")
        return result

    def save(self, result) -> None:
        f = self._file(result.data, result.split)
        tmp = f.with_name(f".{f.name}.tmp-{os.getpid()}")
        with tmp.open("wb") as fh:
            pickle.dump(result, fh)
        os.replace(tmp, f)

    def saved(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob("*.pkl"))

    def for_rerun(self, protocol) -> SplitStore:
        """The store of the splits rerun under ``protocol`` (--rerun-failing): a directory
        inside this one, named by that protocol's fingerprint, so a rerun is resumable too."""
        return SplitStore.open(self.directory / f"rerun-{self.fingerprint_of(protocol)}",
                               protocol)


def _describe(report, s, proto, n_splits: int, where: str) -> None:
    """The protocol in words."""
    hidden = proto.net.hidden[0]
    net = {"activation": proto.net.activation, "prior": proto.net.prior,
           "adaptation": proto.sampler.adaptation, "target_accept": proto.sampler.target_accept,
           "advi": proto.advi_iterations}
    report.metrics["network"] = {"hidden": hidden, **net, "chains_from": proto.chains_from,
                                 "member_pool": proto.member_pool,
                                 "coordinates": proto.coordinates,
                                 "product_power": proto.power, "ggn_noise": proto.ggn_noise}
    report.text(f"Protocol: one hidden layer of {hidden} {net['activation']} units with "
                f"{net['prior']} weight priors (bias sd 0.1, noise σ ~ HalfNormal(1) on the "
                f"standardised target), "
                + (f"splits 0..{n_splits - 1}" if n_splits > 1 else "split 0")
                + " of the standard 20, inputs and "
                f"target standardised by the training split, metrics in original units. "
                + (f"NUTS not run (--no-nuts): a deep ensemble of {s.chains} MAP nets, each from "
                   "its own prior draw, the MLE net, and the Laplace rows (below); "
                   + ("no method but MCLMC (below) has a convergence check. " if proto.mclmc_steps
                      else "no method here has a convergence check. ")
                   if not proto.nuts else
                f"NUTS: {s.chains} chains x {s.draws} draws after {s.tune} tuning steps "
                f"({s.sampler}, adaptation {net['adaptation']}, target acceptance "
                f"{net['target_accept'] or 'default'}), "
                + ("chain k started at member k of a deep ensemble of MAP nets (one member per "
                   "chain, each from its own prior draw; the 'deep ensemble' rows are those "
                   "members) and judged on its own: split R-hat of its halves, its own bulk and "
                   "tail ESS >= 100, no divergences, E-BFMI >= 0.3 (Sommer et al. 2024). "
                   if proto.chains_from == "ensemble" else "each chain started at a prior draw. "))
                + "Last-layer Laplace: around the first member (the MAP net), output-layer "
                "precision and noise by the evidence; GGN Laplace (linearised): all weights, "
                "around the same member, prior precision by the evidence, noise σ "
                + ("the member's" if proto.ggn_noise == "map" else
                   "by the evidence too (--ggn-noise evidence), not the member's own")
                + ("; GGN Laplace ensemble: the same around every member, mixed with equal "
                   "weights (Eschenhagen et al. 2021)" if s.chains > 1 else "")
                + ". One "
                f"task per split, on {where}"
                + ("; each process compiles each data set's model once and swaps every split's "
                   "data in" if proto.nuts else "")
                + ". (The published protocol is 50 ReLU units.)"
                + (f" Member pool (--member-pool {proto.member_pool}): {proto.member_pool} MAP "
                   f"nets per split, the {s.chains} with the highest training log posterior "
                   "kept, best first: they are the deep ensemble, the MAP net (the best of the "
                   "pool) and, with NUTS, the chains' starts; the time of every pool fit is in "
                   "those rows' seconds." if proto.member_pool else "")
                + (" NUTS in product coordinates (--coordinates product"
                   + ("" if proto.power == 1 else f" --product-power {proto.power:g}") + "): per tanh "
                   "unit the log of its output weight, and its input weights and bias times "
                   + ("its output weight" if proto.power == 1 else
                      f"its output weight to the power {proto.power:g}")
                   + "; the same posterior over functions (the bnn workflow's page says how), "
                   "each member mapped into them to start its chain; the MLE net, the members "
                   "and the Laplace rows are fitted on the network's own weights."
                   if proto.power is not None else "")
                + (" 'NUTS, chains stacked': the same draws, chains weighted by stacking of "
                   "their PSIS-LOO predictive densities on the training split (Yao, Vehtari & "
                   "Gelman 2022) instead of equally; on a split where PSIS-LOO is unreliable "
                   "(see the convergence table) the chains keep equal weights."
                   if s.chains > 1 and proto.nuts else "")
                + (f" ADVI: mean-field, {net['advi']} Adam steps from a prior draw, 1000 draws."
                   if net["advi"] else "")
                + (f" MCLMC from the members (--mclmc {proto.mclmc_steps}): one unadjusted "
                   "microcanonical Langevin chain (blackjax; MILE, Sommer et al. 2025) from each "
                   "member, on the network's own weights, its L, step size and diagonal mass "
                   f"tuned from that member, then {proto.mclmc_steps} steps, "
                   f"{proto.mclmc_keep} draws kept; the row is the chains' equal mixture. Each "
                   "chain is judged on its own as ensemble-started NUTS chains are (split R-hat "
                   "of its halves <= 1.01, its own bulk and tail ESS >= 100, in function "
                   "space); there is no accept step, so no divergences or E-BFMI to check, and "
                   "the draws carry a step-size bias these checks cannot see (the mean squared "
                   "energy change per step and coordinate is tabulated; blackjax's tuner aims "
                   "at 5e-4). Its seconds include training the members."
                   if proto.mclmc_steps else ""))


def _collect(results, reruns=None):
    """Per-split rows (one per method), each split's function-space Diagnostics, the data
    hashed for provenance and the seconds per data set, from :func:`bnn.uci_splits`.

    ``reruns`` (``--rerun-failing``: one :class:`escalation.Rerun` per split, in the same
    order): the NUTS rows come from the run whose checks passed (else the last), with the
    settings it changed and the NUTS seconds of every run of that split; every other row
    stays the first run's (no sampler there to rerun). The time per data set counts every
    run."""
    rows, diags, hashes, timing = [], [], [], {}
    for i, r in enumerate(results):
        if r is None:
            continue
        name, split = r.data, r.split
        hashes += list(r.data_hash)
        rr = reruns[i] if reruns is not None else None
        runs = [x for x in rr.results if x is not None] if rr is not None else [r]
        timing[name] = timing.get(name, 0.0) + sum(x.seconds for x in runs)
        fs = r.function_space
        rn = rr.results[rr.used] if rr is not None else r  # the NUTS rows' run
        fsn = rn.function_space
        chain_ll = fsn.get("chain_test_ll_nats", [np.nan])
        weights = fsn.get("chain_stacking", {}).get("weight used", [np.nan])
        for method in bnn.METHODS:
            sampled = method in (bnn.NUTS, bnn.NUTS_STACKED)
            source = rn if sampled else r
            if method not in source.metrics:
                continue  # ADVI off, or one chain (nothing to stack)
            seconds = (sum(x.function_space.get("method_seconds", {}).get(method, np.nan)
                           for x in runs) if sampled else
                       fs.get("method_seconds", {}).get(method, np.nan))
            rows.append({"data": name, "split": split, "method": method,
                         **source.metrics[method], "seconds": seconds})
            if sampled and rr is not None:
                rows[-1].update({"reruns": rr.used,
                                 "settings": escalation.changes(rr.protocols[0],
                                                                rr.protocols[rr.used])})
            if method == bnn.NUTS_STACKED:  # the same draws, so the same checks
                rows[-1]["checks_passed"] = bool(rn.diagnostics.passed)
            if method == bnn.MCLMC:
                mc = fs["mclmc"]
                diags.append((f"{name} split {split} MCLMC", mclmc.MCLMCCheck.of(mc)))
                rows[-1].update({
                    "checks_passed": mc["passed"],
                    "mclmc_chains_passed": int(sum(mc["within_chain"]["passed"])),
                    "mclmc_chains": len(mc["within_chain"]["passed"]),
                    "mclmc_rhat_max": mc["rhat_max"], "mclmc_ess_bulk_min": mc["ess_bulk_min"],
                    "mclmc_ess_tail_min": mc["ess_tail_min"],
                    "mclmc_energy_var_per_dim_max": mc["energy_var_per_dim_max"]})
            check = _approximation_checks(fs, method)
            if check:  # a split saved before the check existed has none: no entry
                rows[-1].update({"checks_passed": all(c["passed"] for c in check),
                                 "pareto_k_max": max(c["pareto_k"] for c in check),
                                 "importance_ess": check[0]["importance_ess"]})
            if method == bnn.NUTS:
                rows[-1].update({
                    "f_rhat_max": fsn["f_rhat_max"], "f_ess_bulk_min": fsn["f_ess_bulk_min"],
                    "f_rhat_within_chain_max": fsn.get("f_rhat_within_chain_max", np.nan),
                    "chain_ll_min": min(chain_ll), "chain_ll_max": max(chain_ll),
                    "max_chain_weight": max(weights),
                    "stacking_reliable": fsn.get("chain_stacking_reliable", False),
                    "divergences": fsn["divergences"],
                    "checks_passed": bool(rn.diagnostics.passed),
                    **_chain_causes(fsn.get("within_chain"))})
        if rn.diagnostics is not None:  # None: a protocol without NUTS
            diags.append((f"{name} split {split}", rn.diagnostics))
    return rows, diags, hashes, timing


def _approximation_checks(fs: dict, method: str) -> list[dict]:
    """The PSIS posterior checks of an approximation's row on one split: a GGN Laplace row's
    (one per Gaussian: the MAP net's, or every member's for the ensemble) or ADVI's mean-field
    normal's; empty for other rows."""
    if method == bnn.GGN_LAPLACE:
        check = fs.get("ggn_laplace", {}).get("posterior_check")
        return [check] if check else []
    if method == bnn.GGN_ENSEMBLE:
        checks = list(fs.get("ggn_ensemble_posterior_check", []))
        return checks if all(checks) else []  # None: uniform weight priors, no check
    if method == bnn.ADVI:
        check = fs.get("advi_posterior_check")
        return [check] if check else []
    return []


# the summary tables' caption on the GGN Laplace rows' 'checks passed'
LAPLACE_CHECK_WORDS = (
    "On the GGN Laplace rows 'checks passed' counts the splits where the Laplace Gaussian "
    "(the MAP net's, or every member's for the ensemble) passed the PSIS posterior check: as "
    "an importance proposal for this network's posterior over its weights (its own prior, σ "
    "held at the Laplace's), Pareto k̂ at most ArviZ's threshold, 0.697 at 2000 draws (Yao et "
    "al. 2018); it is a check of what the row is, not of convergence. On the ADVI row: the "
    "same check of its mean-field normal. ")


def _laplace_check_table(per_split: pd.DataFrame) -> pd.DataFrame | None:
    """Per data set: the GGN Laplace rows' PSIS posterior checks (splits passing, median
    k-hat, the MAP net's median importance ESS); None when no split has them."""
    if "pareto_k_max" not in per_split:
        return None
    out = []
    for name, g in per_split.groupby("data", sort=False):
        one = g[(g["method"] == bnn.GGN_LAPLACE) & g["pareto_k_max"].notna()]
        mix = g[(g["method"] == bnn.GGN_ENSEMBLE) & g["pareto_k_max"].notna()]
        if one.empty:
            continue
        row = {"data": name, "splits": len(one),
               "GGN Laplace: passed": int(one["checks_passed"].astype(bool).sum()),
               "GGN Laplace: k̂ median": one["pareto_k_max"].median(),
               "GGN Laplace: importance ESS median": one["importance_ess"].median()}
        if not mix.empty:
            row.update({"GGN Laplace ensemble: passed": int(mix["checks_passed"].astype(bool).sum()),
                        "GGN Laplace ensemble: largest member k̂, median":
                            mix["pareto_k_max"].median()})
        advi = g[(g["method"] == bnn.ADVI) & g["pareto_k_max"].notna()]
        if not advi.empty:
            row.update({"ADVI: passed": int(advi["checks_passed"].astype(bool).sum()),
                        "ADVI: k̂ median": advi["pareto_k_max"].median()})
        out.append(row)
    return pd.DataFrame(out).set_index("data") if out else None


def _chain_causes(within_chain: dict | None) -> dict:
    """One split's failing chains by cause (:func:`chain_failure_cause`): a count per cause,
    and the bulk ESS of each chain that failed on R-hat alone. Empty for chains judged
    together (prior starts: no per-chain rows)."""
    if not within_chain:
        return {}
    causes = chain_failure_causes(within_chain)
    return {**{f"chains: {cause}": causes.count(cause) for cause in FAILURE_CAUSES},
            "rhat_only_ess_bulk": [float(e) for c, e in zip(causes, within_chain["ess_bulk_min"])
                                   if c == FAILURE_CAUSES[-1]]}


def _failure_causes(nuts: pd.DataFrame) -> pd.DataFrame | None:
    """Per data set: failing chains by cause, as "chains (splits)", and the median bulk ESS of
    the chains that failed on R-hat alone; None without per-chain rows."""
    columns = [f"chains: {cause}" for cause in FAILURE_CAUSES]
    if not set(columns) <= set(nuts.columns):
        return None
    out = []
    for name, g in nuts.groupby("data", sort=False):
        row = {"data": name, "splits failing": int((~g["checks_passed"].astype(bool)).sum())}
        for cause, col in zip(FAILURE_CAUSES, columns):
            row[cause] = f"{int(g[col].sum())} ({int((g[col] > 0).sum())})"
        ess = [e for es in g["rhat_only_ess_bulk"] for e in es]
        # whole draws, shown without decimals; a dash where no chain failed on R-hat alone
        row["R-hat only: median bulk ESS"] = f"{np.median(ess):.0f}" if ess else "–"
        out.append(row)
    return pd.DataFrame(out).set_index("data")


def _summary(per_split: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over splits per (data set, method), with the published rows."""
    summary = []
    for (name, method), g in per_split.groupby(["data", "method"], sort=False):
        n = len(g)
        have = (g["checks_passed"].dropna() if "checks_passed" in g
                else pd.Series(dtype=object))
        # NUTS: on every split; the GGN Laplace's PSIS check: on the splits that have it
        passed = (f"{int(have.astype(bool).sum())}/{len(have)}" if len(have) else "no checks")
        summary.append({"data": name, "method": method, "splits": n, "checks passed": passed,
                        "RMSE": g["rmse"].mean(), "RMSE se": g["rmse"].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                        "test LL": g["test_ll_nats"].mean(),
                        "test LL se": g["test_ll_nats"].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                        "test LL bits": g["test_ll_bits"].mean(),
                        "test LL bits se": (g["test_ll_bits"].std(ddof=1) / np.sqrt(n) if n > 1
                                            else np.nan),
                        "fit s/split": g["seconds"].mean()})
        if method == per_split.loc[per_split["data"] == name, "method"].iloc[-1]:
            for ref, (rmse, ll) in PUBLISHED[name].items():
                summary.append({"data": name, "method": f"published: {ref}", "splits": 20,
                                "checks passed": "",
                                "RMSE": rmse, "RMSE se": np.nan, "test LL": ll, "test LL se": np.nan,
                                "test LL bits": ll / np.log(2), "test LL bits se": np.nan})
    summary = pd.DataFrame(summary).set_index(["data", "method"])
    return summary


def _best(summary: pd.DataFrame) -> list[dict]:
    """Per data set: the method with the best mean test LL (and whether its checks passed),
    the one with the lowest RMSE, and the distance to the targets, with a sentence each."""
    out = []
    for name in summary.index.get_level_values("data").unique():
        ours = summary.loc[name]
        ours = ours[~ours.index.str.startswith("published")]
        ll_method, rmse_method = ours["test LL"].idxmax(), ours["RMSE"].idxmin()
        row = ours.loc[ll_method]
        checks = row["checks passed"]
        if checks == "no checks":
            verdict = "a method with no convergence check of its own"
        else:
            k, n = (int(v) for v in checks.split("/"))
            # which check, and what a split that fails it means for the row's numbers
            what, failed = (
                ("its mean-field normal passed the PSIS posterior check",
                 "so it is not this network's posterior") if ll_method == bnn.ADVI else
                ("its Gaussians passed the PSIS posterior check",
                 "so its numbers are those of the network linearised at its MAP nets, not of "
                 "this network's posterior") if ll_method in (bnn.GGN_LAPLACE, bnn.GGN_ENSEMBLE)
                else ("its checks passed", "so this is not a converged posterior's number"))
            verdict = (f"{what} on all {n} splits" if k == n else
                       f"{what} on only {k} of {n} splits, {failed}")
        target, source = BEST_BNN_LL[name]
        ll = float(row["test LL"])
        se = row["test LL se"]
        text = (f"{name}: the best mean test LL is {ll:.3f}"
                + (f" ± {se:.3f}" if np.isfinite(se) else " (one split: no standard error)")
                + f" nats per point, by the {ll_method} ({verdict}); "
                + f"{abs(ll - target):.3f} nats {'above' if ll >= target else 'below'} the best "
                f"published BNN-family number {target} ({source})")
        gbt = GBT_LL.get(name)
        if gbt is not None:
            text += (f", {gbt - ll:.3f} nats short of gradient-boosted trees (about {gbt})"
                     if ll < gbt else
                     f", {ll - gbt:.3f} nats above gradient-boosted trees (about {gbt})")
        text += (f". Lowest mean RMSE: {ours.loc[rmse_method, 'RMSE']:.3f}, by the {rmse_method}.")
        out.append({"data": name, "best_ll_method": ll_method, "test_ll": ll,
                    "checks passed": checks, "vs_best_published_bnn": ll - target,
                    "vs_gbt": None if gbt is None else ll - gbt,
                    "lowest_rmse_method": rmse_method, "text": text})
    return out


RERUN_WORDS = (
    "Reruns (--rerun-failing), per data set: on how many splits the chains passed at the first "
    "settings, after 1, 2 or 3 reruns, or failed after every rerun, and the settings of the "
    "runs the NUTS rows use (the first that passed, else the last). The rule takes the causes "
    "of the failing chains only, never the test data: a stuck chain gets a member pool of "
    "twice the chains; divergences in product coordinates, power 0.75 and at least 24000 "
    "draws; anything else, at least 24000 draws, then twice as many, up to 48000. A rerun "
    "keeps the split's seed. A split that passed only after a rerun had more than one chance "
    "to pass, so read the two counts apart. The NUTS rows' seconds count every run of the "
    "split; the other rows are the first run's.")


def _rerun_table(nuts: pd.DataFrame) -> pd.DataFrame:
    """Per data set: splits passing at the first settings, after k reruns, failing after
    every rerun, and how many splits' NUTS rows come from each setting."""
    out = []
    for name, g in nuts.groupby("data", sort=False):
        ok = g["checks_passed"].astype(bool)
        row = {"data": name, "passed at first settings": int((ok & (g["reruns"] == 0)).sum())}
        for k in range(1, escalation.MAX_RERUNS + 1):
            row[f"passed after {k} rerun{'s' if k > 1 else ''}"] = int((ok & (g["reruns"] == k)).sum())
        row["failing after reruns"] = int((~ok).sum())
        row["settings used (splits)"] = "; ".join(
            f"{what}: {count}" for what, count in g["settings"].value_counts(sort=False).items())
        out.append(row)
    return pd.DataFrame(out).set_index("data")


MCLMC_WORDS = (
    "MCLMC from the members, per data set: splits on which every chain passed its own checks "
    "(split R-hat of its two halves <= 1.01, its bulk and tail ESS >= 100, all in function "
    "space at the test points), chains passing out of all, the median over splits of the worst "
    "chain's split R-hat and smallest bulk ESS, and the largest mean squared energy change per "
    "step and coordinate over every chain (blackjax's tuner aims at 5e-4; larger means a "
    "larger step-size bias, which R-hat and ESS cannot see).")


def _mclmc_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per data set: the MCLMC chains' checks over splits (:data:`MCLMC_WORDS`)."""
    out = []
    for name, g in rows.groupby("data", sort=False):
        out.append({"data": name, "splits": len(g),
                    "splits with every chain passing": int(g["checks_passed"].astype(bool).sum()),
                    "chains passing": f"{int(g['mclmc_chains_passed'].sum())}/"
                                      f"{int(g['mclmc_chains'].sum())}",
                    "worst split R-hat, median": g["mclmc_rhat_max"].median(),
                    "bulk ESS min, median": g["mclmc_ess_bulk_min"].median(),
                    "energy change² per step and coordinate, max":
                        g["mclmc_energy_var_per_dim_max"].max()})
    return pd.DataFrame(out).set_index("data")


def _convergence(nuts: pd.DataFrame) -> pd.DataFrame:
    """Per data set: on how many splits the chains agree, or are each stationary but disagree."""
    conv = []
    for name, g in nuts.groupby("data", sort=False):
        stationary = g["f_rhat_within_chain_max"] <= RHAT_MAX
        mixed = g["f_rhat_max"] <= RHAT_MAX
        conv.append({"data": name, "splits": len(g),
                     "NUTS checks passed": int(g["checks_passed"].sum()),
                     "chains agree (f R-hat ≤ 1.01)": int(mixed.sum()),
                     "each chain stationary, chains disagree": int((stationary & ~mixed).sum()),
                     "chains disagree, a chain not stationary": int((~stationary & ~mixed).sum()),
                     "f R-hat median": g["f_rhat_max"].median(),
                     "within-chain R-hat median": g["f_rhat_within_chain_max"].median(),
                     "per-chain test LL spread, median": (g["chain_ll_max"] - g["chain_ll_min"]).median(),
                     "splits with reliable PSIS-LOO (stacked)": int(g["stacking_reliable"].sum()),
                     "largest chain weight used, median": g["max_chain_weight"].median(),
                     "divergences (sum)": int(g["divergences"].sum()),
                     "splits with divergences": int((g["divergences"] > 0).sum())})
    conv = pd.DataFrame(conv).set_index("data")
    return conv


def _rerun(proto, results, client, store, progress):
    """--rerun-failing: :func:`escalation.rerun_failing` on this run's splits, each rerun on
    the same client and saved in the store's rerun directories. Returns the reruns and the
    (data set, split) pairs whose rerun failed to run twice."""
    missing = []

    def run(groups):
        res, fails = bnn.uci_groups(
            [(p, pairs, store.for_rerun(p) if store is not None else None)
             for p, pairs in groups],
            client=client, on_done=lambda k, n: progress(f"rerun {k} of {n} done"))
        for (_, pairs), failed in zip(groups, fails):
            missing.extend(pairs[i] for i, _ in failed)
        return res

    def on_round(k, n):
        progress.total += n + 1
        progress(f"rerun round {k}: {n} split(s) whose chains failed, settings by cause, "
                 "all queued at once")

    return escalation.rerun_failing(results, proto, run, on_round=on_round), missing


def _run(s, names, n_splits, proto, client, store=None, rerun=False) -> int:
    n_workers = len(client.scheduler_info().get("workers", {})) if client is not None else 0
    # the page names the workers; the dashboard's local address (dead once the run ends) only
    # goes to the progress line
    where = f"{n_workers} Dask worker(s)" if client is not None else "this process"
    where_now = f"{where} ({client.dashboard_link})" if client is not None else where
    n_tasks = len(names) * n_splits
    progress = Progress(NAME, 1 + n_tasks)
    report = Report(NAME, "UCI regression benchmark: MLE net, MAP net, deep ensemble, Laplace"
                          + (", NUTS BNN" if proto.nuts else "")
                          + (", MCLMC from the members" if proto.mclmc_steps else "")
                          + (" and ADVI" if proto.advi_iterations else ""))
    if not proto.nuts:
        report.unsampled = "fitted nets and their Laplace approximations scored on test splits"
    _describe(report, s, proto, n_splits, where)
    if rerun:
        report.text("Reruns (--rerun-failing): a split whose chains fail their within-chain "
                    "checks is run again, up to 3 times, with settings chosen from why its "
                    "chains failed (the rule is in the reruns table's caption below); its NUTS "
                    "rows come from the first run that passed, else the last.")
        report.metrics["rerun_failing"] = True
    progress(f"{n_tasks} splits ({', '.join(names)}) on {where_now}")
    start = time.perf_counter()
    resumed = len(store.saved()) if store is not None else 0
    if store is not None:
        report.text(f"Each split is saved in {store.directory} as it finishes (protocol "
                    f"{store.fingerprint}); a rerun with the same settings skips finished splits"
                    + (f". This run found {resumed} saved split file(s) there." if resumed else
                       ".") , kind="note")
    results, failures = bnn.uci_splits(names, n_splits, proto, client=client,
                                       on_done=lambda k, n: progress(f"{k} of {n} splits done"),
                                       store=store)
    reruns = None
    if rerun:
        reruns, missing = _rerun(proto, results, client, store, progress)
        if missing:
            report.alert(f"{len(missing)} rerun(s) failed twice; those splits keep their last "
                         "run: " + ", ".join(f"{n} split {k}" for n, k in missing))
    wall = time.perf_counter() - start
    if failures:
        report.alert(f"{len(failures)} split(s) failed twice and are missing from the tables: "
                     + format_failures(failures))
    rows, diags, hashes, timing = _collect(results, reruns)
    if not rows:
        report.alert("Every split failed; nothing to tabulate.")
        return finish(NAME, report, s, diags, {}, s.seed, data_hash(np.zeros(1)))
    per_split = pd.DataFrame(rows)
    summary = _summary(per_split)
    nuts = per_split[per_split["method"] == bnn.NUTS]
    # the rows this run has, not a fixed list (ADVI only with --advi)
    others = [m for m in per_split["method"].unique()
              if m not in (bnn.NUTS, bnn.NUTS_STACKED, bnn.MCLMC)]
    chains_mclmc = per_split[per_split["method"] == bnn.MCLMC]
    for name, g in nuts.groupby("data", sort=False):
        k, n = int(g["checks_passed"].sum()), len(g)
        late = (int((g["checks_passed"].astype(bool) & (g["reruns"] > 0)).sum())
                if "reruns" in g else None)
        late = ("" if late is None else "; none needed a rerun" if late == 0 else
                f"; {late} of them only after a rerun with settings chosen by cause")
        report.verdict(
            f"NUTS BNN, {name}",
            (k == n, f"every within-chain check passed on {k} of {n} splits{late} (median "
                     f"worst-chain split R-hat {g['f_rhat_within_chain_max'].median():.3f}, "
                     f"{int(g['divergences'].sum())} divergences in all)"
             if proto.chains_from == "ensemble" else
             f"every check passed on {k} of {n} splits (median f R-hat "
             f"{g['f_rhat_max'].median():.3f}, {int(g['divergences'].sum())} divergences)"),
            None, None,
            what=f"{n} splits; the other methods ({', '.join(others)}) have no convergence "
                 "check of their own (the GGN Laplace rows' PSIS posterior check is tabulated "
                 "below, not a verdict: no sampler runs there to converge)")
    for name, g in chains_mclmc.groupby("data", sort=False):
        k, n = int(g["checks_passed"].astype(bool).sum()), len(g)
        report.verdict(
            f"MCLMC from the members, {name}",
            (k == n, f"every chain passed its within-chain checks on {k} of {n} splits "
                     f"({int(g['mclmc_chains_passed'].sum())} of {int(g['mclmc_chains'].sum())} "
                     f"chains; median worst-chain split R-hat {g['mclmc_rhat_max'].median():.4f})"),
            None, None,
            what=f"{n} split{'s' if n > 1 else ''}; unadjusted chains: no divergences or "
                 "E-BFMI to check, and a "
                 "step-size bias these checks cannot see")
    report.text("Mean ± standard error over splits, one table per data set (test LL: nats per "
                "point, higher is better; 'bits' = nats / ln 2). "
                + ("'checks passed': on how many splits the NUTS checks passed (within each "
                   "chain for ensemble-started chains); the mean is over every split, passed or "
                   "not, so read it with that count. " if proto.nuts else
                   ("'checks passed': NUTS was not run, so no NUTS row. " if proto.mclmc_steps
                    else "'checks passed': NUTS was not run, so no row has a convergence check. "))
                + ("On the MCLMC row: on how many splits every chain passed its within-chain "
                   "checks; its mean too is over every split. " if proto.mclmc_steps else "")
                + LAPLACE_CHECK_WORDS
                + "'fit s/split': mean wall seconds to fit that method on one split on this "
                "run's workers ("
                + ("MAP net, deep ensemble and Laplace rows: every fit of the member pool, plus "
                   "the Laplace fits; NUTS: the pool plus sampling; "
                   if proto.member_pool else
                   "MAP net: one member; last-layer and GGN Laplace: one member plus its Laplace "
                   "fit; GGN Laplace ensemble: every member plus a GGN fit around each; "
                   + ("NUTS from ensemble starts: all members plus sampling; " if proto.nuts
                      else ""))
                + "compilation, once per process, excluded). "
                "Published rows: the papers' 20-split means.")
    best = _best(summary)
    report.heading("Which method predicts best")
    for b in best:
        report.text(b["text"], kind="note")
    report.metrics["best"] = best
    for name in summary.index.get_level_values("data").unique():
        report.table(summary.loc[[name]], digits=3,
                     caption=f"{name}: mean ± standard error over splits, and published rows.")
    laplace_checks = _laplace_check_table(per_split)
    if laplace_checks is not None:
        report.table(laplace_checks, digits=3, caption=(
            "Are the approximations this network's posterior? Per data set, on how many "
            "splits the GGN Laplace's Gaussian (the MAP net's; for the ensemble every "
            "member's) passed the PSIS check, and the median over splits of the Pareto k̂ (for "
            "the ensemble, of each split's largest member k̂; ArviZ's threshold is 0.697 at "
            "2000 draws; ∞: one draw holds all the weight, no tail is left to fit) and of the "
            "importance ESS out of 2000 draws (the MAP net's Gaussian). Above the threshold "
            "the Gaussian is not this network's posterior, and the row is the posterior "
            "predictive of the network linearised at its MAP net."
            + (" ADVI: its mean-field normal over the unconstrained parameters (σ included), "
               "weighted to the posterior the same way." if proto.advi_iterations else "")))
        report.metrics["laplace_posterior_check"] = (
            laplace_checks.reset_index().to_dict(orient="records"))
    if not chains_mclmc.empty:
        table = _mclmc_table(chains_mclmc)
        report.table(table, digits=4, caption=MCLMC_WORDS)
        report.metrics["mclmc"] = table.reset_index().to_dict(orient="records")
    if nuts.empty:  # --no-nuts
        report.text("NUTS was not run (--no-nuts)"
                    + (", so no row here but MCLMC's has a convergence check." if
                       not chains_mclmc.empty else ", so no row here has a convergence check."),
                    kind="note")
        conv = pd.DataFrame()
    else:
        conv = _convergence(nuts)
        _convergence_tables(report, conv)
        if "reruns" in nuts:
            table = _rerun_table(nuts)
            report.table(table, digits=3, caption=RERUN_WORDS)
            report.metrics["reruns"] = table.reset_index().to_dict(orient="records")
        causes = _failure_causes(nuts)
        if causes is not None and causes["splits failing"].sum() > 0:
            report.table(causes, digits=3, caption=(
                "Why chains failed, per data set: failing chains (and the splits they are on) "
                "by the first cause that applies, in this order: stuck (bulk ESS < 10: the "
                "chain hardly moved), divergences, E-BFMI < 0.3, bulk or tail ESS < 100, "
                "R-hat > 1.01 only (every other check passed: the chain moved, but its two "
                "halves still differ). An R-hat-only failure at a low bulk ESS is also what a "
                "stationary chain with too few effective draws gives (benchmarks/"
                "within_chain_rhat_null.py: about 1.015 at a bulk ESS of 326 over 160 test "
                "points); a longer chain tells the two apart."))
        if causes is not None:  # zeros too: "no chain failed" is a result worth tabulating
            report.metrics["failure_causes"] = causes.reset_index().to_dict(orient="records")
    report.metrics["convergence"] = conv.reset_index().to_dict(orient="records")
    report.table(pd.DataFrame({"seconds (sum over splits)": timing, "splits": n_splits})
                 .rename_axis("data"), digits=4,
                 caption=f"Time per data set summed over its splits (all fits per split); "
                         f"wall time of this run: {wall:.0f} s on {where}"
                         + (f", with {resumed} of {n_tasks} splits loaded from {store.directory} "
                            "(fitted by earlier runs: their seconds are in the sums, their wall "
                            "time is not)." if resumed else "."))
    # two narrow tables instead of one that overflows the page (checked in a screenshot)
    report.table(per_split.set_index(["data", "split", "method"])[
        ["rmse", "test_ll_nats", "shift_auroc"]], digits=3,
        caption="Every split: test RMSE (original units), test LL (nats per point), input-shift AUROC.")
    if not nuts.empty:
        nuts_cols = ["f_rhat_max", "f_ess_bulk_min", "f_rhat_within_chain_max", "chain_ll_min",
                     "chain_ll_max", "divergences", "checks_passed"]
        rerun_cols = ["reruns", "settings"] if "reruns" in nuts else []
        report.table(nuts.set_index(["data", "split"])[nuts_cols + rerun_cols], digits=3,
                     caption="Every split, NUTS in function space: R-hat and bulk ESS of f at the "
                             "test points, the largest within-chain R-hat, the worst and best "
                             "chain's own test LL, divergent transitions, whether the NUTS checks "
                             "passed"
                             + (", and the reruns before the run shown and what they changed"
                                if rerun_cols else "")
                             + " (stacking per split: metrics.json's per_split).")
    report.metrics.update({"summary": summary.reset_index().to_dict(orient="records"),
                           "per_split": per_split.to_dict(orient="records"), "seconds": timing,
                           "wall_seconds": wall, "dask_workers": n_workers})
    failed = [label for label, dg in diags if not dg.passed]
    if failed:
        # with --mclmc a split has two samplers' checks: count runs, not splits
        runs = ("splits" if not any(label.endswith(" MCLMC") for label, _ in diags)
                else "runs (a split and a sampler each)")
        report.alert(f"Function-space diagnostics failed on {len(failed)} of {len(diags)} {runs} "
                     f"({', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}): their posterior "
                     "numbers are less reliable.")
    return finish(NAME, report, s, diags, {}, s.seed, data_hash(*hashes))


def _convergence_tables(report, conv) -> None:
    """The NUTS convergence table and, where chains are each stationary but disagree, why."""
    report.table(conv, digits=3, caption="NUTS convergence in function space, per data set. f R-hat: "
                 "the largest R-hat of the predictions at the test points over all chains; "
                 "within-chain R-hat: the same for each chain alone (split in halves), so a chain "
                 "that is stationary scores ≤ 1.01 even if it sits in a different mode from the "
                 "others; per-chain test LL spread: max − min over chains of each chain's own "
                 "predictive log-likelihood (nats per point); reliable PSIS-LOO: at most "
                 "1% of training points with Pareto k above ArviZ's good_k in every chain, "
                 "the condition for stacking the chains (elsewhere they keep equal weights); "
                 "largest chain weight used: 1/chains for equal weights.")
    if (conv["each chain stationary, chains disagree"] > 0).any():
        report.text("Where every chain is stationary but the chains disagree, the posterior is "
                    "multi-modal in function space at this budget: each chain has found a "
                    "different function that fits the training data, and the pooled draws are an "
                    "equal-weight mixture of those modes, not a sample with the posterior's own "
                    "weights across them. The 'NUTS, chains stacked' rows weight the chains by "
                    "stacking (Yao, Vehtari & Gelman 2022: each chain's PSIS-LOO on the training "
                    "split) where PSIS-LOO is reliable: a predictive mixture, still not the "
                    "posterior.",
                    kind="warn")


if __name__ == "__main__":
    raise SystemExit(entry(main))
