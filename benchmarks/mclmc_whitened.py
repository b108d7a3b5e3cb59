"""Does a dense preconditioner make the fixed-sigma chains mix? MCLMC at each member's evidence
sigma, in coordinates whitened by that member's Hessian or by a warm-up chain's draws (the
README's "Whitened by the member's Hessian, or by the chain's own draws" paragraph, after "A
noise floor"; measured there: no better than the plain chains).

    python benchmarks/mclmc_whitened.py yacht 0 --steps 40000 [--keep 2000] [--out FILE.json]
        [--metric draws --warmup W]   # whiten by a warm-up chain's draws, not the Hessian

The members, seeds and sigma are those of ``mclmc_probe.py --sigma evidence`` (the
``uci_benchmark`` protocol's 50-ReLU members of split K, seed 20261124 + K; each chain at its
member's empirical-Bayes sigma, ``fit_ggn_laplace(..., noise="evidence").sigma``). Chain k
runs in z, where the weights are ``theta_k + C_k z`` and ``C_k C_k' = H_k^{-1}`` with ``H_k =
J'J / sigma_k^2 + diag(prior precision)``: the GGN of the likelihood at the member and the
model's own prior precision (He-normal variances), the Hessian of the log posterior up to the
residual term. Were the posterior about the member near that Gaussian, z would be near a
standard normal and MCLMC would mix in a few L. The chain is the library's (``run_chain``:
blackjax's tuner and kernel, its diagonal mass matrix on top, in z), its log density the PyMC
model's (``get_jaxified_logp``) with sigma's value filled in. Scored and checked as the probe
scores its chains (``score_mclmc``: each chain alone on the predictions at the test points).

``--metric draws --warmup W`` whitens by the chain's own draws instead: a plain chain of W
steps at the same sigma from the member (diagonal mass matrix, the probe's chain), the sample
covariance of its kept draws shrunk 10 % towards its diagonal, and the main chain of
``--steps`` steps in those coordinates from the warm-up's last draw (a dense mass matrix
learned from the chain, once). W + ``--steps`` is then the chain's whole length.

Written by hand because ``sample_from_members`` takes starts and fixed values, not an affine
map per chain; this is a one-off measurement, not a method.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per run; threads only contend
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SEED = 20261124  # uci_benchmark's and mclmc_probe.py's: split k runs with SEED + k


SHRINK = 0.1  # draws metric: the sample covariance pulled this far towards its diagonal


def whitened(name: str, split: int, steps: int, keep: int, metric: str = "hessian",
             warmup: int = 0) -> dict:
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from pymc.sampling.jax import get_jaxified_logp

    from models.base import datasets
    from models.evaluation import bnn
    from models.evaluation.ggn import fit_ggn_laplace, jacobian, parameter_names
    from models.inference.mclmc import MCLMCChains, require_jax, run_chain

    require_jax()
    proto = bnn.BNNProtocol(nuts=False, sampler=bnn.BNNProtocol().sampler.replace(
        seed=SEED + split))
    net, d = proto.net, datasets.uci(name, split)
    model, members = bnn.protocol_members(d, proto)
    weights = parameter_names(net.depth)
    if [v.name for v in model.value_vars] != [*weights, "sigma_log__"]:
        raise SystemExit("error: the model's value variables are not the network's weights "
                         "and log sigma in the Jacobian's order")
    # the model's own prior precision per weight (Normal priors: the RV's last input is its sd)
    prior_precision = np.concatenate([np.ravel(np.broadcast_to(
        1 / np.asarray(model[n].owner.inputs[-1].eval(), float) ** 2,
        np.shape(members[0][n]))) for n in weights])
    logp = get_jaxified_logp(model)
    start = time.perf_counter()
    draws, rows = {n: [] for n in [*weights, "sigma"]}, []
    Ls, step_sizes, energy = [], [], []
    for k, member in enumerate(members):
        sigma = fit_ggn_laplace(member, d["X_train"], d["y_train"], net.activation, net.depth,
                                noise="evidence").sigma
        theta, unravel = ravel_pytree([jnp.asarray(member[n], float) for n in weights])
        key = jax.random.key(proto.sampler.seed * 10 + k)
        if metric == "hessian":
            J = jacobian(member, d["X_train"], net.activation, net.depth)
            H = J.T @ J / sigma ** 2 + np.diag(prior_precision)
            C = np.linalg.cholesky(np.linalg.inv(H))
        else:  # the covariance of a plain warm-up chain's own draws, shrunk to its diagonal
            def plain(x, unravel=unravel, sigma=sigma):
                return logp([*unravel(x[0]), jnp.log(sigma)])

            warm = jax.jit(lambda pos, key: run_chain(plain, pos, warmup, keep, key))
            key, warm_key = jax.random.split(key)
            xs = np.asarray(warm([theta], warm_key)[0][0])
            S = np.cov(xs.T)
            C = np.linalg.cholesky((1 - SHRINK) * S + SHRINK * np.diag(np.diag(S)))
            theta = jnp.asarray(xs[-1])  # the main chain starts where the warm-up ended
        C_j = jnp.asarray(C)

        def density(z, theta=theta, unravel=unravel, C_j=C_j, sigma=sigma):
            return logp([*unravel(theta + C_j @ z[0]), jnp.log(sigma)])

        chain = jax.jit(lambda pos, key, density=density: run_chain(density, pos, steps,
                                                                     keep, key))
        z, params, stats = chain([jnp.zeros_like(theta)], key)
        x = np.asarray(theta)[None] + np.asarray(z[0]) @ C.T
        for n, v in zip(weights, jax.vmap(unravel)(jnp.asarray(x))):
            draws[n].append(np.asarray(v))
        draws["sigma"].append(np.full(keep, sigma))
        Ls.append(float(params.L))
        step_sizes.append(float(params.step_size))
        energy.append(float(stats["energy_var_per_dim"]))
        eig = np.linalg.eigvalsh(C @ C.T)  # the metric's covariance
        rows.append({"sigma": sigma, "sqrt_condition": float(np.sqrt(eig[-1] / eig[0]))})
    chains = MCLMCChains({n: np.stack(v) for n, v in draws.items()}, Ls, step_sizes, energy,
                         steps, keep, 1.0, time.perf_counter() - start)
    mc, fs = bnn.score_mclmc(chains, d, proto)
    within = fs["within_chain"]
    for c, row in enumerate(rows):
        row.update({"rhat": within["split_rhat_max"][c], "bulk": within["ess_bulk_min"][c],
                    "tail": within["ess_tail_min"][c], "L": Ls[c], "step": step_sizes[c],
                    "energy_var_per_dim": energy[c], "test_ll": within["test_ll_nats"][c],
                    "passed": bool(within["passed"][c])})
    return {"data": name, "split": split, "steps": steps, "keep": keep, "seed": SEED + split,
            "metric": metric, "warmup": warmup,
            "mclmc_ll": mc["test_ll_nats"], "mclmc_rmse": mc["rmse"],
            "chains_passed": sum(r["passed"] for r in rows), "rhat_max": fs["rhat_max"],
            "chains_s": chains.seconds, "chains": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="a UCI data set")
    ap.add_argument("split", type=int)
    ap.add_argument("--steps", type=int, default=40000, help="steps per chain after tuning")
    ap.add_argument("--keep", type=int, default=2000, help="draws kept per chain (thinned)")
    ap.add_argument("--metric", choices=("hessian", "draws"), default="hessian",
                    help="whiten by the member's Hessian, or by the covariance of a plain "
                    "warm-up chain's draws (--warmup steps, not counted in --steps)")
    ap.add_argument("--warmup", type=int, default=0, help="--metric draws: warm-up steps")
    ap.add_argument("--out", type=Path, default=None, help="a new JSON file for the result")
    args = ap.parse_args()
    if args.keep < 1 or args.steps < args.keep:
        raise SystemExit("error: --keep must be >= 1 and at most --steps")
    if args.out is not None and args.out.exists():
        raise SystemExit(f"error: --out {args.out} exists; pass a new file")
    if args.out is not None and args.out.parent.exists() and not args.out.parent.is_dir():
        raise SystemExit(f"error: --out {args.out}: {args.out.parent} is not a folder")
    if (args.metric == "draws") != (args.warmup >= args.keep):
        raise SystemExit("error: --metric draws needs --warmup of at least --keep steps, and "
                         "--warmup is for --metric draws only")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    r = whitened(args.data, args.split, args.steps, args.keep, args.metric, args.warmup)
    if args.out is not None:  # written whole, then renamed: never a partial file
        tmp = args.out.with_name(f".{args.out.name}.part")
        tmp.write_text(json.dumps(r, indent=1))
        tmp.rename(args.out)
    for c in r["chains"]:
        print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in c.items()))
    print(f"{r['data']} {r['split']}, {r['metric']} metric, {r['warmup']} + {r['steps']} "
          f"steps: test LL {r['mclmc_ll']:.3f}, "
          f"{r['chains_passed']}/4 chains pass, worst R-hat {r['rhat_max']:.3f}, "
          f"{r['chains_s']:.0f} s")


if __name__ == "__main__":
    main()
