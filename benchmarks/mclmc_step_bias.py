"""Paired step-size bias check of ensemble-started MCLMC: the same members, the same chain
seeds, run at the tuned step size and at a fraction of it, in one process.

    python benchmarks/mclmc_step_bias.py wine-quality-red 0 [--steps 160000] [--keep 2000]
        [--scale 0.5] [--out DIR]    # DIR/<data>-<split>.json, refused if it exists

An unadjusted sampler has no accept step, so its draws carry a bias that R-hat and ESS cannot
see. Running each chain again at ``--scale`` times its tuned step (the tuned L and mass matrix
kept: :func:`models.inference.mclmc.run_chain`'s ``step_scale``) cuts the integrator's energy
error per step by about scale^6; a predictive that moves with the scale measures the bias.
``benchmarks/mclmc_probe.py --step-scale`` did this unpaired (each process trained its own
members, which differ between processes on this machine: README); here both runs start from
the same members, trained once, so the difference is the step size's alone (and the chains'
Monte Carlo error: each chain's own test LL is printed at both scales).

For each split: the members of the ``uci_benchmark`` protocol (50 ReLU units, He-normal
prior, 4 MAP nets, seed 20261124 + split), chains at scale 1 and at ``--scale`` from them
(:func:`models.inference.mclmc.sample_from_members`, chain seeds as ``uci_benchmark --mclmc``
uses them), each scored as the mixture of its chains on the test split, with every chain's
checks, energy error and own test LL.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per process; threads only contend
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SEED = 20261124  # uci_benchmark's default seed; split k runs with SEED + k


def score(chains, d, protocol) -> dict:
    """The chains' mixture and each chain on the test split, with each chain's checks
    (``bnn.score_mclmc``, as ``uci_benchmark --mclmc`` scores them) and its mean sigma."""
    from models.evaluation import bnn

    metrics, fs = bnn.score_mclmc(chains, d, protocol)
    chains_ = [dict(zip(fs["within_chain"], row)) for row in zip(*fs["within_chain"].values())]
    for c, sigma in zip(chains_, chains.draws["sigma"].mean(axis=1)):
        c["sigma_mean"] = float(sigma)
    return {"test_ll": metrics["test_ll_nats"], "rmse": metrics["rmse"],
            "seconds": chains.seconds, "step_scale": chains.step_scale,
            "chains_passed": sum(bool(c["passed"]) for c in chains_), "chains": chains_}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="a UCI data set")
    ap.add_argument("split", type=int, help="its split, 0..19")
    ap.add_argument("--steps", type=int, default=160000, help="steps per chain after tuning")
    ap.add_argument("--keep", type=int, default=2000, help="draws kept per chain")
    ap.add_argument("--scale", type=float, default=0.5, help="the smaller step's fraction")
    ap.add_argument("--out", type=Path, default=None, help="folder for the JSON result")
    args = ap.parse_args()
    if not 0 < args.scale < 1:
        raise SystemExit(f"error: --scale must be in (0, 1), got {args.scale}")
    if not 1 <= args.keep <= args.steps:
        raise SystemExit("error: --keep must be >= 1 and at most --steps")
    path = None
    if args.out is not None:
        path = args.out / f"{args.data}-{args.split}.json"
        if path.exists():
            raise SystemExit(f"error: {path} exists; pass another --out (nothing was changed)")
        args.out.mkdir(parents=True, exist_ok=True)

    from models.base import datasets
    from models.evaluation import bnn
    from models.inference import mclmc

    proto = bnn.BNNProtocol(nuts=False, sampler=bnn.BNNProtocol().sampler.replace(
        seed=SEED + args.split))
    d = datasets.uci(args.data, args.split)
    model, members = bnn.protocol_members(d, proto)
    runs = [score(mclmc.sample_from_members(model, members, args.steps, args.keep,
                                            proto.sampler.seed, step_scale=s), d, proto)
            for s in (1.0, args.scale)]
    result = {"data": args.data, "split": args.split, "steps": args.steps, "keep": args.keep,
              "seed": proto.sampler.seed, "runs": runs,
              "paired_difference": runs[1]["test_ll"] - runs[0]["test_ll"]}
    for r in runs:
        print(f"scale {r['step_scale']:g}: test LL {r['test_ll']:.4f}, RMSE {r['rmse']:.4f}, "
              f"chains passed {r['chains_passed']}/{len(r['chains'])}, "
              f"{r['seconds']:.0f} s; per chain: " + "; ".join(
                  f"LL {c['test_ll_nats']:.4f} R-hat {c['split_rhat_max']:.4f} energy "
                  f"{c['energy_var_per_dim']:.1e} sigma {c['sigma_mean']:.4f}"
                  for c in r["chains"]), flush=True)
    print(f"paired difference (scale {args.scale:g} - scale 1): "
          f"{result['paired_difference']:+.4f} nats per point")
    if path is not None:  # written whole, then renamed: never a partial file
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(json.dumps(result, indent=1, default=float))
        tmp.rename(path)


if __name__ == "__main__":
    main()
