"""What the within-chain check reads on chains that ARE stationary.

The BNN check (``models.inference.within_chain_check``) takes, for each chain, the largest
split R-hat of its two halves over every test point and asks for <= 1.01, beside a bulk ESS of
at least 100 per chain. R-hat's sampling noise shrinks only as the chain's ESS grows, and the
largest of K test points' values is further above 1 than a typical one. This script measures
both on stationary AR(1) chains (no drift, no modes: a perfect sampler with autocorrelation),
so a failing real chain can be read against it: a worst-point split R-hat near this null's at
the chain's own ESS says "too few effective draws for the threshold", not "not stationary".

    python benchmarks/within_chain_rhat_null.py [DRAWS] [K ...]   # defaults: 8000, 10 31 160

Independent test points are the worst case for the maximum (a network's predictions at nearby
inputs are correlated, so a real chain has fewer effectively independent points than K).
"""

from __future__ import annotations

import sys

import numpy as np
import xarray as xr


def ar1(rng, n: int, k: int, rho: float) -> np.ndarray:
    """n draws of k independent stationary AR(1) series with lag-1 correlation rho."""
    e = rng.normal(size=(n, k))
    x = np.empty_like(e)
    x[0] = e[0] / np.sqrt(1 - rho ** 2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return x


def main(argv) -> None:
    import arviz as az

    from models.inference.diagnostics import split_rhat_one_chain

    n = int(argv[0]) if argv else 8000
    ks = [int(a) for a in argv[1:]] or [10, 31, 160]
    rng = np.random.default_rng(20261127)
    print(f"{n} draws per chain, 5 chains per row; worst point's split R-hat (each chain's "
          "largest over K points) and the smallest bulk ESS over the K points\n")
    print("| K test points | AR(1) ESS per point (n(1-rho)/(1+rho)) | smallest bulk ESS, mean "
          "| worst split R-hat: median [range] | chains at <= 1.01 |")
    print("|---|---|---|---|---|")
    for k in ks:
        for ess in (100, 250, 500, 1000, 2000):
            ratio = n / ess
            rho = (ratio - 1) / (ratio + 1)
            rhat, ess_min = [], []
            for _ in range(5):
                x = ar1(rng, n, k, rho)
                rhat.append(float(np.max(split_rhat_one_chain(x))))
                one = xr.DataTree.from_dict({"posterior": xr.Dataset(
                    {"v": (("chain", "draw", "k"), x[None])})})
                ess_min.append(float(np.min(az.ess(one, method="bulk").dataset["v"].values)))
            rhat = np.array(rhat)
            print(f"| {k} | {ess} | {np.mean(ess_min):.0f} | {np.median(rhat):.4f} "
                  f"[{rhat.min():.4f}, {rhat.max():.4f}] | {int(np.sum(rhat <= 1.01))}/5 |")


if __name__ == "__main__":
    main(sys.argv[1:])
