"""BNN: a Bayesian neural network with He/Xavier-scaled priors vs its MLE- and MAP-trained
counterparts on a UCI regression split: test RMSE and log-likelihood, predictive uncertainty
under an input shift, and convergence diagnostics in function space."""

from __future__ import annotations

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from models.evaluation import bnn
from models.base import datasets
from models.base.splits import Standardizer, random_split
from models.inference import ADAPTATIONS, chain_failure_causes, mclmc
from workflows import plots
from workflows.report import Report, data_hash
from workflows.options import add_mclmc, check_mclmc, check_member_pool, cli_error, parser, settings
from workflows.running import entry, finish, Progress, sentence

NAME = "bnn"
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())


# Defaults of --task regression with ensemble-started chains (measured on yacht split 0, seeds
# 20261124, 1, 2, 3, 4: see the README): 4000 draws per chain, so that each chain's split R-hat
# of its two halves is stable at the 1.01 threshold; target acceptance 0.98 (at 0.95 the
# default seed's chains had 6 divergences); 2000 tuning steps: after nutpie's default 1000 the
# low-rank mass matrix was still poor (91 draws at the maximum tree depth, a chain with bulk ESS
# 43), after 2000 no draw reached it and 3 of 5 seeds passed, not 2 of 5.
ENSEMBLE_DRAWS = 4000
ENSEMBLE_TUNE = 2000
ENSEMBLE_TARGET_ACCEPT = 0.98
# Default hidden widths per --task. Regression: 3 tanh units (measured 2026-11-27, README "A
# width whose chains converge"): with the settings above, every chain passed its within-chain
# checks on 5 of 5 seeds of yacht split 0 (5 units: 3 of 5) and on 20 of 20 yacht splits. With
# 5 units the units the data barely use leave slowly mixing directions (their input weights
# wander over the prior) and most UCI splits fail; at 3 units every unit is used.
DEFAULT_HIDDEN = {"regression": (3,), "classification": (5,), "held_out_class": (5,)}


def _jax_note(report, s) -> None:
    """With a JAX sampler, say where it ran: JAX uses a GPU when it sees one."""
    if s.sampler not in ("numpyro", "blackjax"):
        return
    try:
        import jax
    except ImportError:
        raise SystemExit(f"error: --sampler {s.sampler} needs JAX: pip install 'mlebayes[jax]'") from None
    devices = ", ".join(f"{d.platform}:{d.id}" for d in jax.devices())
    report.text(f"Sampler {s.sampler} (JAX {jax.__version__}) on {devices}.", kind="note")
    report.metrics["jax_devices"] = devices


def add_arguments(p):
    g = p.add_argument_group("network")
    g.add_argument("--task", choices=("regression", "classification", "held_out_class"),
                   default="regression",
                   help="regression: a UCI split (--dataset, --split); classification: the arsenic "
                        "wells survey (switch ~ dist100 + arsenic), 75/25 split; held_out_class: "
                        "a softmax network on iris (4 measurements) trained without one species "
                        "(--held-out), which must then look uncertain")
    g.add_argument("--held-out", default="versicolor",
                   help="species left out of training for --task held_out_class (default versicolor)")
    g.add_argument("--dataset", choices=datasets.UCI, default="yacht")
    g.add_argument("--split", type=int, default=0, help="standard split 0..19 (default 0)")
    g.add_argument("--hidden", default=None,
                   help="comma-separated hidden widths (default 3 for --task regression: the width at "
                        "which every ensemble-started chain passed its checks on 20 of 20 yacht "
                        "splits; 5 for the classifiers; the UCI protocol's 50 is "
                        "uci_benchmark's default)")
    g.add_argument("--activation", choices=bnn.ACTIVATIONS, default="tanh")
    g.add_argument("--prior", choices=bnn.PRIORS, default=None,
                   help="weight prior (default he_normal for relu, xavier_normal otherwise)")
    g.add_argument("--adaptation", choices=ADAPTATIONS, default="low_rank",
                   help="nutpie's mass-matrix adaptation (default low_rank: diagonal plus low-rank "
                        "corrections for the strongly correlated weights; diag: nutpie's default)")
    g.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance in (0, 1) (default 0.98 with ensemble-started "
                        "chains, 0.9 otherwise)")
    g.add_argument("--chains-from", choices=bnn.CHAIN_STARTS, default="ensemble",
                   help="--task regression: where the NUTS chains start. ensemble (default): "
                        "chain k at member k of a deep ensemble of MAP nets (one member per "
                        "chain), each chain judged on its own and the predictive the chains' "
                        "mixture (Sommer et al. 2024); 4000 draws per chain after 2000 tuning "
                        "steps, target acceptance 0.98, unless --draws / --tune / "
                        "--target-accept; prior: each chain at a prior draw, judged across "
                        "chains (1000 draws after 1000 tuning steps, 0.9)")
    g.add_argument("--member-pool", type=int, default=0,
                   help="--task regression: train this many MAP nets (>= --chains) and keep the "
                        "--chains with the highest training log posterior as the deep ensemble "
                        "and the chains' starts, best first (default 0: one MAP net per chain)")
    g.add_argument("--coordinates", choices=bnn.COORDINATES, default="weights",
                   help="--task regression with one tanh layer: where NUTS runs. weights "
                        "(default): the network's own weights; product: each unit's log output "
                        "weight and its output x input weights, the same posterior over "
                        "functions, where a unit's near-linear ridge runs along one coordinate "
                        "(README, 'Product coordinates')")
    g.add_argument("--product-power", type=float, default=1.0,
                   help="with --coordinates product: a in (0, 1], the input weights times the "
                        "output weight to the power a (default 1; a < 1 is partly non-centred, "
                        "milder where a unit's output weight is small)")
    g.add_argument("--ggn-noise", choices=bnn.GGN_NOISES, default="map",
                   help="--task regression: the GGN Laplace rows' noise sd. map (default): the "
                        "MAP net's (each member's); evidence: chosen with the prior precision by "
                        "the Laplace evidence, as the last-layer Laplace does")
    add_mclmc(g, "--task regression: ")
    g.add_argument("--advi", type=int, default=None,
                   help="mean-field ADVI iterations for --task regression, shown beside NUTS "
                        "(default 30000; --quick: 5000; 0: no ADVI)")
    return p


def bnn_settings(args):
    """The common settings, with 4000 draws per chain after 2000 tuning steps by default for
    ensemble-started chains."""
    ensemble = args.task == "regression" and args.chains_from == "ensemble"
    return settings(NAME, args, {"draws": ENSEMBLE_DRAWS, "tune": ENSEMBLE_TUNE}
                    if ensemble else None)


def network_options(args, quick: bool):
    try:
        hidden = (tuple(int(h) for h in args.hidden.split(",")) if args.hidden
                  else DEFAULT_HIDDEN[args.task])
    except ValueError:
        raise SystemExit(f"error: --hidden: expected comma-separated integers, got {args.hidden!r}") from None
    if min(hidden) < 1:
        raise SystemExit(f"error: --hidden: every width must be a positive integer, got {args.hidden!r}")
    prior = args.prior or ("he_normal" if args.activation == "relu" else "xavier_normal")
    return hidden, prior


def protocol(args, s, hidden, prior, advi: int = 0) -> bnn.BNNProtocol:
    """The network and NUTS settings of this workflow (low-rank adaptation only exists in
    nutpie; target acceptance 0.9 unless --target-accept), validated by SamplerConfig."""
    adaptation = args.adaptation if s.sampler == "nutpie" else "diag"
    # ensemble-started chains only for --task regression (the classifiers keep prior starts)
    chains_from = args.chains_from if args.task == "regression" else "prior"
    if args.coordinates != "weights" and args.task != "regression":
        raise SystemExit(f"error: --coordinates {args.coordinates}: only for --task regression")
    if args.ggn_noise != "map" and args.task != "regression":
        raise SystemExit(f"error: --ggn-noise {args.ggn_noise}: only for --task regression (the "
                         "classifiers have no GGN Laplace rows)")
    target_accept = args.target_accept if args.target_accept is not None else (
        ENSEMBLE_TARGET_ACCEPT if chains_from == "ensemble" else 0.9)
    pool = check_member_pool(args.member_pool, s.config.chains) if args.task == "regression" else 0
    if args.mclmc and args.task != "regression":
        raise SystemExit(f"error: --mclmc {args.mclmc}: only for --task regression")
    steps, keep = check_mclmc(args.mclmc, args.mclmc_keep)
    try:
        config = s.config.replace(adaptation=adaptation, target_accept=target_accept, init="prior")
        net = bnn.NetworkSpec(hidden, args.activation, prior)
        return bnn.BNNProtocol(net, config, advi_iterations=advi, chains_from=chains_from,
                               member_pool=pool, coordinates=args.coordinates,
                               product_power=args.product_power, ggn_noise=args.ggn_noise,
                               mclmc_steps=steps, mclmc_keep=keep)
    except ValueError as exc:
        raise cli_error(exc) from None


def _sampler_note(report, proto, s) -> None:
    o = proto.sampler
    if proto.chains_from == "ensemble":
        member = ("the k-th best of a pool of {} MAP nets, each trained from its own prior "
                  "draw and ranked by training log posterior; the MAP net is the best"
                  .format(proto.member_pool) if proto.member_pool else
                  "a MAP net trained from the k-th prior draw")
        start = (f"chain k started at member k of the deep ensemble ({member}), Sommer et al. "
                 "2024: each chain explores the mode its member found and is judged on its "
                 "own; the predictive is the chains' mixture")
    else:
        start = "chains started from prior draws (the initialisation is the prior)"
    product = "v_j" if proto.power in (None, 1) else f"v_j^{proto.power:g}"
    where = ("" if proto.power is None else
             " NUTS ran in product coordinates (--coordinates product"
             + ("" if proto.power == 1 else f" --product-power {proto.power:g}") + "): for each "
             "tanh unit j the log of its output weight, r_j = log v_j, and its input weights and "
             f"bias times {product}, u_j = {product} (w_j, b_j), with v_j's sign folded (tanh is "
             "odd and the prior symmetric), the prior carried over with the change of variables' "
             "Jacobian. "
             "It is the same posterior over functions; the draws of w1, b1 and w_out are computed "
             "from r and u, and each member is mapped into these coordinates to start its chain.")
    report.text(f"NUTS ({o.sampler}): {o.chains} chains x {o.draws} draws after {o.tune} tuning "
                f"steps, mass-matrix adaptation {o.adaptation}, target acceptance "
                f"{o.target_accept}, {start}.{where}", kind="note")


def main(argv=None) -> int:
    args = add_arguments(parser(NAME, __doc__)).parse_args(argv)
    s = bnn_settings(args)
    hidden, prior = network_options(args, s.quick)
    if args.task == "classification":
        return classification(args, s, hidden, prior)
    if args.task == "held_out_class":
        return held_out_class(args, s, hidden, prior)
    try:
        d = datasets.uci(args.dataset, args.split)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    advi = args.advi if args.advi is not None else (5000 if s.quick else 30000)
    if not 0 <= advi <= 10_000_000:
        raise SystemExit(f"error: --advi must be between 0 and 10,000,000 iterations, got {advi}")
    proto = protocol(args, s, hidden, prior, advi)  # every option checked before any work
    progress = Progress(NAME, 2)
    report = Report(NAME, f"Bayesian neural network vs MLE net: {args.dataset}, split {args.split}")
    _jax_note(report, s)
    progress(f"MLE net, MAP net and NUTS ({s.chains}x{s.draws}) for a {hidden} {args.activation} net")
    r = bnn.evaluate(d, proto)
    _describe(report, args, d, proto, r, s)
    _held_out(report, args, d, proto, r)
    _function_space_section(report, r, s)
    progress("plots")
    _prediction_plots(report, args, d, proto, r)
    checks = [("function space", r.diagnostics)]
    if "mclmc" in r.function_space:
        checks.append(("MCLMC chains", mclmc.MCLMCCheck.of(r.function_space["mclmc"])))
    trees = {"posterior": r.idata}
    if r.extra.get("mclmc") is not None:  # its draws too, so its row can be scored again
        trees["mclmc"] = r.extra["mclmc"].to_datatree()
    return finish(NAME, report, s, checks, trees, s.seed,
                  data_hash(d["X_train"], d["y_train"], d["X_test"], d["y_test_original"]))

def _describe(report, args, d, proto, r, s) -> None:
    """The data, the network, the sampler and the MLE net's status, in words."""
    hidden, prior, mle = proto.net.hidden, proto.net.prior, r.mle
    report.heading("Data and model")
    report.text(f"UCI {args.dataset}, standard split {args.split}: {len(d['X_train'])} training and "
                f"{len(d['X_test'])} test rows, {d['X_train'].shape[1]} inputs; inputs and target "
                "standardised by the training split; metrics in the target's original units.")
    var = [bnn.weight_variance(prior, a, b) for a, b in
           zip([d['X_train'].shape[1], *hidden], [*hidden, 1])]
    report.math(f"f(x) = W_out φ(... φ(W_1 x + b_1) ...) + b_out,  φ = {args.activation},  widths {list(hidden)}\n"
                f"y ~ Normal(f(x), σ²),  σ ~ HalfNormal(1),  b ~ Normal(0, 0.1²)\n"
                f"W_l ~ {prior}: per-layer weight variances {[round(v, 4) for v in var]}")
    _sampler_note(report, proto, s)
    symmetry = ("unit permutations and ReLU's rescaling symmetry" if args.activation == "relu"
                else "unit permutations and sign flips" if args.activation == "tanh"
                else "unit permutations")
    report.text(f"MLE net status: {mle.status}. {sentence(mle.message)} A network with "
                f"{mle.n_params} parameters and {len(d['X_train'])} observations typically has no "
                f"unique MLE ({symmetry}); its fitted noise "
                f"σ̂ = {float(mle.params['sigma']):.3g} (standardised units).",
                kind="warn" if mle.status != "ok" else "note")


def _held_out(report, args, d, proto, r) -> None:
    """Held-out scores of every predictor, and how ADVI's spread compares with NUTS's."""
    hidden = proto.net.hidden
    report.heading("Held-out performance")
    table = pd.DataFrame(r.metrics).T
    table.index.name = "predictor"
    report.table(table, caption="Test RMSE and mean log-likelihood per point (original units); "
                 "shift_auroc: how well the predictive sd of f separates test inputs from the same "
                 "inputs shifted by +3 training sds (0.5 = chance; a point estimate has no sd).")
    if r.extra["advi"] is not None:
        nuts_sd = float(r.extra["f_post"].std(axis=(0, 1)).mean())
        advi_f = bnn.forward(r.extra["advi"], d["X_test"], args.activation, len(hidden))[..., 0]
        advi_sd = float(advi_f.std(axis=0).mean())
        report.text(f"ADVI: mean-field normal approximation, {r['advi']['_meta']['iterations']} "
                    "Adam steps (learning rate 0.01) from the same prior draw as the MLE net's "
                    f"first start, 1000 draws. Its mean posterior sd of f at the test points is "
                    f"{advi_sd:.3g} vs NUTS {nuts_sd:.3g} (standardised units). "
                    + advi_spread_sentence(advi_sd, nuts_sd, r.metrics[bnn.ADVI]["rmse"],
                                           r.metrics[bnn.NUTS]["rmse"]), kind="note")
        check = r.function_space.get("advi_posterior_check")
        if check:
            report.text(
                f"Is ADVI's mean-field normal this network's posterior? {check['psis_draws']} "
                "draws from it, importance-weighted to the posterior over the unconstrained "
                "parameters (σ included; Yao et al. 2018), give " + _psis_numbers(check)
                + (", so it is close to it." if check["passed"] else ", so it is not."),
                kind="note")
        report.metrics["advi"] = {"f_sd_mean": advi_sd, "nuts_f_sd_mean": nuts_sd,
                                  **r.extra["advi"]["_meta"]}
    la, ggn = r.function_space["laplace"], r.function_space["ggn_laplace"]
    ggn_noise = ggn.get("noise", "map")
    members = (f"the {len(r.extra['members'])} MAP nets the chains start from"
               if r.function_space.get("chains_from") == "ensemble"
               else f"{len(r.extra['members'])} MAP nets (one per chain; the chains start at prior draws)")
    report.text(f"Deep ensemble: {members}, "
                "each trained from its own prior draw, mixed with equal weights (the first is "
                "the MAP net row). Last-layer Laplace: the MAP net's hidden layers held fixed, "
                "its output layer's exact Gaussian posterior (Bayesian linear regression on "
                "the hidden units), with the prior precision and noise sd chosen by the "
                f"evidence: precision {la['prior_precision']:.3g} (prior sd "
                f"{la['prior_precision'] ** -0.5:.3g}), σ {la['sigma']:.3g} (standardised "
                "units); its predictive is normal with the output layer's variance plus σ². "
                f"GGN Laplace: all {ggn['parameters']} of the net's "
                "weights and biases (every parameter but σ), a Gaussian around the MAP net with the generalised "
                "Gauss-Newton precision JᵀJ/σ² plus the evidence-chosen prior precision "
                f"{ggn['prior_precision']:.3g}, "
                + _ggn_noise_words(ggn, float(r.map["sigma"]))
                + "; its predictive linearises the network at the MAP weights."
                + _posterior_check_sentence(ggn.get("posterior_check"))
                + (" GGN Laplace ensemble: the same Laplace around every member of the deep "
                   "ensemble (each with its own " + ("σ" if ggn_noise == "map" else
                                                     "evidence-chosen σ") + " and evidence-chosen "
                   "prior precision), mixed with equal weights (Eschenhagen et al. 2021)."
                   if bnn.GGN_ENSEMBLE in r.metrics else ""),
                kind="note")
    report.metrics["metrics"] = r.metrics
    # the members' weights, so that the deep-ensemble and Laplace rows can be recomputed from
    # metrics.json and the split alone (the NUTS rows from the saved posterior)
    report.metrics["deep_ensemble_members"] = [
        {k: np.asarray(v).tolist() for k, v in member.items()} for member in r.extra["members"]]
    text, best = best_method_sentence(r.metrics, _method_checks(r))
    report.metrics["best_method"] = best
    report.text(text, kind="warn" if best["checks_passed"] is False else "note")


def _ggn_noise_words(ggn: dict, map_sigma: float) -> str:
    """Where the GGN Laplace's noise sd came from, with its value (standardised units)."""
    if ggn.get("noise", "map") == "map":
        return f"σ the MAP net's ({ggn['sigma']:.3g})"
    return (f"σ {ggn['sigma']:.3g}, chosen with it by the evidence (--ggn-noise evidence; the "
            f"MAP net's is {map_sigma:.3g})")


def _laplace_check_words(checks: list) -> tuple:
    """(passed, words) of a GGN Laplace row's PSIS posterior check: one Gaussian's, or every
    member's for the ensemble; (None, ...) for a result without it."""
    if not checks or any(c is None for c in checks):
        return None, ("a Gaussian around the MAP net with no PSIS check (it handles normal "
                      "weight priors only)")
    ks = [c["pareto_k"] for c in checks]
    passed = all(c["passed"] for c in checks)
    good = checks[0]["good_k"]
    what = ("its Gaussian" if len(checks) == 1 else f"each of its {len(checks)} Gaussians")
    ks_words = (f"Pareto k̂ {_k(ks[0])}" if len(ks) == 1 else
                "Pareto k̂ " + ", ".join(_k(k) for k in ks))
    if passed:
        return True, (f"{what} passed the PSIS posterior check as an importance proposal for "
                      f"this network's posterior over its weights ({ks_words}, at most "
                      f"{good:.2f})")
    return False, (f"{what} failed the PSIS posterior check ({ks_words}; above {good:.2f} "
                   "fails): it is not this network's posterior over its weights, and its "
                   "predictive is the posterior predictive of the network linearised at the "
                   "MAP net")


def _posterior_check_sentence(check: dict | None) -> str:
    """The GGN Laplace's PSIS posterior check in one sentence, with its numbers."""
    if not check:
        return ""
    return (f" Is that Gaussian this network's posterior? {check['psis_draws']} draws from it, "
            "importance-weighted to the posterior over the weights (the network's own prior, σ "
            "held at the Laplace's; Yao et al. 2018), give " + _psis_numbers(check)
            + (", so the Gaussian is close to it." if check["passed"] else
               ", so it is not, and the GGN rows are the posterior predictive of the network "
               "linearised at the MAP net, a different model from this network."))


def _psis_numbers(check: dict) -> str:
    """k-hat, importance ESS and the threshold, as the PSIS sentences give them."""
    return (f"Pareto k̂ {_k(check['pareto_k'])} and an importance ESS of "
            f"{check['importance_ess']:.1f} of {check['psis_draws']}: "
            + ("at most" if check["passed"] else "above") + f" ArviZ's {check['good_k']:.2f}")


def _advi_check_words(check: dict | None) -> tuple:
    """(passed, words) of ADVI's PSIS posterior check (Yao et al. 2018 wrote it for ADVI)."""
    if not check:
        return None, "no check recorded beyond its ELBO"
    words = (f"its mean-field normal {'passed' if check['passed'] else 'failed'} the PSIS "
             f"posterior check (Pareto k̂ {_k(check['pareto_k'])}, importance ESS "
             f"{check['importance_ess']:.1f} of {check['psis_draws']}; at most "
             f"{check['good_k']:.2f} passes)")
    return bool(check["passed"]), words + ("" if check["passed"] else
                                           ": it is not this network's posterior")


def _k(k) -> str:
    return "∞" if k is None or not np.isfinite(k) else f"{k:.2f}"


def _mle_check_words(mle) -> tuple:
    """(passed, words) of the MLE net: fit_mle's status with its own sentence. "singular"
    (a network's symmetries leave the information matrix singular) is decided before the
    gradient is looked at, so it does not say the optimiser reached a maximum: not passed."""
    words = f"optimiser status {mle.status}: {mle.message}"
    if mle.status == "singular":
        words += ("; a prediction needs no standard errors, but whether the optimiser reached "
                  "a maximum is not established")
    return mle.status == "ok", words


def _method_checks(r) -> dict:
    """Whether each predictor's own checks passed (None: it has none), in words."""
    d = r.diagnostics
    scope = ("within-chain function-space diagnostics"
             if r.function_space.get("chains_from") == "ensemble" else "function-space diagnostics")
    nuts = (bool(d.passed), scope + " " + (
        "passed" if d.passed else f"failed ({d.failures()})"))
    return {bnn.CONSTANT: (None, "a baseline with nothing to check"),
            bnn.MLE_NET: _mle_check_words(r.mle),
            bnn.MAP_NET: (None, "an optimum, with no convergence check of its own"),
            bnn.DEEP_ENSEMBLE: (None, "optima, with no convergence check of their own"),
            bnn.LAPLACE: (None, "exact for the output layer given the MAP net's hidden layers, "
                                "which it holds fixed: nothing to check"),
            bnn.GGN_LAPLACE: _laplace_check_words(
                [r.function_space["ggn_laplace"].get("posterior_check")]),
            bnn.GGN_ENSEMBLE: _laplace_check_words(
                r.function_space.get("ggn_ensemble_posterior_check", [None])),
            bnn.NUTS: nuts, bnn.NUTS_STACKED: nuts,
            bnn.MCLMC: _mclmc_check_words(r.function_space.get("mclmc")),
            bnn.ADVI: _advi_check_words(r.function_space.get("advi_posterior_check"))}


def _mclmc_section(report, fs_mclmc: dict) -> None:
    """The MCLMC chains, one row each: the checks that decide, and the sampler's numbers."""
    per_chain = pd.DataFrame(fs_mclmc["within_chain"]).set_index("chain")
    per_chain = per_chain.rename(columns={"test_ll_nats": "test LL, own predictive (nats)",
                                          "energy_var_per_dim": "energy change² per step and "
                                                                "coordinate"})
    report.table(per_chain, digits=4, caption=(
        f"MCLMC from the members (--mclmc {fs_mclmc['steps']}): one unadjusted microcanonical "
        "Langevin chain (blackjax; MILE, Sommer et al. 2025) per deep-ensemble member, on the "
        "network's own weights, its L, step size and diagonal mass tuned from its member, "
        f"{fs_mclmc['keep']} draws kept. Each chain is judged on its own, in function space at "
        "the test points: split R-hat of its two halves <= 1.01 and its bulk and tail ESS >= "
        "100 (the NUTS chains' rule, less divergences and E-BFMI, which an unadjusted sampler "
        "does not have). It has no accept step, so its draws carry a step-size bias these "
        "checks cannot see: the mean squared energy change per step and coordinate says how "
        "large the integrator's error was (blackjax's tuner aims at 5e-4). The draws are in "
        "mclmc.nc."))


def _mclmc_check_words(fs_mclmc: dict | None) -> tuple:
    """(passed, words) of the MCLMC row's within-chain checks; (None, ...) without the row."""
    if not fs_mclmc:
        return None, "not run"
    within = fs_mclmc["within_chain"]
    k, n = int(sum(within["passed"])), len(within["passed"])
    words = (f"within-chain function-space diagnostics {'passed' if k == n else 'failed'} "
             f"({k} of {n} chains; worst split R-hat {fs_mclmc['rhat_max']:.4f}, smallest bulk "
             f"ESS {fs_mclmc['ess_bulk_min']:.0f}); unadjusted chains, so a step-size bias "
             "these checks cannot see")
    return k == n, words


def advi_spread_sentence(advi_sd: float, nuts_sd: float, advi_rmse: float,
                         nuts_rmse: float) -> str:
    """ADVI's predictive spread against NUTS's, with the direction read from the numbers (the
    page used to say only that mean-field ignores correlations, which readers take to mean
    'narrower', beside a ratio that could be above 1)."""
    ratio = advi_sd / nuts_sd
    width = ("about as wide as" if 0.9 <= ratio <= 1.1
             else "wider than" if ratio > 1.1 else "narrower than")
    fit = ("" if advi_rmse <= 1.1 * nuts_rmse else
           f"; its test RMSE is {advi_rmse / nuts_rmse:.2f} times NUTS's ({advi_rmse:.3g} vs "
           f"{nuts_rmse:.3g}): the mean-field fit is off target, so its spread is no sign of "
           "calibration")
    return (f"ADVI's predictive is {width} NUTS's (ratio {ratio:.2f}){fit}. A mean-field "
            "Gaussian cannot represent the strong correlations between weights that NUTS "
            "explores, and can misplace the spread either way.")


# score -> (words, unit, higher is better, format, key in the metrics.json record)
SCORES = {"test_ll_nats": ("log-likelihood", " nats per point", True, ".3f", "by_test_ll"),
          "rmse": ("RMSE", "", False, ".3g", "by_rmse"),
          "nll_nats": ("NLL", " nats per point", False, ".4g", "by_nll"),
          "accuracy": ("accuracy", "", True, ".3f", "by_accuracy")}


def best_method_sentence(metrics: dict, checks: dict, score: str = "test_ll_nats",
                         then: str = "rmse") -> tuple[str, dict]:
    """Which predictor scores best on the test split (by ``score``: the test log-likelihood
    for regression, the NLL for a classifier; then by ``then``: RMSE, accuracy) and whether
    that predictor's own checks passed, in words; with the record for metrics.json."""
    def best_by(name):
        values = {m: v[name] for m, v in metrics.items()}
        pick = max if SCORES[name][2] else min
        return pick(values, key=values.get), values

    (first, v1), (second, v2) = best_by(score), best_by(then)
    words1, unit1, _, fmt1, key1 = SCORES[score]
    words2, unit2, _, fmt2, key2 = SCORES[then]
    passed, why = checks.get(first, (None, "no checks recorded"))
    why = why.rstrip(". ")  # a message that ends its own sentence ("... use the posterior.")
    bayes = [m for m in (bnn.NUTS, bnn.NUTS_STACKED, bnn.MCLMC) if m in v1 and m != first]
    tied = [m for m in v2 if v2[m] == v2[second]]  # accuracy ties on small test sets
    seconds = (second if len(tied) == 1 else
               ", ".join(tied[:-1]) + f" and {tied[-1]}")
    text = (f"Best on this test split by {words1}: {first} ({v1[first]:{fmt1}}{unit1}"
            + "".join(f"; {m} {v1[m]:{fmt1}}" for m in bayes) + f"); by {words2}: {seconds} "
            f"({v2[second]:{fmt2}}{unit2}{', tied' if len(tied) > 1 else ''}). Its checks: {why}"
            + (". Its numbers are not those of a checked fit: treat the ranking with caution"
               if passed is False else "") + ".")
    return text, {key1: first, key2: second, "checks_passed": passed, "checks": why}


def _classifier_best(report, r) -> None:
    """The classifier pages' best-predictor sentence (held-out NLL, then accuracy), with the
    checks of each of their predictors (MLE net, NUTS posterior; MAP net on held_out_class)."""
    d = r.diagnostics
    checks = {bnn.MLE_NET: _mle_check_words(r.mle),
              bnn.MAP_NET: (None, "an optimum, with no convergence check of its own"),
              bnn.NUTS: (bool(d.passed), "function-space diagnostics " + (
                  "passed" if d.passed else f"failed ({d.failures()})"))}
    text, best = best_method_sentence(r.metrics, checks, "nll_nats", "accuracy")
    report.metrics["best_method"] = best
    report.text(text, kind="warn" if best["checks_passed"] is False else "note")


def _function_space_section(report, r, s) -> None:
    """Function-space diagnostics (the checks that decide), chain stacking, the verdict."""
    report.heading("Diagnostics in function space")
    fs = r.function_space
    ensemble = fs.get("chains_from") == "ensemble"
    if ensemble:
        report.diagnostics(r.diagnostics, "(predictions f(x) at the test points, EACH CHAIN "
                           "ALONE: split R-hat of its two halves, its own bulk and tail ESS, "
                           "divergences, E-BFMI; these must pass)")
        per_chain = pd.DataFrame(fs["within_chain"]).set_index("chain")
        per_chain["test LL, own predictive (nats)"] = fs["chain_test_ll_nats"]
        per_chain["why it failed"] = [c or "–" for c in chain_failure_causes(fs["within_chain"])]
        report.table(per_chain, digits=3, caption="Per chain (each started at its own deep-"
                     "ensemble member): the worst test point's split R-hat and ESS of f; a "
                     "chain passes with R-hat <= 1.01, both ESS >= 100, no divergences and "
                     "E-BFMI >= 0.3. 'why it failed': the first of these that applies, in the "
                     "order stuck (bulk ESS < 10), divergences, E-BFMI, ESS, R-hat; "
                     "'R-hat > 1.01 only' at a low ESS is also what a stationary chain with too "
                     "few effective draws gives: more draws tell the two apart.")
        report.text(f"Between-chain f R-hat {fs['f_rhat_max']:.3f}, and ArviZ's nested R-hat "
                    "with each member's chain as its own superchain "
                    f"{fs['f_rhat_nested_max']:.3f}: how far apart the members' modes are, not "
                    "a convergence check here (each chain explores its own mode). The pooled "
                    "draws weight each mode 1/chains, not by its posterior mass.", kind="note")
    else:
        report.diagnostics(r.diagnostics, "(predictions f(x) at the test points: these must pass)")
    if fs.get("divergence_locations", {}).get("chain"):
        report.table(pd.DataFrame(fs["divergence_locations"]).set_index(["chain", "quantity"]),
                     digits=3, caption=(
                         "Where the divergences sit: for each chain with divergent transitions, "
                         "the quantities whose divergent draws lie furthest in that chain's own "
                         "tails (their mean percentile among the chain's draws: about 50 if "
                         "spread like them, near 0 or 100 in a tail)"))
        report.text(
            "Divergences mark where the step size is too large for the posterior's curvature. "
            "|w_out[j]| and ||wL[:, j]|| (L: the last hidden layer) are the sizes of hidden unit "
            "j's output and input weights: where the data identify only their product (always "
            "for ReLU; for tanh while the unit stays in its near-linear range), divergences at a "
            "large output and small input weight mark the narrow end of that ridge. The table "
            "is a pointer, not a test: if k divergent draws were independent and spread like "
            "the chain's own, their mean percentile would have standard deviation about "
            "29/sqrt(k) (k = 9: 10), and the most extreme of many quantities lies 2-3 of those "
            "from 50 by chance; divergences bunched in one stretch of the chain are noisier "
            "still.", kind="note")
    chain_ll = fs["chain_test_ll_nats"]
    report.table(pd.DataFrame({"value": [fs["f_rhat_within_chain_max"],
                                         min(chain_ll), max(chain_ll),
                                         fs["weight_rhat_max_raw"], fs["weight_rhat_max_canonical"],
                                         fs["divergences"], fs["max_treedepth_hits"]]},
                              index=pd.Index(["f R-hat within each chain alone (max over chains)",
                                              "test LL of the worst chain's own predictive (nats)",
                                              "test LL of the best chain's own predictive (nats)",
                                              "weight R-hat max (raw)",
                                              "weight R-hat max (hidden units canonically ordered)",
                                              "divergent transitions", "iterations at max tree depth"],
                                             name="informational")))
    if not ensemble and fs["f_rhat_max"] > 1.01 >= fs["f_rhat_within_chain_max"]:
        report.text("Every chain is stationary on its own (within-chain R-hat ≤ 1.01) but the "
                    "chains disagree: they found different functions (modes). The pooled draws "
                    "are an equal-weight mixture of those modes, not the posterior's own weights; "
                    "the per-chain test LLs above show how different the modes are.", kind="warn")
    if "chain_stacking" in fs:
        chains = pd.DataFrame(fs["chain_stacking"]).rename_axis("chain")
        chains["test LL, own predictive (nats)"] = chain_ll
        if not fs["chain_stacking_reliable"]:
            report.text("PSIS-LOO is unreliable on this fit (more than 1% of training points "
                        "with a high Pareto k in some chain; see the table below), so stacking "
                        "weights cannot be trusted: the 'NUTS, chains stacked' row keeps equal "
                        "weights and equals the pooled one.", kind="warn")
        report.table(chains, caption="Each chain as its own predictive distribution. Stacking "
                     "weights (Yao, Vehtari & Gelman 2022) maximise the leave-one-out log score "
                     "of the chains' mixture on the TRAINING split (PSIS-LOO per chain; LOO is "
                     "unreliable where Pareto k is high: if more than 1% of points in any "
                     "chain are, the weights used stay equal); the 'NUTS, chains stacked' row "
                     "above uses the 'weight used' column. When the chains mix, stacking has "
                     "little to choose and this row matches the pooled one; when they sit in different modes it "
                     "down-weights the modes that predict held-out training points badly. The "
                     "test column is for reading only: the weights never see the test split.")
    if "mclmc" in fs:
        _mclmc_section(report, fs["mclmc"])
    report.text("Weight-space R-hat is not a convergence check for a network: permuting hidden "
                "units (and, for tanh, flipping signs) gives the same function, so chains may "
                "explore different but equivalent modes. Ordering units canonically removes part "
                "of that; the predictions are what must agree across chains.", kind="note")
    report.metrics["function_space"] = fs
    report.section_record("function space").update(
        {"diagnostics": r.diagnostics.to_frame()["value"].to_dict(), "passed": r.diagnostics.passed})
    _verdict(report, r, s)
    if not r.diagnostics.passed:
        report.alert("Function-space diagnostics failed (see the table): "
                     + ", ".join(k for k, ok in r.diagnostics.checks.items() if not ok)
                     + (". A --quick run is too short for these ESS thresholds." if s.quick
                        else "."))
    if "mclmc" in fs:
        passed, words = _mclmc_check_words(fs["mclmc"])
        report.verdict("MCLMC from the members", (passed, words), None, None,
                       what=f"{len(fs['mclmc']['within_chain']['chain'])} unadjusted chains, "
                            "each judged on its own")
        if not passed:
            report.alert(f"MCLMC {mclmc.MCLMCCheck.of(fs['mclmc']).reason}.")


def energy_centred_by_chain(idata) -> tuple[xr.Dataset, float]:
    """(sample_stats with each chain's energy minus its own mean, the span of those means).

    Chains started at different ensemble members sit in modes whose mean energies differ (by
    87 on the default yacht page, where their mean log densities differ by 80): pooled, the
    marginal energy is a mixture of the chains' offsets, far wider than the transitions, which
    reads as the low E-BFMI that the per-chain values beside it deny. E-BFMI is per chain and
    blind to a shift, so ArviZ's energy plot gets each chain centred on its own mean."""
    stats = idata["sample_stats"].to_dataset()
    means = stats["energy"].mean("draw")
    stats["energy"] = stats["energy"] - means
    return stats, float(means.max() - means.min())


def _prediction_plots(report, args, d, proto, r) -> None:
    """Test-set predictions, epistemic sd in and out of distribution, rank and energy plots."""
    hidden, mle = proto.net.hidden, r.mle
    f = r.extra["f_post"].reshape(-1, r.extra["f_post"].shape[-1]) * d["y_sd"] + d["y_mean"]
    order = np.argsort(d["y_test_original"])
    fig, ax = plt.subplots(figsize=(10, 3.8))
    idx = np.arange(len(order))
    lo, hi = np.quantile(f[:, order], [0.025, 0.975], axis=0)
    ax.fill_between(idx, lo, hi, color="#1b9e77", alpha=0.25, label="posterior 95% band of f")
    ax.plot(idx, f[:, order].mean(0), color="#1b9e77", label="posterior mean")
    mle_f = bnn.forward(mle.params, d["X_test"], args.activation, len(hidden))[:, 0]
    ax.plot(idx, mle_f[order] * d["y_sd"] + d["y_mean"], "x", color="#d95f02", label="MLE net")
    if r.extra["advi"] is not None:
        fa = bnn.forward(r.extra["advi"], d["X_test"], args.activation, len(hidden))[..., 0]
        fa = fa * d["y_sd"] + d["y_mean"]
        alo, ahi = np.quantile(fa[:, order], [0.025, 0.975], axis=0)
        ax.plot(idx, alo, color="#7570b3", lw=0.8, ls="--", label="ADVI 95% band of f")
        ax.plot(idx, ahi, color="#7570b3", lw=0.8, ls="--")
    ax.plot(idx, d["y_test_original"][order], "k.", label="observed")
    ax.set(xlabel="test points, sorted by observed value", ylabel="target (original units)")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    report.figure(fig, "Test-set predictions.")
    fig, ax = plt.subplots(figsize=(6, 3))
    bins = np.linspace(0, max(r.extra["sd_out"].max(), r.extra["sd_in"].max()), 30)
    ax.hist(r.extra["sd_in"], bins=bins, alpha=0.6, label="test inputs", color="#1b9e77")
    ax.hist(r.extra["sd_out"], bins=bins, alpha=0.6, label="shifted +3 sd", color="#7570b3")
    ax.set(xlabel="posterior sd of f (standardised units)", ylabel="points")
    ax.legend(frameon=False)
    fig.tight_layout()
    report.figure(fig, "Epistemic uncertainty in and out of distribution.")
    sub = r.extra["f_post"][..., :4]
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"f_test": (("chain", "draw", "test_point"), sub)},
        coords={"chain": np.arange(sub.shape[0]), "draw": np.arange(sub.shape[1]),
                "test_point": np.arange(sub.shape[2])})})
    report.figure(az.plot_rank(tree), "Rank ECDF of f at 4 test points (ArviZ), all chains "
                  "ranked together" + (": chains started at different ensemble members sit in "
                  "different modes, so their curves separate (and the p-values are small) by "
                  "design; each chain's own convergence is the per-chain table's."
                  if r.function_space.get("chains_from") == "ensemble" else "."))
    running = r.extra["running_lppd"]
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    t = np.arange(1, running.shape[1] + 1)
    for c in range(running.shape[0] - 1):
        ax.plot(t, running[c], lw=1, label=f"chain {c}")
    ax.plot(t, running[-1], color="black", lw=2, label="all chains (mixture)")
    ax.set(xlabel="draws used (after warm-up)", ylabel="test log predictive density (nats/point)")
    lo = np.quantile(running[:, running.shape[1] // 10:], 0.01)
    ax.set_ylim(lo - 0.05 * abs(lo), None)
    ax.legend(frameon=False, fontsize=8, ncol=3)
    report.figure(fig, "Running test log predictive density: each chain's predictive from its "
                  "first t draws, and the mixture of all chains (black). A curve still drifting "
                  "at the right has not settled; flat curves at different heights are chains in "
                  "modes that predict differently. The y-axis starts after the first tenth of "
                  "the draws.")
    if r.function_space.get("chains_from") == "ensemble":
        stats, spread = energy_centred_by_chain(r.idata)
        report.figure(plots.energy(xr.DataTree.from_dict({"sample_stats": stats})),
                      "Energy plot (ArviZ), each chain's energy centred on its own mean: the "
                      "chains start at different ensemble members and sit in modes whose mean "
                      f"energies span {spread:.3g}, so pooled uncentred they would show that "
                      "spread, not how well each chain moves between energy levels (E-BFMI, "
                      "left, is per chain either way).")
    else:
        report.figure(plots.energy(r.idata), "Energy plot (ArviZ).")


def _function_space(report, r, what: str) -> None:
    """The function-space diagnostics table, and an alert if any check failed."""
    report.diagnostics(r.diagnostics, f"({what} at the test points: these must pass)")
    if not r.diagnostics.passed:
        report.alert("Function-space diagnostics failed: " + ", ".join(
            k for k, ok in r.diagnostics.checks.items() if not ok) + ".")


def _verdict(report, r, s) -> None:
    """The network's verdict for the first screen: convergence judged in function space
    (the predictions), the MLE net's status; no likelihood-based fit test here."""
    d = r.diagnostics
    per = " per chain" if r.function_space.get("chains_from") == "ensemble" else ""
    text = (f"function space{per}: max R-hat {d.r_hat_max:.3f}, min bulk/tail ESS "
            f"{d.ess_bulk_min:.0f}/{d.ess_tail_min:.0f}, {d.divergences} divergences")
    if not d.passed:
        text = "failed: " + d.failures()
    mle = r.mle
    report.verdict("Bayesian neural network", (d.passed, text), None,
                   (mle.status == "ok", f"MLE net: {mle.status}"))


def _finish_classifier(report, s, r, X, y) -> int:
    report.metrics["metrics"] = r.metrics
    report.metrics["function_space"] = r.function_space
    report.section_record("function space")["passed"] = r.diagnostics.passed
    _verdict(report, r, s)
    return finish(NAME, report, s, [("function space", r.diagnostics)],
                  {"posterior": r.idata}, s.seed, data_hash(X, y))


def classification(args, s, hidden, prior) -> int:
    X, y = datasets.wells()
    # a quarter held out (755 of 3020 households), rows in the permutation's order
    train, test = random_split(len(y), s.seed, 0.25, sort=False)
    Xv = X.to_numpy(dtype=float)
    Xs = Standardizer.fit(Xv[train])(Xv)
    progress = Progress(NAME, 1)
    progress(f"MLE net and NUTS ({s.chains}x{s.draws}) for a {hidden} {args.activation} classifier")
    proto = protocol(args, s, hidden, prior)
    r = bnn.evaluate_classification(Xs[train], y.to_numpy()[train], Xs[test], y.to_numpy()[test],
                                    proto)
    report = Report(NAME, "Bayesian neural network vs MLE net: classification (arsenic wells)")
    _jax_note(report, s)
    report.text(f"Arsenic wells: switch ~ dist100 + arsenic, standardised by the training split; "
                f"{len(train)} training and {len(test)} test households.")
    report.math(f"P(y = 1 | x) = logit⁻¹(f(x)),  f = {args.activation} network, widths {list(hidden)},  "
                f"weights ~ {prior},  biases ~ Normal(0, 0.1²)")
    _sampler_note(report, proto, s)
    mle = r.mle
    report.text(f"MLE net status: {mle.status}. {sentence(mle.message)}",
                kind="warn" if mle.status != "ok" else "note")
    table = pd.DataFrame(r.metrics).T
    table.index.name = "predictor"
    report.table(table, caption="Held-out accuracy, NLL per point, Brier, ECE (10 bins) and the "
                 "AUROC with which predictive entropy flags inputs shifted by +3 sds.")
    _classifier_best(report, r)
    _function_space(report, r, "predictions")
    return _finish_classifier(report, s, r, X, y)


def held_out_class(args, s, hidden, prior) -> int:
    X, y = datasets.iris(("sepal_length", "sepal_width", "petal_length", "petal_width"))
    species = sorted(y.unique())
    if args.held_out not in species:
        raise SystemExit(f"error: --held-out: {args.held_out!r} is not an iris species "
                         f"(choose from {species})")
    progress = Progress(NAME, 2)
    progress(f"MLE net, MAP net and NUTS ({s.chains}x{s.draws}) for a {hidden} {args.activation} "
             f"softmax net without {args.held_out}")
    proto = protocol(args, s, hidden, prior)
    r = bnn.evaluate_held_out_class(X, y, args.held_out, proto)
    report = Report(NAME, f"Bayesian neural network vs MLE net: is an unseen class flagged? "
                          f"(iris without {args.held_out})")
    _jax_note(report, s)
    report.text(f"Iris, four measurements standardised by the training rows. Trained on "
                f"{' and '.join(r['classes'])} ({r['n_train']} flowers); in-distribution test: "
                f"{r['n_test']} held-back flowers of those species; out of distribution: all "
                f"{r['n_ood']} {args.held_out} flowers, a species the network never saw. "
                "A network can only answer with the classes it knows, so the question is whether "
                "its predictive entropy (at most 1 bit for two classes) rises on the unseen species.")
    report.math(f"P(y = k | x) = softmax(f(x))_k,  f = {args.activation} network, widths "
                f"{list(hidden)},  weights ~ {prior},  biases ~ Normal(0, 0.1²)")
    _sampler_note(report, proto, s)
    mle = r.mle
    report.text(f"MLE net status: {mle.status}. {sentence(mle.message)}",
                kind="warn" if mle.status != "ok" else "note")
    table = pd.DataFrame(r.metrics)  # metrics as rows: three columns stay readable
    table.index.name = "metric"
    report.table(table, caption=f"In-distribution test: accuracy, NLL per flower, multi-class "
                 f"Brier, top-label ECE ({r['ece_bins']} bins). Out of distribution: mean "
                 "predictive entropy (bits) and the AUROC with which it (and, for the posterior, "
                 "the mutual information, its epistemic part) separates the unseen species from "
                 "the test flowers (0.5 = chance); ood_confident_95: the share of unseen flowers "
                 "put in one known species with probability > 0.95, i.e. confidently wrong. "
                 "AUROC only ranks: a net can rank well and still be nearly certain everywhere.")
    _classifier_best(report, r)
    _function_space(report, r, "class probabilities")
    progress("plots")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=True)
    bins = np.linspace(0, 1, 21)
    for ax, (label, (h_in, h_out, _, _)) in zip(axes, r.extra["entropies"].items()):
        ax.hist(h_in / np.log(2), bins=bins, alpha=0.6, color="#1b9e77",
                label=f"test ({' / '.join(r['classes'])})")
        ax.hist(h_out / np.log(2), bins=bins, alpha=0.6, color="#7570b3",
                label=f"unseen: {args.held_out}")
        ax.set(title=f"{label}: AUROC {r['metrics'][label]['ood_auroc_entropy']:.2f}",
               xlabel="predictive entropy (bits)")
    axes[0].set_ylabel("flowers")
    axes[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    report.figure(fig, "Predictive entropy on test flowers of the training species and on the "
                  "unseen species. A point estimate that is sure everywhere cannot flag it.")
    return _finish_classifier(report, s, r, X, y)


if __name__ == "__main__":
    raise SystemExit(entry(main))
