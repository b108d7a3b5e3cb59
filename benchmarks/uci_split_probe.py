"""A few UCI splits of the 3-tanh-unit protocol, in chosen coordinates, through the package:
the probe behind the README's "Partly non-centred product coordinates" table. One process
per (split, coordinates), one core each; each prints one markdown row as it finishes.

    python benchmarks/uci_split_probe.py wine-quality-red 3,15 --powers 0.25,0.5,0.75,1
    python benchmarks/uci_split_probe.py yacht 0 --powers weights,1 --draws 4000

``--powers``: a in (0, 1] for product coordinates u = v^a (w, b) (``BNNProtocol(coordinates=
"product", product_power=a)``), or ``weights`` for the network's own weights. The protocol
is the ``uci_benchmark`` one (``--hidden 3 --activation tanh --adaptation low_rank
--target-accept 0.98 --tune 2000 --advi 0``, chains at the deep ensemble's members, seed
20261124 + split, or ``--seed`` + split), with ``--draws`` (default 24000) draws per chain.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

SEED = 20261124  # the workflows' default seed; split k runs with SEED + k, as uci_benchmark does


def probe(name: str, split: int, power: str, draws: int, seed: int = SEED) -> str:
    from models.base import datasets
    from models.evaluation import bnn
    from models.inference import SamplerConfig

    where = {"coordinates": "weights"} if power == "weights" else {
        "coordinates": "product", "product_power": float(power)}
    proto = bnn.BNNProtocol(bnn.NetworkSpec((3,), "tanh", "xavier_normal"),
                            SamplerConfig(draws=draws, tune=2000, chains=4, seed=seed + split,
                                          adaptation="low_rank", target_accept=0.98, init="prior"),
                            **where)
    start = time.perf_counter()
    r = bnn.evaluate(datasets.uci(name, split), proto, cores=1)
    dg, fs = r.diagnostics, r.function_space
    failed = [k for k, ok in dg.checks.items() if not ok]
    return (f"| {name} | {split} | {power} | {'pass' if not failed else 'fail: ' + ', '.join(failed)} "
            f"| {fs['divergences']} | {dg.r_hat_max:.4f} | {dg.ess_bulk_min:.0f} | {dg.ess_tail_min:.0f} "
            f"| {r.metrics[bnn.NUTS]['test_ll_nats']:.4f} | {fs['phase_seconds']['nuts']:.0f} "
            f"| {time.perf_counter() - start:.0f} |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("splits", help="comma-separated split numbers, e.g. 3,15")
    p.add_argument("--powers", default="1", help="comma-separated: a in (0, 1] or 'weights'")
    p.add_argument("--draws", type=int, default=24000)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--seed", type=int, default=SEED,
                   help=f"split k runs with seed + k (default {SEED}, the protocol's)")
    args = p.parse_args(argv)
    splits = [int(s) for s in args.splits.split(",")]
    powers = [a.strip() for a in args.powers.split(",")]
    for a in powers:  # refuse a bad power before any fitting
        if a != "weights" and not 0 < float(a) <= 1:
            raise SystemExit(f"error: --powers: {a!r} is neither 'weights' nor a number in (0, 1]")
    print(f"seed {args.seed} + split")
    print("| data | split | power a | within-chain checks | divergences | worst chain R-hat "
          "| bulk ESS (min) | tail ESS (min) | NUTS test LL | NUTS s | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    with ProcessPoolExecutor(args.processes) as pool:
        jobs = [pool.submit(probe, args.dataset, s, a, args.draws, args.seed) for s in splits for a in powers]
        for job in as_completed(jobs):
            print(job.result(), flush=True)


if __name__ == "__main__":
    main()
