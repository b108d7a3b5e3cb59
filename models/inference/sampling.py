"""NUTS for any PyMC model: one call (:func:`sample_posterior`) or one compiled sampler reused
with new data (:class:`CompiledSampler`); settings come in as one :class:`SamplerConfig`."""

from __future__ import annotations

import contextlib
import copy
import os
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
    if c.sampler == "nutpie" and c.backend == "c":
        idata = _sample_nutpie_c(model, c)
    else:
        idata = pm.sample(draws=c.draws, tune=c.tune, chains=c.chains, random_seed=c.seed,
                          nuts_sampler=c.sampler, progressbar=progressbar, model=model, **kwargs)
    if outer:  # the samplers record their sampling time; the rest of pm.sample is compiling
        total = time.perf_counter() - start
        sampling = float(idata["posterior"].attrs.get("sampling_time", total))
        stopwatch.add("compile", max(total - sampling, 0.0))
        stopwatch.add("sampling", sampling)
    check_complete(idata, c.draws, c.chains)
    with stopwatch.stage("pointwise log-likelihood"):
        add_log_likelihood(idata, model, c.seed)
    return idata


def _sample_nutpie_c(model: pm.Model, c: SamplerConfig) -> xr.DataTree:
    """What ``pm.sample(nuts_sampler="nutpie")`` does, on :func:`compile_nutpie`'s C backend:
    the same seed derivation, no warm-up draws kept, PyMC's constant_data / observed_data
    groups and ``sampling_time`` attribute. One core: the chains hold the GIL (see
    :func:`compile_nutpie`), and two threads contending for it were slower than one (linear
    regression 4 x 2000 steps: 1.3 s on one core, 1.7 s on two)."""
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata
    from pymc.util import get_random_generator

    compiled = compile_nutpie(model, init=c.init, backend="c")
    seed = int(get_random_generator(c.seed).spawn(c.chains)[0].integers(2**30))
    options = c.nutpie_options()
    start = time.time()
    idata = nutpie.sample(compiled, draws=c.draws, tune=max(c.tune, 1), chains=c.chains, cores=1,
                          seed=seed, save_warmup=False, progress_bar=False, **options)
    patch_nutpie_idata(idata, model, sampling_time=time.time() - start)
    return idata


def add_log_likelihood(idata: xr.DataTree, model: pm.Model, seed) -> xr.DataTree:
    """Add the pointwise ``log_likelihood`` group: every row, or, above
    :data:`models.inference.pointwise.POINTWISE_MAX_ROWS` rows, a seeded random subsample of
    rows (labelled with their row numbers, ``attrs["rows_of"]`` = all rows) so that memory is
    draws x subsample, not draws x rows."""
    from models.inference.pointwise import log_likelihood_rows, n_rows, pointwise_rows

    n = n_rows(model)
    rows = None if n is None else pointwise_rows(n, 0 if seed is None else seed)
    if rows is None:
        pm.compute_log_likelihood(idata, model=model, progressbar=False)
    else:
        idata["log_likelihood"] = log_likelihood_rows(idata, model, rows)
    return idata


# nutpie: draw each chain's start from the prior, without the default U(-1, 1) jitter on top
NUTPIE_PRIOR_INIT = {"default_initialization_strategy": "prior", "jitter_rvs": set()}


def compile_nutpie(model: pm.Model, init: str = "jitter", backend: str = "numba"):
    """``model`` compiled for nutpie. ``init``: "jitter" (initial point plus U(-1, 1)) or
    "prior" (a prior draw per chain). ``backend``:

    - "numba" (default): nutpie's own compilation (``nutpie.compile_pymc_model``): the fastest
      gradient calls, from Rust without the GIL, but numba compiles a C wrapper and re-types
      the graph in every process, 5-13 s per model on this machine whatever its size.
    - "c": PyTensor's C functions, which PyTensor caches on disk across processes (0.4-0.7 s
      per model once cached), called by nutpie through its Python-function interface
      (``nutpie.compiled_pyfunc.from_pyfunc``): about 35 us more per gradient call and the GIL
      held, so chains run one at a time. Measured in fresh processes, 4 x (1000 + 1000):
      linear regression (kidiq) compile + sampling 0.5 + 1.3 s against 8.5 + 0.4 s, logistic
      (wells) 0.4 + 4.3 against 13.0 + 2.3, radon varying intercepts 0.7 + 2.4 against
      11.2 + 0.7; but the gaussian workflow (MVN, many leapfrog steps) took 31 s against 28.
      The draws are the same as "numba"'s (same graph, same seed): the regression and
      hierarchical reports came out identical with either backend.

    nutpie has no C backend of its own, so this one is written here: it reuses nutpie's graph
    preparation (``_make_functions``, the same logp, gradient and variable order as "numba")
    and swaps fresh shared variables into every chain's copy of the functions, so that
    ``with_data`` never touches the model's own data and concurrent chains never share state.
    """
    import nutpie

    kwargs = dict(NUTPIE_PRIOR_INIT) if init == "prior" else {}
    if backend == "numba":
        return nutpie.compile_pymc_model(model, **kwargs)
    if backend != "c":
        raise ValueError(f"backend must be 'numba' or 'c', got {backend!r}")
    import pytensor
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords, _wrap_with_lock
    from nutpie.compiled_pyfunc import from_pyfunc
    from pymc.initial_point import make_initial_point_fn

    strategy = kwargs.get("default_initialization_strategy", "support_point")
    jitter = kwargs.get("jitter_rvs", set(model.free_RVs))
    point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy=strategy, jitter_rvs=jitter, return_transformed=True))
    n_dim, _, logp_fn, expand_fn, initial_point_fn, shape_info, reparameterized = \
        _make_functions(model, mode="FAST_RUN", compute_grad=True, join_expanded=False,
                        pymc_initial_point_fn=point_fn, var_names=None)
    shared = {v.name: v for v in [*logp_fn.get_shared(), *expand_fn.get_shared()]}
    if None in shared or len(shared) != len({*logp_fn.get_shared(), *expand_fn.get_shared()}):
        raise ValueError("compile_nutpie(backend='c'): shared variables need unique names")
    names, _, shapes = shape_info

    def private(fn, values):
        """A copy of ``fn`` with its own shared variables set to ``values`` (by name)."""
        swap = {v: pytensor.shared(np.asarray(values[v.name]), name=v.name,
                                   shape=v.type.shape) for v in fn.get_shared()}
        out = fn.copy(share_memory=False, swap=swap)
        out.trust_input = True
        return out

    def cached(fn):
        """``fn``'s private copy for the data of this call: nutpie passes the model's data as
        keyword arguments on every call (the same arrays until ``with_data``), so the copy is
        made once per chain and data set (and holds the arrays, so their ids stay theirs)."""
        state = {"fn": None, "data": ()}

        def get(data):
            if state["fn"] is None or len(data) != len(state["data"]) or any(
                    data.get(k) is not v for k, v in state["data"]):
                state["fn"] = private(fn, data)
                state["data"] = tuple(data.items())
            return state["fn"]
        return get

    def make_logp():
        get = cached(logp_fn)

        def logp(x, **data):
            value, grad = get(data)(x)
            return float(value), grad
        return logp

    def make_expand(seed1, seed2, chain):
        get = cached(expand_fn)

        def expand(x, **data):
            return {name: np.asarray(value, dtype="float64").reshape(shape)
                    for name, value, shape in zip(names, get(data)(x), shapes, strict=True)}
        return expand

    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    return from_pyfunc(
        ndim=n_dim, make_logp_fn=make_logp, make_expand_fn=make_expand,
        make_initial_point_fn=initial_point_fn, expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=shapes, expanded_names=names,
        shared_data={k: np.asarray(v.get_value()) for k, v in shared.items()},
        dims=dims, coords=coords, reparameterized_names=reparameterized)


def prior_initvals(model: pm.Model, chains: int, seed: int | None) -> list[dict]:
    """One draw of the free variables from their priors per chain (``pm.sample(initvals=)``)."""
    rvs = model.free_RVs
    draws = pm.draw(rvs, draws=chains, random_seed=seed)
    draws = draws if isinstance(draws, list) else [draws]
    if chains == 1:  # pm.draw(draws=1) returns one draw without the leading draws axis
        draws = [np.asarray(d)[None] for d in draws]
    return [{rv.name: np.asarray(d[i]) for rv, d in zip(rvs, draws)} for i in range(chains)]


def value_point(model: pm.Model, point: dict) -> dict:
    """``point`` (constrained values of every free variable, e.g. ``{"sigma": 0.1, ...}``) as
    the model's value variables (``{"sigma_log__": log 0.1, ...}``): what ``model.compile_logp``
    and the samplers take."""
    from pymc.initial_point import make_initial_point_fn

    missing = [rv.name for rv in model.free_RVs if rv.name not in point]
    if missing:
        raise ValueError(f"start point: no value for {missing}")
    return make_initial_point_fn(model=model, overrides={k: np.asarray(v) for k, v in point.items()
                                                         if k in model.named_vars},
                                 return_transformed=True, jitter_rvs=set())(0)


def flat_start(model: pm.Model, point: dict) -> np.ndarray:
    """``point`` (constrained values of every free variable) as nutpie's flat vector of
    unconstrained values, in nutpie's order (``model.free_RVs``)."""
    values = value_point(model, point)
    return np.concatenate([np.ravel(values[model.rvs_to_values[rv].name])
                           for rv in model.free_RVs]).astype("float64")


# Start jitter: nutpie refuses a start where any gradient entry is exactly zero (its first
# mass matrix is scaled by the gradient), which is what an optimum's coordinates can be.
START_JITTER = 1e-6


def _fixed_start(x: np.ndarray):
    """nutpie's initial-point function for one chain: ``x`` plus N(0, START_JITTER²) noise
    seeded by nutpie's seed (nutpie calls it with the keyword ``seed``)."""
    def initial_point(seed=None):
        return x + START_JITTER * np.random.default_rng(seed).standard_normal(x.shape)
    return initial_point


def sample_from_starts(model: pm.Model, starts: list[dict], config: SamplerConfig | None = None,
                       cores: int | None = None) -> xr.DataTree:
    """NUTS with one chain from each point in ``starts`` (``config.chains`` is ignored: one
    chain per start). nutpie: :meth:`CompiledSampler.sample_from`. The other samplers take
    per-chain ``initvals`` through ``pm.sample`` (PyMC's own NUTS without its start jitter)."""
    config = config or SamplerConfig()
    check_start(model)
    if config.sampler == "nutpie":
        return CompiledSampler(model, config).sample_from(starts, cores=cores)
    kwargs = {"init": "adapt_diag"} if config.sampler == "pymc" else {}
    if config.target_accept is not None:
        kwargs["target_accept"] = config.target_accept
    if cores:
        kwargs["cores"] = int(cores)
    with stopwatch.stage("sampling"):
        idata = pm.sample(draws=config.draws, tune=config.tune, chains=len(starts),
                          random_seed=config.seed, nuts_sampler=config.sampler, model=model,
                          initvals=[dict(s) for s in starts], progressbar=False, **kwargs)
    check_complete(idata, config.draws, len(starts))
    return idata


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




def _with_start(compiled, initial_point):
    """``compiled`` with its initial-point function replaced (nutpie's numba models call the
    field ``initial_point_func``, its Python-function models ``_make_initial_points``)."""
    import dataclasses

    field = "initial_point_func" if hasattr(compiled, "initial_point_func") \
        else "_make_initial_points"
    return dataclasses.replace(compiled, **{field: initial_point})


def _finished(run) -> bool:
    """Whether a non-blocking nutpie run has finished. nutpie 0.16's Rust sampler answers
    ``is_finished()`` with True when done and raises TimeoutError while it runs (its Python
    wrapper's ``is_finished`` fails on the second call); without it, wait for this run."""
    check = getattr(getattr(run, "_sampler", None), "is_finished", None)
    if not callable(check):
        return True
    try:
        return bool(check())
    except TimeoutError:
        return False


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
            self.compiled = compile_nutpie(model, init=config.init, backend=config.backend)

    def with_config(self, config: SamplerConfig) -> CompiledSampler:
        """The same compiled model with other draws/tune/chains/seed/target acceptance (the
        initialisation is fixed at compile time, so ``config.init`` must match)."""
        if config.sampler != "nutpie" or config.init != self.config.init:
            raise ValueError(f"with_config: needs sampler='nutpie' and init={self.config.init!r} "
                             f"(compiled so), got {config.sampler!r} and {config.init!r}")
        other = copy.copy(self)
        other.config = config
        return other

    def sample_from(self, starts: list[dict], seed: int | None = None, cores: int | None = None,
                    **data) -> xr.DataTree:
        """One chain from each point in ``starts`` (``{free variable: value}``, constrained
        values, e.g. the members of a deep ensemble), with ``data`` swapped in: chain ``k``
        starts at ``starts[k]`` (plus N(0, 1e-6²) noise so that no gradient entry is exactly
        zero, which nutpie refuses), then warms up for ``config.tune`` steps.

        nutpie draws every chain's start from one initial-point function and PyMC refuses
        per-chain ``initvals`` for nutpie, so each start is its own one-chain nutpie run on the
        same compiled model (its initial-point function replaced by the start), ``cores`` of
        them at a time; chain k's seed is word k of
        ``numpy.random.SeedSequence(seed).generate_state(len(starts))``. Returns posterior and sample_stats with chains ``0..len(starts)-1``.
        """

        c = self.config
        if not starts:
            raise ValueError("sample_from: starts must list at least one point")
        compiled = self.compiled.with_data(**{k: np.asarray(v) for k, v in data.items()}) \
            if data else self.compiled
        options = c.nutpie_options()
        seeds = np.random.SeedSequence(c.seed if seed is None else seed).generate_state(len(starts))
        flats = [flat_start(self.model, point) for point in starts]
        at_once = max(1, int(cores or os.cpu_count() or 1))

        def start(k):
            return self._nutpie.sample(
                _with_start(compiled, _fixed_start(flats[k])),
                draws=c.draws, tune=c.tune, chains=1, cores=1, seed=int(seeds[k]),
                progress_bar=False, blocking=False, save_warmup=False, **options)

        # A queue, not batches: the next chain starts as soon as any running one finishes. The
        # chains' costs differ by several times (a chain in a sharply curved mode takes small
        # steps: 419 vs 73 leapfrog steps per draw on the default bnn), and a batch waited for
        # its slowest chain with the other cores idle. Each chain keeps its own seed, so the
        # draws do not depend on the order in which chains finish.
        trees: list = [None] * len(flats)
        waiting, running = list(range(len(flats))), {}
        with stopwatch.stage("sampling"):
            try:
                while waiting or running:
                    while waiting and len(running) < at_once:
                        k = waiting.pop(0)
                        running[k] = start(k)
                    finished = [k for k, r in running.items() if _finished(r)]
                    if not finished:
                        time.sleep(0.02)
                    for k in finished:
                        trees[k] = running.pop(k).wait()
            except BaseException:
                for r in running.values():
                    with contextlib.suppress(Exception):
                        r.abort()
                raise
        tree = xr.DataTree.from_dict({group: xr.concat(
            [t[group].to_dataset().assign_coords(chain=[k]) for k, t in enumerate(trees)],
            dim="chain") for group in ("posterior", "sample_stats")})
        check_complete(tree, c.draws, len(starts))
        return tree

    def sample(self, seed: int | None = None, cores: int | None = None, **data) -> xr.DataTree:
        """One fit with ``data`` swapped in (``X=..., y=...``); ``seed`` (default the config's)
        and ``cores``: threads for the chains (default: all cores; 1 inside a Dask worker).
        The warm-up draws are not kept (``save_warmup=False``): converting them to xarray cost
        a small model's fit as much time as sampling."""
        c = self.config
        compiled = self.compiled.with_data(**{k: np.asarray(v) for k, v in data.items()}) \
            if data else self.compiled
        options = c.nutpie_options()
        if cores:
            options["cores"] = int(cores)
        with stopwatch.stage("sampling"):
            tree = self._nutpie.sample(compiled, draws=c.draws, tune=c.tune, chains=c.chains,
                                       seed=c.seed if seed is None else seed,
                                       progress_bar=False, save_warmup=False, **options)
        check_complete(tree, c.draws, c.chains)
        return tree
