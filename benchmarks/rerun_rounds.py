"""What queuing a rerun round's protocols at once saves over running them one after another:
the measurement behind ``models.evaluation.bnn.uci_groups`` (``--rerun-failing`` rounds).

    python benchmarks/rerun_rounds.py [--workers 2] [--draws 1000] [--repeats 2]

A rerun round usually holds several protocols with one or two splits each (on the one-protocol
UCI run: energy's pool of 8, energy's power 0.75, wine at 24,000 draws). Before, each protocol's
splits went to the Dask workers as one batch and the next batch waited for it, so a batch of one
split left the other workers idle. This runs the same round, three protocols with one yacht
split each (power 1, power 0.75, a pool of 8 members; 3 tanh units, ensemble starts, the
protocol's sampler settings but ``--draws`` draws and 1000 tuning steps), both ways on the same
``--workers`` workers: "one batch per protocol" (one :func:`uci_groups` call per protocol, what
the old code did) and "one batch per round" (one call), alternating A B B A per repeat, and
prints each wall time. Every run compiles its own models (a fresh cache key per protocol), as a
rerun round does. Splits 0, 1, 2 run with seed 20261124 + split.
"""

from __future__ import annotations

import argparse
import time

SEED = 20261124


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    for name in ("workers", "draws", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"error: --{name}: expected a positive integer")

    from models.evaluation import bnn
    from models.inference import SamplerConfig
    from models.inference.distributed import dask_client

    base = bnn.BNNProtocol(bnn.NetworkSpec((3,), "tanh", "xavier_normal"),
                           SamplerConfig(draws=args.draws, tune=1000, chains=4, seed=SEED,
                                         adaptation="low_rank", target_accept=0.98,
                                         init="prior"),
                           coordinates="product", advi_iterations=0)
    groups = [(base, [("yacht", 0)], None),
              (base.replace(product_power=0.75), [("yacht", 1)], None),
              (base.replace(member_pool=8), [("yacht", 2)], None)]
    print(f"{len(groups)} protocols x 1 yacht split, {args.workers} Dask workers, "
          f"{args.draws} draws")
    print("| way | wall s |\n|---|---|", flush=True)
    with dask_client(args.workers, quiet=True) as client:
        for _ in range(args.repeats):
            for way in ("per protocol", "per round", "per round", "per protocol"):
                start = time.perf_counter()
                if way == "per round":
                    bnn.uci_groups(groups, client=client)
                else:
                    for g in groups:
                        bnn.uci_groups([g], client=client)
                print(f"| one batch {way} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
