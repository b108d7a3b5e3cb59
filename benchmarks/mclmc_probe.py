"""Ensemble-started microcanonical Langevin (MCLMC) chains on the published 50-ReLU UCI
protocol, where NUTS costs about 3.4 core-hours per split here: the probe behind the README's
"Microcanonical Langevin from the members" paragraph (MILE, Sommer et al. 2025).

    python benchmarks/mclmc_probe.py yacht,energy 20 [--steps 20000] [--keep 2000]
        [--from K] [--out DIR]      # splits K..19; DIR: one JSON per split, resumable
        [--stored-only]             # tabulate what DIR holds so far, run nothing
        [--adjusted]                # Metropolis-adjusted MCLMC instead (no step-size bias)
        [--step-scale S]            # unadjusted: run at S times the tuned step size (bias check)
        [--sigma S]                 # fix the noise sd at S (standardised y): weights only
        [--sigma evidence]          # each chain at its member's evidence sigma (empirical Bayes)

For each split, the ``uci_benchmark`` protocol's members (50 ReLU units, He-normal prior,
4 MAP nets from prior draws, seed 20261124 + split, as ``uci_benchmark --no-nuts`` and
``benchmarks/ggn_layerwise.py`` train them) start one chain each of blackjax's MCLMC (unadjusted:
no Metropolis step; isokinetic McLachlan integrator) on the same PyMC model's log posterior
(``pymc.sampling.jax.get_jaxified_logp``: the weights and log sigma). Each chain tunes its own
L, step size and diagonal mass matrix from its member (``blackjax.mclmc_find_L_and_step_size``,
its default fractions of ``--steps``: 10 % + 10 % + 10 %), then runs ``--steps`` steps and keeps
``--keep`` evenly thinned draws. Scored as the uci_benchmark rows are: the chains' equal mixture
of Gaussians on the test split (original units), against the deep ensemble of the same members.
Checked as ensemble-started NUTS chains are, each chain alone on the network's predictions at
the test inputs (``models.inference.diagnostics``: split R-hat of its two halves <= 1.01,
bulk and tail ESS >= 100); there are no divergences or E-BFMI to check: an unadjusted sampler
has no accept step, so its draws carry a step-size bias that these checks cannot see.
``--adjusted`` runs Metropolis-adjusted MCLMC instead (``run_adjusted_chain``: no bias;
``--steps`` then counts Metropolis transitions, and a divergence also fails a chain). The GGN
Laplace ensemble on the same members (``uci_benchmark``'s best row: one GGN Laplace around each
member at its own sigma, mixed equally) is scored beside it, so each split gives a paired
difference. ``--step-scale S`` (unadjusted only) keeps the tuned L and mass matrix and runs at
S times the tuned step size: with S = 0.5 the integrator's energy error per step falls by
about 2^6 (blackjax's tuner models its variance as step^6), so a predictive that moves with S
measures the step-size bias the checks above cannot see. ``--sigma S`` fixes the noise sd at
S (in standardised y units; ``sample_from_members(..., fixed={"sigma": S})`` on the same
model) and the chains move in the weights alone: it separates the cost of sigma's coupling to
the weights from that of the weight posterior at a given noise level (the README's fixed-sigma
sweep). ``--sigma evidence`` runs each chain at its own member's empirical-Bayes sigma (the
one that maximises the GGN Laplace evidence around that member, as
``fit_ggn_laplace(..., noise="evidence")`` chooses it); the values are stored per chain.

``--out DIR`` writes each split's result to ``DIR/<data>-<split>.json`` as it finishes (with
its steps, keep, seed, sampler and step scale); a rerun with the same settings loads it
instead of running it again, and refuses if the stored file was run with other settings, so a
long run survives being killed and can be split between processes (``--from``). The tables are
printed from the results.

The chains and their checks are the library's (``models.inference.mclmc.sample_from_members``
with ``run_chain`` or ``run_adjusted_chain``, scored by ``models.evaluation.bnn.score_mclmc``):
what ``uci_benchmark --mclmc`` runs, jit-compiled once per split (the data are constants of
the compiled log density). ``MCLMC_DEBUG=1`` also prints each chain's row (R-hat, ESS, L,
step size, sigma in the first and last quarter of its draws, its own test LL, and the mean
squared energy change per step and coordinate, or for adjusted chains the acceptance rate,
divergences and integration steps per transition).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per probe; threads only contend
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SEED = 20261124  # uci_benchmark's default seed; split k runs with SEED + k

# the chains are the library's: models.inference.mclmc (uci_benchmark --mclmc runs the same)
from models.inference.mclmc import ADJUSTED_STATS  # noqa: E402


def probe(name: str, split: int, settings: dict) -> dict:
    """One split: its members, a chain from each (``settings``: steps, keep, adjusted,
    step_scale, sigma: None, or the noise sd the chains are run at), the chains' mixture, the
    GGN Laplace ensemble and deep ensemble beside it. The chains and their scores are the library's (``sample_from_members``, ``score_mclmc``:
    what ``uci_benchmark --mclmc`` runs); this adds the paired rows and each chain's sigma."""
    from models.base import datasets
    from models.evaluation import bnn
    from models.evaluation.ggn import fit_ggn_laplace, mixture_predictive
    from models.evaluation.scores import gaussian_predictive_metrics, predictive_regression_metrics
    from models.families.bnn import forward
    from models.inference.mclmc import sample_from_members

    start = time.perf_counter()
    proto = bnn.BNNProtocol(nuts=False, sampler=bnn.BNNProtocol().sampler.replace(
        seed=SEED + split))
    net = proto.net
    d = datasets.uci(name, split)
    model, members = bnn.protocol_members(d, proto)
    t_members = time.perf_counter() - start
    steps, keep, adjusted = settings["steps"], settings["keep"], settings["adjusted"]
    fixed = settings.get("sigma")
    held = None  # sigma free
    if fixed == "evidence":  # each chain at its member's empirical-Bayes sigma
        held = [fit_ggn_laplace(p, d["X_train"], d["y_train"], net.activation, net.depth,
                                noise="evidence").sigma for p in members]
    elif fixed is not None:
        held = float(fixed)
    t_evidence = time.perf_counter() - start - t_members
    # sigma held: the chains move in the weights alone, and their draws carry the held sigma
    chains = sample_from_members(model, members, steps, keep, seed=proto.sampler.seed,
                                 step_scale=settings["step_scale"], adjusted=adjusted,
                                 fixed=None if held is None else {"sigma": held})
    mc, fs = bnn.score_mclmc(chains, d, proto)
    within = fs["within_chain"]
    sigma = chains.draws["sigma"]
    rows = []
    for c in range(len(members)):
        row = {"rhat": within["split_rhat_max"][c], "bulk": within["ess_bulk_min"][c],
               "tail": within["ess_tail_min"][c], "L": within["L"][c],
               "step": within["step_size"][c],
               # a drifting chain: sigma's mean in the first and last quarter of its draws
               "sigma_quarters": (float(sigma[c, :keep // 4].mean()),
                                  float(sigma[c, -(keep // 4):].mean()))}
        row.update({k: within[k][c] for k in
                    (ADJUSTED_STATS if adjusted else ("energy_var_per_dim",))})
        row.update({"test_ll": within["test_ll_nats"][c], "passed": bool(within["passed"][c])})
        rows.append(row)
    y, m, sd = d["y_test_original"], d["y_mean"], d["y_sd"]
    fits = [fit_ggn_laplace(p, d["X_train"], d["y_train"], net.activation, net.depth)
            for p in members]
    ggn = gaussian_predictive_metrics(*mixture_predictive(fits, d["X_test"]), y, m, sd)
    f_members = np.stack([forward(p, d["X_test"], net.activation, net.depth)[:, 0]
                          for p in members])
    de = predictive_regression_metrics(f_members, np.array([float(p["sigma"]) for p in members]),
                                       y, m, sd)
    moving = {k: v for k, v in model.initial_point().items()
              if held is None or k != model.rvs_to_values[model["sigma"]].name}
    extra = ({} if fixed != "evidence" else
             {"sigma_evidence": [float(v) for v in held], "evidence_s": t_evidence})
    return {"data": name, "split": split, **settings, "seed": SEED + split, **extra,
            "coordinates": sum(int(np.size(v)) for v in moving.values()),
            "mclmc_ll": mc["test_ll_nats"], "mclmc_rmse": mc["rmse"],
            "de_ll": de["test_ll_nats"], "de_rmse": de["rmse"], "ggn_ll": ggn["test_ll_nats"],
            "chains_passed": sum(r["passed"] for r in rows), "rhat_max": fs["rhat_max"],
            "bulk_min": fs["ess_bulk_min"], "tail_min": fs["ess_tail_min"],
            "members_s": t_members, "chains_s": chains.seconds, "chains": rows}


def sampler_column(r: dict) -> str:
    """The sampler's own numbers for one split: the largest mean squared energy change of an
    unadjusted chain; the lowest acceptance rate, divergences and integration steps per draw
    of adjusted chains."""
    c = r["chains"]
    if r.get("sigma") == "evidence":
        held = r["sigma_evidence"]
        return (f"sigma fixed at each member's evidence value ({min(held):.3f}-{max(held):.3f}); "
                + sampler_column({**r, "sigma": None}))
    if r.get("sigma") is not None:
        return f"sigma fixed at {r['sigma']}; " + sampler_column({**r, "sigma": None})
    if not r.get("adjusted", False):
        # files written before 2026-11-28 19:00 hold the energy change per step, not per
        # coordinate: divided here by the model's number of coordinates
        per_dim = [x["energy_var_per_dim"] if "energy_var_per_dim" in x
                   else x["energy_var"] / coordinates(r) for x in c]
        return f"energy var per dim max {max(per_dim):.1e} (target 5e-4)"
    return (f"accept min {min(x['accept'] for x in c):.2f}, divergences "
            f"{sum(int(x['divergences']) for x in c)}, steps/draw "
            f"{min(x['steps_per_draw'] for x in c):.0f}-{max(x['steps_per_draw'] for x in c):.0f}")


def coordinates(r: dict) -> int:
    """The number of coordinates a split's chains moved in (weights, biases, log sigma):
    stored with the split since the per-coordinate energy change was; otherwise rebuilt from
    the protocol's model on that split's training data."""
    if "coordinates" in r:
        return int(r["coordinates"])
    from models.base import datasets
    from models.evaluation import bnn

    d = datasets.uci(r["data"], r["split"])
    model = bnn.BNNProtocol(nuts=False).net.build_model(d["X_train"], d["y_train"])
    return sum(int(np.size(v)) for v in model.initial_point().values())


# what a file written before the key means
DEFAULTS = {"adjusted": False, "step_scale": 1.0, "sigma": None}


def stored(out: Path | None, name: str, split: int, settings: dict) -> dict | None:
    """The split's stored result when it was run with these ``settings`` (steps, keep,
    adjusted, step_scale, sigma) and its seed; None when there is none. Exits with a one-line error
    when the file holds a run with other settings."""
    if out is None or not (out / f"{name}-{split}.json").exists():
        return None
    path = out / f"{name}-{split}.json"
    r = json.loads(path.read_text())
    want = {**settings, "seed": SEED + split}
    have = {k: r.get(k, DEFAULTS.get(k)) for k in want}
    if have != want:
        raise SystemExit(f"error: {path} was run with {have}, not {want}: pass another --out")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", help="comma-separated UCI data sets")
    ap.add_argument("splits", type=int, help="run splits up to N - 1 of each")
    ap.add_argument("--from", dest="first", type=int, default=0, help="first split (default 0)")
    ap.add_argument("--steps", type=int, default=20000, help="steps per chain after tuning")
    ap.add_argument("--keep", type=int, default=2000, help="draws kept per chain (thinned)")
    ap.add_argument("--adjusted", action="store_true",
                    help="adjusted (Metropolis-corrected) MCLMC; --steps counts its transitions")
    ap.add_argument("--step-scale", type=float, default=1.0,
                    help="unadjusted chains: run at this multiple of the tuned step size")
    ap.add_argument("--sigma", default=None,
                    help="fix the noise sd at this value (standardised y), or 'evidence': each "
                    "chain at its member's empirical-Bayes sigma; chains in the weights")
    ap.add_argument("--stored-only", action="store_true",
                    help="tabulate the splits stored in --out; run none (a run in progress)")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for one JSON per split (created; finished splits are loaded)")
    args = ap.parse_args()
    if args.keep < 1 or args.steps < args.keep:
        raise SystemExit("error: --keep must be >= 1 and at most --steps")
    if not 0 < args.step_scale <= 1 or (args.adjusted and args.step_scale != 1):
        raise SystemExit("error: --step-scale must be in (0, 1], and 1 with --adjusted, got "
                         f"{args.step_scale}")
    if args.sigma is not None and args.sigma != "evidence":
        given = args.sigma
        try:
            args.sigma = float(given)
        except ValueError:
            args.sigma = float("nan")
        if not args.sigma > 0:  # also refuses NaN and words
            raise SystemExit(f"error: --sigma must be a number > 0 or 'evidence', got {given}")
    if not 0 <= args.first < args.splits:
        raise SystemExit(f"error: --from must be in [0, {args.splits}), got {args.first}")
    if args.stored_only and (args.out is None or not args.out.is_dir()):
        raise SystemExit("error: --stored-only needs --out, an existing folder of results")
    if args.out is not None:
        if args.out.exists() and not args.out.is_dir():
            raise SystemExit(f"error: --out {args.out} exists and is not a folder")
        args.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list] = {}
    print("| data | split | MCLMC test LL | GGN Laplace ensemble | deep ensemble | chains passed "
          "| worst R-hat | bulk ESS min | tail ESS min | sampler | members s | chains s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.datasets.split(","):
        for split in range(args.first, args.splits):
            settings = {"steps": args.steps, "keep": args.keep, "adjusted": args.adjusted,
                        "step_scale": args.step_scale, "sigma": args.sigma}
            r = stored(args.out, name, split, settings)
            if r is None and args.stored_only:
                continue
            if r is None:
                r = probe(name, split, settings)
                if args.out is not None:  # written whole, then renamed: never a partial file
                    tmp = args.out / f".{name}-{split}.json.part"
                    tmp.write_text(json.dumps(r, indent=1))
                    tmp.rename(args.out / f"{name}-{split}.json")
            if os.environ.get("MCLMC_DEBUG"):
                print(r["chains"], flush=True)
            rows.setdefault(name, []).append(r)
            print(f"| {name} | {split} | {r['mclmc_ll']:.4f} | {r['ggn_ll']:.4f} "
                  f"| {r['de_ll']:.4f} | {r['chains_passed']}/4 | {r['rhat_max']:.4f} "
                  f"| {r['bulk_min']:.0f} | {r['tail_min']:.0f} | {sampler_column(r)} "
                  f"| {r['members_s']:.0f} | {r['chains_s']:.0f} |", flush=True)
    print("\n| data | splits | MCLMC test LL | GGN Laplace ensemble | MCLMC - GGN ensemble "
          "| splits MCLMC better | MCLMC RMSE | splits with every chain passing | chains passing "
          "| chains s/split |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rs in rows.items():
        a = np.array([[r["mclmc_ll"], r["ggn_ll"], r["mclmc_ll"] - r["ggn_ll"], r["mclmc_rmse"]]
                      for r in rs])
        se = a.std(axis=0, ddof=1) / np.sqrt(len(a)) if len(a) > 1 else np.full(4, np.nan)
        chains = [c for r in rs for c in r["chains"]]
        every = sum(r["chains_passed"] == len(r["chains"]) for r in rs)
        print(f"| {name} | {len(a)} | {a[:, 0].mean():.3f} ± {se[0]:.3f} "
              f"| {a[:, 1].mean():.3f} ± {se[1]:.3f} | {a[:, 2].mean():+.3f} ± {se[2]:.3f} "
              f"| {int((a[:, 2] > 0).sum())}/{len(a)} | {a[:, 3].mean():.3f} | {every}/{len(rs)} "
              f"| {sum(c['passed'] for c in chains)}/{len(chains)} "
              f"| {np.mean([r['chains_s'] for r in rs]):.0f} |")


if __name__ == "__main__":
    main()
