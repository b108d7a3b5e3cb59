"""What queuing a rerun round's protocols at once saves over running them one after another:
the measurement behind ``models.evaluation.bnn.uci_groups`` (``--rerun-failing`` rounds).

    python benchmarks/rerun_rounds.py [--workers 2] [--draws 1000] [--repeats 2]
    python benchmarks/rerun_rounds.py --replay -- UCI_BENCHMARK_OPTIONS

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

``--replay``: the same comparison on a finished protocol, without fitting. It runs
``uci_benchmark`` with the options after ``--`` (the protocol's own command, ``--splits-dir``
included; its report goes to a temporary directory) with every split loaded from the stores,
records each rerun round's groups and each split's fitting seconds (``SplitResult.seconds``:
compilation excluded), and prints the wall time of each round on ``--workers`` workers as a
greedy queue would give it (each task to the first free worker, in queue order): one batch per
setting in the splits' order (before) against one batch per round, most draws first (now).
An estimate from measured task times, not a timed run.
"""

from __future__ import annotations

import argparse
import time

SEED = 20261124


def makespan(seconds: list[float], workers: int) -> float:
    """Wall time of ``seconds`` tasks queued in this order on ``workers`` workers, each task
    going to the first free worker (how Dask hands out tasks of equal priority)."""
    free = [0.0] * workers
    for t in seconds:
        k = free.index(min(free))
        free[k] += t
    return max(free)


def replay(options: list[str], workers: int) -> None:
    import tempfile

    from models.evaluation import bnn
    from workflows import uci_benchmark

    from models.evaluation import escalation

    rounds, real = [], bnn.uci_groups

    def recording(groups, client=None, on_done=None):
        for _, pairs, store in groups:  # never fit: a replay reads a finished protocol
            for name, split in pairs:
                if store is None or store.load(name, split) is None:
                    raise SystemExit(f"error: --replay: {name} split {split} is not saved in "
                                     "the stores; replay a finished protocol")
        results, failures = real(groups, client=client, on_done=on_done)
        rounds.append([(p, [r.seconds for r in res]) for (p, _, _), res in zip(groups, results)])
        return results, failures

    bnn.uci_groups = recording
    try:
        with tempfile.TemporaryDirectory() as tmp:
            uci_benchmark.main([*options, "--out", f"{tmp}/report", "--workers", "0"])
    finally:
        bnn.uci_groups = real
    (base, first), reruns = rounds[0][0], rounds[1:]
    print(f"first pass: {len(first)} splits, {sum(first):.0f} s of fitting (not changed)")
    print("| round | settings (splits) | one batch per setting, s | one batch per round, s |")
    print("|---|---|---|---|")
    before = now = 0.0
    for k, groups in enumerate(reruns, start=1):
        b = sum(makespan(s, workers) for _, s in groups)
        queued = [t for _, s in sorted(groups, key=lambda g: -g[0].sampler.draws) for t in s]
        n = makespan(queued, workers)
        before, now = before + b, now + n
        print(f"| {k} | {'; '.join(f'{escalation.changes(base, p)} ({len(s)})' for p, s in groups)} "
              f"| {b:.0f} | {n:.0f} |")
    print(f"| all reruns | | {before:.0f} | {now:.0f} |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--replay", action="store_true",
                   help="estimate from a finished protocol's stores; uci_benchmark's options "
                        "follow --")
    args, rest = p.parse_known_args(argv)
    if args.replay:
        if rest[:1] != ["--"]:
            raise SystemExit("error: --replay: expected the protocol's uci_benchmark options "
                             "after --")
        return replay(rest[1:], args.workers)
    if rest:
        raise SystemExit(f"error: unrecognized arguments: {' '.join(rest)}")
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
