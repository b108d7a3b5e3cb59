"""NUTS for any PyMC model: one call (:func:`sample_posterior`) or one compiled sampler reused
with new data (:class:`CompiledSampler`); settings come in as one :class:`SamplerConfig`."""

from __future__ import annotations

import contextlib
import copy
import time

import numpy as np
import pymc as pm
import xarray as xr

from models.base import stopwatch
from models.base.coords import OBS_DIM
from models.base.interrupts import interrupted
from models.inference.config import SamplerConfig


def set_data(model: pm.Model, **arrays) -> None:
    """Swap the model's data containers (``X``, ``y``, ...) without recompiling.

    The ``obs_id`` coordinate is resized to the new number of rows.
    """
    n = {np.shape(a)[0] for a in arrays.values() if np.ndim(a)}
    if len(n) > 1:
        raise ValueError(f"new data arrays have different numbers of rows: {sorted(n)}")
    coords = {OBS_DIM: np.arange(n.pop())} if n and OBS_DIM in model.coords else None
    pm.set_data(arrays, model=model, coords=coords)


@contextlib.contextmanager
def data_swapped(model: pm.Model, **arrays):
    """Temporarily swap data containers; the original data are restored on exit."""
    original = {name: model[name].get_value() for name in arrays}
    set_data(model, **arrays)
    try:
        yield model
    finally:
        set_data(model, **original)


# ------------------------------------------------------------------------------ posterior
def check_start(model: pm.Model) -> None:
    """Raise, in words and naming the variable, if the log-probability is not finite at the
    model's initial point (what would otherwise surface as a sampler error deep in nutpie)."""
    logps = model.point_logps()
    bad = {name: value for name, value in logps.items() if not np.isfinite(value)}
    if bad:
        raise ValueError(
            "cannot start sampling: the log-probability is not finite at the initial point for "
            + ", ".join(f"{name} (logp = {value})" for name, value in bad.items())
            + "; check that the data lie in the likelihood's support and that each prior "
            "(and any initval) is proper at its initial value")


def sample_posterior(model: pm.Model, config: SamplerConfig | None = None, *,
                     progressbar: bool = False, **options) -> xr.DataTree:
    """NUTS posterior as an ``xarray.DataTree`` with posterior, sample_stats, observed_data
    and the pointwise log_likelihood (for LOO and predictive scores).

    ``config``: a :class:`SamplerConfig` (default ``SamplerConfig()``); keyword ``options``
    override its fields (``draws=``, ``tune=``, ``chains=``, ``sampler=``, ``adaptation=``,
    ``target_accept=``; ``random_seed=`` and ``init_from_prior=`` as PyMC spells them), so
    ``sample_posterior(model, draws=1000, chains=4, random_seed=1)`` works as before.
    With ``init="prior"`` every chain starts at its own draw from the prior (nutpie's "prior"
    initialisation, no extra jitter; per-chain ``initvals`` for the other samplers) instead
    of the support point plus U(-1, 1) jitter.
    """
    c = SamplerConfig.from_options(config, **options)
    kwargs = {}
    if c.target_accept is not None:
        kwargs["target_accept"] = c.target_accept
    if c.sampler == "nutpie":
        kwargs["nuts"] = {"adaptation": c.adaptation}
    if c.init == "prior":
        if c.sampler == "nutpie":
            kwargs["compile_kwargs"] = dict(NUTPIE_PRIOR_INIT)
        else:
            kwargs["initvals"] = prior_initvals(model, c.chains, c.seed)
    check_start(model)
    outer, start = stopwatch.outermost(), time.perf_counter()
    idata = pm.sample(draws=c.draws, tune=c.tune, chains=c.chains, random_seed=c.seed,
                      nuts_sampler=c.sampler, progressbar=progressbar, model=model, **kwargs)
    if outer:  # the samplers record their sampling time; the rest of pm.sample is compiling
        total = time.perf_counter() - start
        sampling = float(idata["posterior"].attrs.get("sampling_time", total))
        stopwatch.add("compile", max(total - sampling, 0.0))
        stopwatch.add("sampling", sampling)
    check_complete(idata, c.draws, c.chains)
    with stopwatch.stage("pointwise log-likelihood"):
        pm.compute_log_likelihood(idata, model=model, progressbar=False)
    return idata


# nutpie: draw each chain's start from the prior, without the default U(-1, 1) jitter on top
NUTPIE_PRIOR_INIT = {"default_initialization_strategy": "prior", "jitter_rvs": set()}


def prior_initvals(model: pm.Model, chains: int, seed: int | None) -> list[dict]:
    """One draw of the free variables from their priors per chain (``pm.sample(initvals=)``)."""
    rvs = model.free_RVs
    draws = pm.draw(rvs, draws=chains, random_seed=seed)
    draws = draws if isinstance(draws, list) else [draws]
    if chains == 1:  # pm.draw(draws=1) returns one draw without the leading draws axis
        draws = [np.asarray(d)[None] for d in draws]
    return [{rv.name: np.asarray(d[i]) for rv, d in zip(rvs, draws)} for i in range(chains)]


def check_complete(idata, draws: int, chains: int) -> None:
    """Samplers (PyMC's, nutpie) catch Ctrl-C and return the draws so far; a partial posterior
    must never reach a report, so an interrupted run is re-raised as KeyboardInterrupt."""
    post = idata["posterior"]
    got_draws, got_chains = post.sizes.get("draw", 0), post.sizes.get("chain", 0)
    if got_draws < draws or got_chains < chains:
        raise KeyboardInterrupt(f"sampling was interrupted: {got_chains} chain(s) x {got_draws} "
                                f"draws of the {chains} x {draws} asked for")
    # nutpie, interrupted, returns a trace of full length whose unfinished draws are NaN
    missing = sum(int(np.isnan(post[v].values).sum()) for v in post.data_vars
                  if np.issubdtype(post[v].dtype, np.floating))
    if missing:
        raise KeyboardInterrupt(f"sampling was interrupted: {missing} posterior values are NaN "
                                "(unfinished draws); nothing is reported")
    if interrupted():
        raise KeyboardInterrupt("sampling was interrupted")




class CompiledSampler:
    """NUTS for many data sets on ONE compiled model (nutpie's ``with_data``): compile once,
    swap data per fit. For sweeps and simulations, where ``pm.sample`` would recompile each
    time (about 3 s per call for a small logistic regression here, vs 0.1-0.2 s per fit).

    ``config``: the :class:`SamplerConfig` of every fit (nutpie only; its ``init`` is fixed at
    compile time). ``sample(seed, cores, **data)`` returns a DataTree with the posterior and
    sample_stats (no log_likelihood: use :func:`sample_posterior` for a report fit).
    """

    def __init__(self, model: pm.Model, config: SamplerConfig | None = None):
        import nutpie

        config = config or SamplerConfig()
        if config.sampler != "nutpie":
            raise ValueError(f"CompiledSampler runs nutpie; got sampler={config.sampler!r}")
        self._nutpie = nutpie
        self.model = model
        self.config = config
        with stopwatch.stage("compile"):
            self.compiled = nutpie.compile_pymc_model(
                model, **(NUTPIE_PRIOR_INIT if config.init == "prior" else {}))

    def with_config(self, config: SamplerConfig) -> CompiledSampler:
        """The same compiled model with other draws/tune/chains/seed/target acceptance (the
        initialisation is fixed at compile time, so ``config.init`` must match)."""
        if config.sampler != "nutpie" or config.init != self.config.init:
            raise ValueError(f"with_config: needs sampler='nutpie' and init={self.config.init!r} "
                             f"(compiled so), got {config.sampler!r} and {config.init!r}")
        other = copy.copy(self)
        other.config = config
        return other

    def sample(self, seed: int | None = None, cores: int | None = None, **data) -> xr.DataTree:
        """One fit with ``data`` swapped in (``X=..., y=...``); ``seed`` (default the config's)
        and ``cores``: threads for the chains (default: all cores; 1 inside a Dask worker)."""
        c = self.config
        compiled = self.compiled.with_data(**{k: np.asarray(v) for k, v in data.items()}) \
            if data else self.compiled
        options = {"adaptation": c.adaptation}
        if c.target_accept is not None:
            options["target_accept"] = c.target_accept
        if cores:
            options["cores"] = int(cores)
        with stopwatch.stage("sampling"):
            tree = self._nutpie.sample(compiled, draws=c.draws, tune=c.tune, chains=c.chains,
                                       seed=c.seed if seed is None else seed,
                                       progress_bar=False, **options)
        check_complete(tree, c.draws, c.chains)
        return tree
