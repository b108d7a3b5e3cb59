"""Does one prior precision per parameter tensor help the GGN Laplace? The probe behind the
README's "One prior precision per layer" paragraph.

    python benchmarks/ggn_layerwise.py yacht,energy,concrete,wine-quality-red 20

For each split, the ``uci_benchmark`` protocol's members (its default 50-ReLU He-normal net,
4 MAP nets from prior draws, seed 20261124 + split, a model built per split, as
``uci_benchmark --no-nuts`` does) get two GGN Laplace approximations
each, at the member's own sigma: the project's (:func:`models.evaluation.ggn.fit_ggn_laplace`,
one prior precision alpha chosen by the Laplace evidence) and one with a precision per
parameter tensor (w1, b1, w_out, b_out; Laplace Redux's "layerwise" prior, Immer et al. 2021),
all four chosen by the same evidence. Prints one line per split: test LL (nats per point,
original units) of the GGN Laplace ensemble (equal mixture over the members) and of the first
member's GGN Laplace, both ways, and the evidence gained; then the paired differences per
data set, mean +- standard error over the splits.

The per-tensor evidence has no closed form over one eigendecomposition (the prior is no longer
a multiple of the identity), so it is maximised here by L-BFGS over the log precisions with a
Cholesky factor per step (P <= 651 weights): written by hand because laplace-torch, which does
this, works on torch modules, not on these PyMC nets.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per probe; threads only contend
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import linalg, optimize  # noqa: E402

SEED = 20261124  # uci_benchmark's default seed; split k runs with SEED + k


def layerwise_ggn(params: dict, X, y, activation: str, n_hidden: int):
    """(GGN Laplace with one evidence-chosen precision per parameter tensor, its precisions,
    its log evidence), at ``params``' own sigma."""
    from models.evaluation.ggn import GGNLaplace, flat_parameters, jacobian, parameter_names
    from models.families.bnn import forward

    sigma = float(np.asarray(params["sigma"]))
    J = jacobian(params, X, activation, n_hidden)
    theta = flat_parameters(params, n_hidden)
    sizes = [np.asarray(params[k]).size for k in parameter_names(n_hidden)]
    group = np.repeat(np.arange(len(sizes)), sizes)
    G = J.T @ J / sigma ** 2
    resid = np.asarray(y, float) - forward(params, X, activation, n_hidden)[:, 0]
    loglik = float(-0.5 * resid @ resid / sigma ** 2 - len(resid) * np.log(sigma)
                   - 0.5 * len(resid) * np.log(2 * np.pi))
    sq, P = np.bincount(group, theta ** 2), np.asarray(sizes, float)

    def negative(log_alpha):  # minus the Laplace evidence and its gradient in log alpha
        alpha = np.exp(log_alpha)
        factor = linalg.cho_factor(G + np.diag(alpha[group]))
        cov = linalg.cho_solve(factor, np.eye(len(theta)))
        value = (loglik - 0.5 * alpha @ sq + 0.5 * P @ log_alpha
                 - np.sum(np.log(np.diag(factor[0]))))
        grad = -0.5 * alpha * sq + 0.5 * P - 0.5 * alpha * np.bincount(group, np.diag(cov))
        return -value, -grad, cov

    best = optimize.minimize(lambda z: negative(z)[:2], np.zeros(len(sizes)), jac=True,
                             method="L-BFGS-B", bounds=[(-20.0, 20.0)] * len(sizes),
                             options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 2000})
    value, _, cov = negative(best.x)
    alpha = np.exp(best.x)
    laplace = GGNLaplace(cov, float(alpha.mean()), sigma, -value,
                         {k: np.asarray(v) for k, v in params.items()}, activation, n_hidden)
    return laplace, alpha, -value


def main() -> None:
    from models.base import datasets
    from models.evaluation import bnn
    from models.evaluation.ggn import fit_ggn_laplace, mixture_predictive
    from models.evaluation.scores import gaussian_predictive_metrics

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", help="comma-separated UCI data sets")
    ap.add_argument("splits", type=int, help="the first N splits of each")
    args = ap.parse_args()
    diffs: dict[str, list] = {}
    for name in args.datasets.split(","):
        for split in range(args.splits):
            start = time.perf_counter()
            proto = bnn.BNNProtocol(nuts=False, sampler=bnn.BNNProtocol().sampler.replace(
                seed=SEED + split))
            net = proto.net
            d = datasets.uci(name, split)
            _, members = bnn.protocol_members(d, proto)
            iso = [fit_ggn_laplace(p, d["X_train"], d["y_train"], net.activation, net.depth)
                   for p in members]
            per_tensor = [layerwise_ggn(p, d["X_train"], d["y_train"], net.activation, net.depth)
                          for p in members]
            row = {}
            for way, fits in (("isotropic", iso), ("per tensor", [f[0] for f in per_tensor])):
                mean, var = mixture_predictive(fits, d["X_test"])
                args_ = (d["y_test_original"], d["y_mean"], d["y_sd"])
                row[way] = (gaussian_predictive_metrics(mean, var, *args_)["test_ll_nats"],
                            gaussian_predictive_metrics(mean[:1], var[:1], *args_)["test_ll_nats"])
            gain = np.mean([f[2] - g.log_evidence for f, g in zip(per_tensor, iso)])
            diffs.setdefault(name, []).append(
                (row["per tensor"][0] - row["isotropic"][0], row["per tensor"][1] - row["isotropic"][1],
                 row["isotropic"][0], row["per tensor"][0], gain))
            print(f"{name} {split}: ensemble {row['isotropic'][0]:.4f} -> {row['per tensor'][0]:.4f}, "
                  f"one member {row['isotropic'][1]:.4f} -> {row['per tensor'][1]:.4f}; evidence "
                  f"+{gain:.1f} nats; precisions (w1, b1, w_out, b_out) of member 1 "
                  f"{np.round(per_tensor[0][1], 2).tolist()} against {iso[0].prior_precision:.2f}; "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    print("\n| data | splits | GGN Laplace ensemble, isotropic | per tensor | per tensor - isotropic "
          "| one GGN Laplace: per tensor - isotropic | evidence gained (nats) | splits better |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in diffs.items():
        a = np.asarray(rows)
        se = a.std(axis=0, ddof=1) / np.sqrt(len(a))
        print(f"| {name} | {len(a)} | {a[:, 2].mean():.3f} ± {se[2]:.3f} | {a[:, 3].mean():.3f} ± "
              f"{se[3]:.3f} | {a[:, 0].mean():+.4f} ± {se[0]:.4f} | {a[:, 1].mean():+.4f} ± {se[1]:.4f} "
              f"| {a[:, 4].mean():.1f} | {int((a[:, 0] > 0).sum())}/{len(a)} |")


if __name__ == "__main__":
    main()
