"""Ensemble-started microcanonical Langevin (MCLMC) chains on a PyMC model's posterior
(optional: needs the ``jax`` extra, ``pip install 'mlebayes[jax]'``; ``make setup`` installs it).

MILE (Sommer et al. 2025) starts one unadjusted MCLMC chain (Robnik et al. 2023) at each member
of a trained deep ensemble and judges each chain on its own, as ensemble-started NUTS chains are
judged here (:func:`models.inference.within_chain_check`). On the published 50-ReLU UCI nets,
where NUTS costs about 3.4 core-hours per split on a 2-core machine, these chains pass their
within-chain checks on most splits (README, "Microcanonical Langevin from the members").

Written by hand around blackjax because PyMC 6.4 offers no MCLMC sampler (``pm.sample``'s
``nuts_sampler="blackjax"`` is NUTS only). The chain is blackjax's own: its tuner
(``blackjax.mclmc_find_L_and_step_size``: L, step size and a diagonal mass matrix, with its
default 10 % + 10 % + 10 % of the steps), its kernel (isokinetic McLachlan integrator) and its
``run_inference_algorithm`` loop pattern, thinned inside a ``lax.scan``; the log density is
the PyMC model's own (``pymc.sampling.jax.get_jaxified_logp``: the same function NUTS samples).

Unadjusted chains have no accept step: their draws carry a step-size bias that R-hat and ESS
cannot see. Each chain's ``energy_var_per_dim`` (mean squared energy change per step and
coordinate; the tuner aims at 5e-4) says how large the integrator's error was, and
``step_scale`` < 1 runs the chain at a fraction of the tuned step size to measure the bias
directly (the README's step-size check). ``adjusted=True`` runs Metropolis-adjusted MCLMC
instead (:func:`run_adjusted_chain`: no step-size bias, each transition many integration steps),
the README's adjusted probe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm

from models.inference.diagnostics import PER_CHAIN_ESS_MIN, RHAT_MAX, chain_mixing

ENERGY_TARGET = 5e-4  # blackjax's tuner: mean squared energy change per step and coordinate
TARGET_ACCEPT = 0.9  # adjusted MCLMC's target acceptance: blackjax's own tests use 0.9
ADJUSTED_STATS = ("accept", "divergences", "steps_per_draw")  # run_adjusted_chain's, per chain


def require_jax() -> None:
    """Raise ImportError in one line when jax or blackjax is missing."""
    try:
        import blackjax  # noqa: F401
        import jax  # noqa: F401
    except ImportError as exc:
        raise ImportError("MCLMC needs jax and blackjax, the optional 'jax' extra: "
                          "pip install 'mlebayes[jax]' (make setup installs it); "
                          f"missing: {exc.name}") from None


def _thinned_scan(one, carry, run_key, keep: int, thin: int):
    """``keep * thin`` steps of ``one`` (carry, key) -> (carry, position) as a nested
    ``lax.scan``, keeping the last position of every ``thin`` steps (thinned inside the scan,
    so the unkept positions are never stored). Returns (the final carry, the kept positions)."""
    import jax

    def block(carry, ks):
        carry, positions = jax.lax.scan(one, carry, ks)
        return carry, [p[-1] for p in positions]

    keys = jax.random.split(run_key, keep * thin).reshape(keep, thin)
    return jax.lax.scan(block, carry, keys)


def run_chain(logdensity, position: list, steps: int, keep: int, key, step_scale: float = 1.0):
    """One MCLMC chain from ``position`` (a list of arrays, as ``logdensity`` takes it): tuned,
    then ``steps`` steps at ``step_scale`` times the tuned step size, ``keep`` draws kept
    (one every ``steps // keep`` steps). Jit it whole (the chain is one ``lax.scan``). Returns
    (draws: a list of (keep, ...) arrays in ``position``'s order, blackjax's tuned parameters,
    {"energy_var_per_dim": the mean squared energy change per step and coordinate})."""
    import blackjax
    import jax

    tune_key, run_key, init_key = jax.random.split(key, 3)
    state = blackjax.mcmc.mclmc.init(position=position, logdensity_fn=logdensity,
                                     rng_key=init_key)

    def kernel(inverse_mass_matrix):
        return blackjax.mcmc.mclmc.build_kernel(
            logdensity_fn=logdensity, inverse_mass_matrix=inverse_mass_matrix,
            integrator=blackjax.mcmc.integrators.isokinetic_mclachlan)

    state, params, *_ = blackjax.mclmc_find_L_and_step_size(
        mclmc_kernel=kernel, num_steps=steps, state=state, rng_key=tune_key,
        diagonal_preconditioning=True)
    sampler = blackjax.mclmc(logdensity, L=params.L, step_size=params.step_size * step_scale,
                             inverse_mass_matrix=params.inverse_mass_matrix)
    thin = steps // keep

    def one(carry, k):
        state, energy_sq = carry
        state, info = sampler.step(k, state)
        return (state, energy_sq + info.energy_change ** 2), state.position

    (state, energy_sq), draws = _thinned_scan(one, (state, 0.0), run_key, keep, thin)
    dim = sum(int(jax.numpy.size(p)) for p in position)  # static shapes: a Python int
    return draws, params, {"energy_var_per_dim": energy_sq / (keep * thin) / dim}


def run_adjusted_chain(logdensity, position: list, steps: int, keep: int, key):
    """One adjusted MCLMC chain (Metropolis-corrected, MAMS: Robnik et al. 2025) from
    ``position``: L, step size and diagonal mass tuned by
    ``blackjax.adjusted_mclmc_find_L_and_step_size`` at :data:`TARGET_ACCEPT` (10 % + 10 % +
    10 % of the transitions), then ``steps`` Metropolis transitions, each of a random number of
    integration steps with mean L / step size (blackjax's ``rescale``), ``keep`` draws kept.
    Jit it whole. Returns (draws, blackjax's tuned parameters, {"accept": the mean acceptance
    rate, "divergences": their count, "steps_per_draw": mean integration steps per
    transition})."""
    import blackjax
    import jax
    import jax.numpy as jnp
    from blackjax.mcmc.adjusted_mclmc_dynamic import rescale

    tune_key, run_key, init_key = jax.random.split(key, 3)
    state = blackjax.mcmc.adjusted_mclmc_dynamic.init(
        position=position, logdensity_fn=logdensity, random_generator_arg=init_key)

    def kernel(rng_key, state, avg_num_integration_steps, step_size, inverse_mass_matrix):
        return blackjax.mcmc.adjusted_mclmc_dynamic.build_kernel(
            integrator=blackjax.mcmc.integrators.isokinetic_mclachlan,
            integration_steps_fn=lambda k: jnp.ceil(
                jax.random.uniform(k) * rescale(avg_num_integration_steps)),
            inverse_mass_matrix=inverse_mass_matrix,
        )(rng_key=rng_key, state=state, step_size=step_size, logdensity_fn=logdensity)

    state, params, _ = blackjax.adjusted_mclmc_find_L_and_step_size(
        mclmc_kernel=kernel, num_steps=steps, state=state, rng_key=tune_key,
        target=TARGET_ACCEPT, frac_tune1=0.1, frac_tune2=0.1, frac_tune3=0.1,
        diagonal_preconditioning=True)
    sampler = blackjax.adjusted_mclmc_dynamic(
        logdensity, step_size=params.step_size, inverse_mass_matrix=params.inverse_mass_matrix,
        integration_steps_fn=lambda k: jnp.ceil(
            jax.random.uniform(k) * rescale(params.L / params.step_size)))
    thin = steps // keep

    def one(carry, k):
        state, accept, divergent, n_steps = carry
        state, info = sampler.step(k, state)
        return (state, accept + info.acceptance_rate, divergent + info.is_divergent,
                n_steps + info.num_integration_steps), state.position

    (state, accept, divergent, n_steps), draws = _thinned_scan(
        one, (state, 0.0, 0, 0), run_key, keep, thin)
    n = keep * thin
    return draws, params, {"accept": accept / n, "divergences": divergent,
                           "steps_per_draw": n_steps / n}


@dataclass
class MCLMCChains:
    """What :func:`sample_from_members` returns: ``draws`` (free variable name -> (chain,
    draw, ...) array, on the variables' own constrained scale), and per chain its tuned L and
    step size, its mean squared energy change per step and coordinate (NaN for adjusted
    chains, whose accept step removes the integrator's bias), and the seconds of all chains
    (jit compilation included: the log density's data are compiled in). Adjusted chains
    (``adjusted``) carry ``stats``: :data:`ADJUSTED_STATS` name -> one value per chain."""

    draws: dict
    L: list
    step_size: list
    energy_var_per_dim: list
    steps: int
    keep: int
    step_scale: float
    seconds: float
    dims: dict = None  # variable name -> its dims in the model (None: unnamed)
    coords: dict = None
    adjusted: bool = False
    stats: dict = None  # adjusted chains: accept, divergences, steps_per_draw per chain

    def to_datatree(self):
        """The draws as an ArviZ DataTree (a ``posterior`` group, labelled with the model's
        dims and coords where it names them), with the chains' settings and sampler numbers
        as attributes, so a saved file can be scored again without this process."""
        import xarray as xr

        data = {}
        for name, values in self.draws.items():
            dims = tuple((self.dims or {}).get(name) or
                         (f"{name}_dim_{i}" for i in range(values.ndim - 2)))
            data[name] = (("chain", "draw", *dims), values)
        used = {d for v in data.values() for d in v[0]}
        coords = {k: np.asarray(v) for k, v in (self.coords or {}).items() if k in used}
        tree = xr.DataTree.from_dict({"posterior": xr.Dataset(data, coords=coords)})
        kind = "adjusted" if self.adjusted else "unadjusted"
        tree.attrs.update({"sampler": f"blackjax MCLMC ({kind}), one chain per start",
                           "steps": self.steps, "keep": self.keep,
                           "step_scale": self.step_scale, "L": list(self.L),
                           "step_size": list(self.step_size)})
        if self.adjusted:
            tree.attrs.update({k: list(v) for k, v in self.stats.items()})
        else:
            tree.attrs["energy_var_per_dim"] = list(self.energy_var_per_dim)
        return tree


def _transforms(model: pm.Model) -> dict:
    """value variable name -> (free variable name, its transform or None, the variable)."""
    out = {}
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        out[value.name] = (rv.name, model.rvs_to_transforms.get(rv), rv)
    return out


def _apply(transform, rv, array, forward: bool) -> np.ndarray:
    """A transform's forward (constrained -> value space) or backward map of a numpy array.
    For transforms whose parameters are constants of the graph (the log of a scale prior, as
    in every model here). One whose parameters depend on another free variable (a Uniform
    whose bound is itself a parameter) would be evaluated at a random draw of that variable,
    not the chain's value: :func:`_check_transforms` refuses those first."""
    import pytensor.tensor as pt

    inputs = rv.owner.inputs
    x = pt.as_tensor(np.asarray(array, dtype=float))
    out = transform.forward(x, *inputs) if forward else transform.backward(x, *inputs)
    return np.asarray(out.eval())


def _check_transforms(model: pm.Model) -> None:
    """Refuse, in one line, a model whose transforms depend on other free variables."""
    from pytensor.graph.traversal import ancestors

    free = set(model.free_RVs)
    for rv in model.free_RVs:
        if model.rvs_to_transforms.get(rv) is None:
            continue
        others = [v.name for v in ancestors(rv.owner.inputs) if v in free and v is not rv]
        if others:
            raise ValueError(f"{rv.name}: its transform depends on {', '.join(others)}; "
                             "sample_from_members handles transforms with constant "
                             "parameters only")


def _fixed_values(fixed: dict, transforms: dict, value_names: list, chains: int,
                  shapes: dict) -> list:
    """``fixed`` (free variable name -> one value, or a list of one per chain) as, per chain,
    the list of the fixed variables' values in value space (``value_names``' order); refused
    in one line when a name is not a free variable, a list has the wrong length, a value has
    another shape than the variable (``shapes``: value variable name -> shape), or a value
    lies outside the variable's support (its transform gives no finite value)."""
    by_name = {transforms[n][0]: n for n in value_names}
    for name in fixed:
        if name not in by_name:
            raise ValueError(f"fixed: {name!r} is not a free variable of the model "
                             f"({', '.join(by_name)})")
    if len(fixed) == len(by_name):
        raise ValueError("fixed: every free variable is fixed; nothing is left to sample")
    per_chain = []
    for k in range(chains):
        values = []
        for n in value_names:
            name, transform, rv = transforms[n]
            if name not in fixed:
                continue
            given = fixed[name]
            if isinstance(given, (list, tuple)):
                if len(given) != chains:
                    raise ValueError(f"fixed: {name!r} has {len(given)} values; give one, or "
                                     f"one per start ({chains})")
                given = given[k]
            value = np.asarray(given, dtype=float)
            if value.shape != tuple(shapes[n]):
                raise ValueError(f"fixed: {name!r} has shape {value.shape}, the variable "
                                 f"{tuple(shapes[n])}; give a list for one value per chain")
            mapped = _apply(transform, rv, value, True) if transform is not None else value
            if not np.all(np.isfinite(mapped)):
                raise ValueError(f"fixed: {name!r} = {given} (chain {k}) is outside the "
                                 "variable's support")
            values.append(mapped)
        per_chain.append(values)
    return per_chain


def sample_from_members(model: pm.Model, starts: list[dict], steps: int, keep: int,
                        seed: int, step_scale: float = 1.0, adjusted: bool = False,
                        fixed: dict | None = None) -> MCLMCChains:
    """One unadjusted MCLMC chain (:func:`run_chain`; ``adjusted=True``: an adjusted one,
    :func:`run_adjusted_chain`, with ``steps`` transitions) from each of ``starts`` (dicts of
    the model's free variables on their own scale, such as deep-ensemble members), on the
    model's log posterior; chain k uses ``jax.random.key(seed * 10 + k)``. Each chain is tuned
    from its own start. The log density is jit-compiled once for all chains (the data,
    constants of the jaxified graph, compile with it).

    ``fixed`` (free variable name -> one value for every chain, or a list of one value per
    chain, on the variable's own scale) holds those variables still: each chain moves in the
    others, on the conditional posterior at its own values (the model's log density with
    them filled in, which differs from ``pm.do``'s by a constant), e.g. a network's noise sd
    at each member's empirical-Bayes value. The values are arguments of the one compiled
    chain, not constants of the graph, so chains with different values share it. Their
    draws carry the fixed values; ``starts`` need no value for them."""
    require_jax()
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    if not 1 <= keep <= steps:
        raise ValueError(f"keep must be between 1 and steps ({steps}), got {keep}")
    if not 0 < step_scale <= 1 or (adjusted and step_scale != 1):
        raise ValueError(f"step_scale must be in (0, 1], and 1 for adjusted chains (their "
                         f"step size is tuned to the acceptance rate), got {step_scale}")
    _check_transforms(model)
    value_names = [v.name for v in model.value_vars]
    transforms = _transforms(model)
    fixed = dict(fixed or {})
    held = (_fixed_values(fixed, transforms, value_names, len(starts),
                          {n: np.shape(v) for n, v in model.initial_point().items()})
            if fixed else [[] for _ in starts])
    moving = [n for n in value_names if transforms[n][0] not in fixed]
    logp = get_jaxified_logp(model)  # traced inside the chain's jit: no jit of its own

    def conditional(held_values):  # the log density of the moving variables
        if not fixed:
            return logp

        def density(position):
            free, still = iter(position), iter(held_values)
            return logp([next(still) if transforms[n][0] in fixed else next(free)
                         for n in value_names])
        return density

    if adjusted:
        chain = jax.jit(lambda pos, held_values, key: run_adjusted_chain(
            conditional(held_values), pos, steps, keep, key))
    else:
        chain = jax.jit(lambda pos, held_values, key: run_chain(
            conditional(held_values), pos, steps, keep, key, step_scale))
    start = time.perf_counter()
    draws = {transforms[n][0]: [] for n in value_names}
    Ls, step_sizes, energy = [], [], []
    stats = {k: [] for k in ADJUSTED_STATS} if adjusted else None
    positions = []  # every start checked before the first chain compiles
    for k, member in enumerate(starts):
        position = []
        for n in moving:
            name, transform, rv = transforms[n]
            if name not in member:
                raise ValueError(f"start {k}: no value for {name!r}; it needs every free "
                                 f"variable not fixed "
                                 f"({', '.join(transforms[v][0] for v in moving)})")
            value = np.asarray(member[name], dtype=float)
            position.append(_apply(transform, rv, value, True) if transform is not None
                            else value)
        positions.append(position)
    for k, position in enumerate(positions):
        out, params, chain_stats = chain(position, held[k], jax.random.key(seed * 10 + k))
        for n, v in zip(moving, out):
            draws[transforms[n][0]].append(np.asarray(v))
        for n, v in zip([n for n in value_names if n not in moving], held[k]):
            draws[transforms[n][0]].append(np.broadcast_to(v, (keep, *np.shape(v))))
        Ls.append(float(params.L))
        step_sizes.append(float(params.step_size))
        energy.append(float(chain_stats.get("energy_var_per_dim", np.nan)))
        for name in stats or ():
            stats[name].append(float(chain_stats[name]))
    seconds = time.perf_counter() - start
    constrained = {}
    for n in value_names:
        name, transform, rv = transforms[n]
        stacked = np.stack(draws[name])
        constrained[name] = (_apply(transform, rv, stacked, False) if transform is not None
                             else stacked)
    dims = {n: tuple(d) for n, d in model.named_vars_to_dims.items() if n in constrained}
    coords = {k: list(v) for k, v in model.coords.items() if v is not None}
    return MCLMCChains(constrained, Ls, step_sizes, energy, steps, keep, step_scale, seconds,
                       dims, coords, adjusted, stats)


def check_chains(values, chains: MCLMCChains) -> pd.DataFrame:
    """Each chain judged on its own, on ``values`` (chain, draw, K: e.g. a network's
    predictions at test points): split R-hat of its halves <= 1.01, bulk and tail ESS >= 100
    (:func:`models.inference.diagnostics.chain_mixing`, the rule ensemble-started NUTS chains
    meet, less divergences and E-BFMI, which an unadjusted sampler does not have), with its
    tuned L, step size and energy error beside it (information, not a check). Adjusted chains
    show their acceptance rate, divergences and integration steps per transition instead, and
    pass only without a divergence, as NUTS chains do. One row per chain; ``passed`` per
    chain."""
    frame = pd.DataFrame(chain_mixing(values)).set_index("chain")
    frame["L"] = chains.L
    frame["step_size"] = chains.step_size
    passed = ((frame["split_rhat_max"] <= RHAT_MAX)
              & (frame["ess_bulk_min"] >= PER_CHAIN_ESS_MIN)
              & (frame["ess_tail_min"] >= PER_CHAIN_ESS_MIN))
    if chains.adjusted:
        for name, values_ in chains.stats.items():
            frame[name] = values_
        passed &= frame["divergences"] == 0
    else:
        frame["energy_var_per_dim"] = chains.energy_var_per_dim
    frame["passed"] = passed
    return frame


@dataclass(frozen=True)
class MCLMCCheck:
    """MCLMC chains as a check for a page's status line, from the function-space record of
    :func:`models.evaluation.bnn.evaluate` (``function_space["mclmc"]``): passed when every
    chain passed its within-chain checks; ``reason`` says which failed and by how much."""

    passed: bool
    reason: str

    @classmethod
    def of(cls, fs_mclmc: dict) -> MCLMCCheck:
        within = fs_mclmc["within_chain"]
        failing = [c for c, ok in zip(within["chain"], within["passed"]) if not ok]
        return cls(bool(fs_mclmc["passed"]),
                   "" if not failing else
                   f"chain(s) {', '.join(map(str, failing))} failed their within-chain "
                   f"checks (worst split R-hat {fs_mclmc['rhat_max']:.4f}, smallest bulk ESS "
                   f"{fs_mclmc['ess_bulk_min']:.0f}, tail ESS {fs_mclmc['ess_tail_min']:.0f}; "
                   "need <= 1.01 and >= 100)")
