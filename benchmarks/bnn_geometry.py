"""Why MCLMC chains from the members converge on concrete and wine and not on yacht and energy:
the posterior's curvature at each member, and, optionally, what the chains do.

    python benchmarks/bnn_geometry.py yacht,energy,concrete,wine-quality-red [--split K]
        [--chain-steps N]   # also run one MCLMC chain per member (N steps, 2000 draws kept)
                            # and print sigma and the training RMSE in eighths of its draws
        [--dense]           # and the same chains whitened by each member's Hessian
        [--out FILE]        # the results as JSON (refuses an existing FILE)

For split K's members (the ``uci_benchmark`` protocol's 50-ReLU MAP nets, as
``benchmarks/mclmc_probe.py`` trains them) it computes, at each member, the Hessian of minus
the model's log density in the weights and biases (sigma held at the member's: PyMC's
``compile_d2logp``, what ``find_hessian`` calls, compiled once per model, on the same model the
chains sample) and reports

* ``kappa``: its condition number over its positive eigenvalues, and ``negative``: how many
  eigenvalues are negative (a member is where the optimiser stopped, not always a maximum);
* ``kappa_diag``: the condition number after scaling each coordinate by its own curvature
  (H_ij / sqrt(H_ii H_jj)), what a diagonal mass matrix such as MCLMC's leaves when it scales
  each coordinate that way; ``ridges``: how many of those scaled eigenvalues are below 1e-3,
  directions in which the posterior's sd is over 30 times (its variance over 1000 times) what
  each coordinate's own curvature says (a narrow, tilted ridge).

``--chain-steps N`` also runs ``models.inference.mclmc.sample_from_members`` from the members
(the chains of ``uci_benchmark --mclmc N``), scores them as that row is scored
(``bnn.score_mclmc``: each chain's split R-hat and ESS of the test predictions, its own test
LL) and prints each chain's tuned L / step size, its energy error, and sigma and the training
RMSE (standardised units) in each eighth of its draws: a chain still sliding in sigma has not
found its stationary region. ``--dense`` also runs the same chains in coordinates whitened by
each member's Hessian (theta = member + A z, A = V |Lambda|^(-1/2) from H's eigenvectors and
eigenvalues, |Lambda| floored at 1, the order of the priors' precisions; sigma's log included):
the dense mass matrix a diagonal one cannot be, fixed at the member.

Written by hand: neither PyMC nor ArviZ reports a posterior's conditioning; the Hessian is
PyMC's.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SEED = 20261124  # uci_benchmark's default seed; split k runs with SEED + k
RIDGE = 1e-3  # a scaled eigenvalue below this is counted as a ridge direction
EIGHTHS = 8
KEEP = 2000  # draws kept per chain
FLOOR = 1.0  # --dense: the smallest curvature magnitude whitened (priors' precisions are ~1-25)


def minus_hessian(model, rvs: list):
    """The Hessian of minus ``model``'s log density in ``rvs`` at a value-scale point,
    compiled once: ``pm.find_hessian``, which this replaces, compiles it again at every call
    (PyMC's own ``compile_d2logp``; negate_output=False because PyMC 6.4 warns that its
    default negation will go away)."""
    from pymc.model.core import Point

    d2logp = model.compile_d2logp(rvs, negate_output=False)
    return lambda point: -np.asarray(d2logp(Point(point, filter_model_vars=True, model=model)),
                                     dtype=float)


def curvature(model, point: dict, held: tuple[str, ...] = ("sigma",), hessian=None) -> dict:
    """The Hessian of minus ``model``'s log density at ``point`` (values of every free
    variable, on the value scale: ``sigma_log__`` for a HalfNormal sigma) in the free
    variables not in ``held``, summarised as in the module docstring. ``hessian``: a
    :func:`minus_hessian` of those variables, to reuse its compilation across points."""
    if hessian is None:
        hessian = minus_hessian(model, [rv for rv in model.free_RVs if rv.name not in held])
    H = hessian(point)
    lam = np.linalg.eigvalsh(H)
    positive = lam[lam > 0]
    scale = np.sqrt(np.abs(np.diag(H)))
    scaled = np.linalg.eigvalsh(H / scale[:, None] / scale[None, :])
    scaled_positive = scaled[scaled > 0]
    return {"coordinates": int(len(H)), "negative": int((lam < 0).sum()),
            "kappa": float(positive.max() / positive.min()),
            "kappa_diag": float(scaled_positive.max() / scaled_positive.min()),
            "ridges": int((scaled < RIDGE).sum())}


def member_point(model, member: dict) -> dict:
    """A member (constrained values, as ``deep_ensemble`` returns them) as a value-scale point."""
    point = {}
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        v = np.asarray(member[rv.name], dtype=float)
        if value.name != rv.name and not value.name.endswith("_log__"):
            raise ValueError(f"{value.name}: only untransformed or log-transformed variables")
        point[value.name] = np.log(v) if value.name.endswith("_log__") else v
    return point


def drift(chains, d, net) -> list[dict]:
    """Per chain: tuned L / step size, energy error, and sigma and the training RMSE
    (standardised) averaged over each eighth of its kept draws (the RMSE on every 25th draw)."""
    from models.families.bnn import forward

    rows = []
    for k in range(len(chains.L)):
        sigma = chains.draws["sigma"][k]
        weights = {n: v[k] for n, v in chains.draws.items() if n != "sigma"}
        n = len(sigma) // EIGHTHS
        eighths = []
        for j in range(EIGHTHS):
            idx = range(j * n, (j + 1) * n, max(1, n // 10))
            f = np.stack([forward({m: v[i] for m, v in weights.items()}, d["X_train"],
                                  net.activation, net.depth)[:, 0] for i in idx])
            eighths.append({"sigma": float(sigma[j * n:(j + 1) * n].mean()),
                            "train_rmse": float(np.sqrt(((f - d["y_train"]) ** 2).mean(1)).mean())})
        rows.append({"L": chains.L[k], "step_size": chains.step_size[k],
                     "energy_var_per_dim": chains.energy_var_per_dim[k], "eighths": eighths})
    return rows


def geometry(name: str, split: int, chain_steps: int, dense: bool = False) -> dict:
    from models.base import datasets
    from models.evaluation import bnn

    proto = bnn.BNNProtocol(nuts=False, sampler=bnn.BNNProtocol().sampler.replace(
        seed=SEED + split))
    d = datasets.uci(name, split)
    model, members = bnn.protocol_members(d, proto)
    out = {"data": name, "split": split, "seed": SEED + split, "n_train": int(len(d["y_train"])),
           "members": []}
    hessian = minus_hessian(model, [rv for rv in model.free_RVs if rv.name != "sigma"])
    for m in members:
        out["members"].append({"sigma": float(m["sigma"]),
                               **curvature(model, member_point(model, m), hessian=hessian)})
    if chain_steps:
        from models.inference.mclmc import sample_from_members

        runs = {"diagonal": lambda: sample_from_members(model, members, chain_steps, KEEP,
                                                         SEED + split)}
        if dense:
            runs["dense"] = lambda: whitened_chains(model, members, chain_steps, KEEP,
                                                    SEED + split)
        out["chain_steps"] = chain_steps
        for label, run in runs.items():
            chains = run()
            metrics, fs = bnn.score_mclmc(chains, d, proto)
            rows = drift(chains, d, proto.net)
            within = fs["within_chain"]
            for k, row in enumerate(rows):
                row.update({key: float(within[key][k]) for key in
                            ("split_rhat_max", "ess_bulk_min", "ess_tail_min", "test_ll_nats")})
            out[label] = {"chains_s": chains.seconds, "test_ll_nats": metrics["test_ll_nats"],
                          "rmse": metrics["rmse"], "chains": rows}
    return out


def whitened_chains(model, members: list[dict], steps: int, keep: int, seed: int,
                    floor: float = FLOOR):
    """``sample_from_members``'s chains (same keys, same tuner) run in z, where the value-scale
    point is member + A z and A = V |Lambda|^(-1/2) whitens the member's Hessian (all free
    variables, eigenvalues' magnitudes floored at ``floor``). Only log-transformed variables
    (a HalfNormal sigma) are mapped back; any other transform is refused."""
    import jax
    import jax.numpy as jnp
    from pymc.sampling.jax import get_jaxified_logp

    from models.inference.mclmc import MCLMCChains, run_chain

    values = model.value_vars
    first = member_point(model, members[0])  # refuses any transform but log
    shapes = [np.shape(first[v.name]) for v in values]
    sizes = [int(np.prod(shape)) for shape in shapes]
    cuts = np.cumsum(sizes)[:-1]

    def unflatten(theta):
        return [part.reshape(shape) for part, shape in zip(jnp.split(theta, cuts), shapes)]

    logp = get_jaxified_logp(model)
    hessian = minus_hessian(model, model.free_RVs)  # all free variables, sigma's log too
    chain = jax.jit(lambda z0, key, A, t0: run_chain(
        lambda z: logp(unflatten(t0 + A @ z[0])), [z0], steps, keep, key))
    draws = {v.name: [] for v in values}
    Ls, step_sizes, energy = [], [], []
    start = time.perf_counter()
    for k, member in enumerate(members):
        point = member_point(model, member)
        theta0 = np.concatenate([np.ravel(point[v.name]) for v in values])
        lam, V = np.linalg.eigh(hessian(point))
        A = V / np.sqrt(np.maximum(np.abs(lam), floor))[None, :]
        out, params, stats = chain(jnp.zeros(len(theta0)), jax.random.key(seed * 10 + k),
                                   jnp.asarray(A), jnp.asarray(theta0))
        theta = theta0[None, :] + np.asarray(out[0]) @ A.T
        for v, part in zip(values, np.split(theta, cuts, axis=1)):
            draws[v.name].append(part.reshape(len(theta), *np.shape(first[v.name])))
        Ls.append(float(params.L))
        step_sizes.append(float(params.step_size))
        energy.append(float(stats["energy_var_per_dim"]))
    seconds = time.perf_counter() - start
    constrained = {}
    for v in values:
        stacked = np.stack(draws[v.name])
        if v.name.endswith("_log__"):
            constrained[v.name[:-len("_log__")]] = np.exp(stacked)
        else:
            constrained[v.name] = stacked
    return MCLMCChains(constrained, Ls, step_sizes, energy, steps, keep, 1.0, seconds)


def print_tables(results: list[dict]) -> None:
    print("| data | n train | coordinates | member | sigma (standardised) | negative eigenvalues "
          "| kappa | kappa after diagonal scaling | its square root | ridge directions |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for k, m in enumerate(r["members"]):
            print(f"| {r['data']} {r['split']} | {r['n_train']} | {m['coordinates']} | {k} | "
                  f"{m['sigma']:.4f} | {m['negative']} | {m['kappa']:.1e} | "
                  f"{m['kappa_diag']:.1e} | {np.sqrt(m['kappa_diag']):,.0f} | {m['ridges']} |")
    for r in results:
        for label in ("diagonal", "dense"):
            if label not in r:
                continue
            run = r[label]
            print(f"{r['data']} {r['split']}, {label} mass, {r['chain_steps']} steps: test LL "
                  f"{run['test_ll_nats']:.4f}, RMSE {run['rmse']:.4f}, {run['chains_s']:.0f} s")
            for k, c in enumerate(run["chains"]):
                e = c["eighths"]
                print(f"  chain {k}: R-hat {c['split_rhat_max']:.3f}, bulk ESS "
                      f"{c['ess_bulk_min']:.1f}, tail ESS {c['ess_tail_min']:.1f}, own test LL "
                      f"{c['test_ll_nats']:.3f}, L / step {c['L'] / c['step_size']:.0f}, energy "
                      f"error {c['energy_var_per_dim']:.1e}; sigma by eighths "
                      + " ".join(f"{x['sigma']:.4f}" for x in e) + "; training RMSE "
                      + " ".join(f"{x['train_rmse']:.4f}" for x in e))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("datasets")
    p.add_argument("--split", type=int, default=0)
    p.add_argument("--chain-steps", type=int, default=0)
    p.add_argument("--dense", action="store_true")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.chain_steps < 0 or 0 < a.chain_steps < 2000:
        p.error(f"--chain-steps must be 0 or at least 2000 (the draws kept), got {a.chain_steps}")
    from models.base.datasets import UCI

    names = a.datasets.split(",")
    for name in names:
        if name not in UCI:
            p.error(f"datasets: {name!r} is not one of {', '.join(UCI)}")
    if not 0 <= a.split < 20:
        p.error(f"--split must be 0..19 (the protocol's 20 splits), got {a.split}")
    if a.dense and not a.chain_steps:
        p.error("--dense runs chains: give --chain-steps too")
    if a.out is not None:
        for path in (a.out, a.out.with_name(a.out.name + ".part")):
            if path.exists():
                p.error(f"--out: {path} exists; choose a new file (nothing is overwritten)")
    results = [geometry(name, a.split, a.chain_steps, a.dense) for name in names]
    print_tables(results)
    if a.out is not None:
        part = a.out.with_name(a.out.name + ".part")
        part.write_text(json.dumps(results, indent=1))
        part.rename(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
