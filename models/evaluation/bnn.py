"""BNN protocols (floor 3): MLE net, MAP net, NUTS posterior and ADVI scored on held-out data,
diagnosed in function space; the UCI protocol over many splits.

The network itself (``build``, priors, activations, ``forward``) is :mod:`models.families.bnn`;
its names are re-exported here so that ``from models import bnn`` (the earlier flat layout)
keeps giving the whole BNN API.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pymc as pm

import arviz as az
import pandas as pd
import xarray as xr
from scipy import special, stats

from models.base import datasets
from models.base.checks import as_design_matrix
from models.base.splits import Standardizer, random_split
from models.evaluation import scores as calibration
from models.evaluation.ggn import (NOISES as GGN_NOISES, GGNLaplace, PosteriorCheck,  # noqa: F401
                                   fit_ggn_laplace, posterior_check)
from models.evaluation.last_layer import LastLayerLaplace, fit_last_layer  # noqa: F401
from models.evaluation.psis import compiled_logp, mean_field_check
from models.evaluation.scores import (auroc, binary_entropy, predictive_entropy,  # noqa: F401
                                      gaussian_predictive_metrics,
                                      predictive_regression_metrics, weighted_sd)
from models.families.bnn import (ACTIVATIONS, LIKELIHOODS, PRIORS, activation_fn,  # noqa: F401
                                 build, canonical_hidden_order, forward, numpy_activation,
                                 unit_scales, weight_prior, weight_variance, NetworkSpec,
                                 build_product, network_spec, product_start)
from models.inference import mclmc
from models.inference.config import SamplerConfig
from models.inference.diagnostics import (EBFMI_MIN, ESS_MIN, RHAT_MAX, Diagnostics,
                                          divergence_locations, split_rhat_one_chain,
                                          within_chain_check)
from models.inference.distributed import run_tasks, worker_cached
from models.inference.mle import MLEResult, fit_mle
from models.inference.predictive import stack_chains
from models.inference.sampling import (CompiledSampler, prior_initvals, sample_from_starts,
                                       sample_posterior, set_data, value_point)


def prior_starts(model: pm.Model, n: int, seed: int = 0) -> list[dict]:
    """``n`` draws of the free variables from their priors: Xavier/He-scaled network weights,
    as start points for the MLE optimiser (``fit_mle(initvals=...)``) and for NUTS chains."""
    return prior_initvals(model, n, seed)


def _flat_draws(idata, name):
    """(chain, draw, ...) posterior array of a variable."""
    return np.asarray(idata["posterior"][name].values)


def function_space_diagnostics(idata, X_test, activation: str, n_hidden: int) -> dict:
    """R-hat/ESS of the network's predictions at test points (the ones that must pass), next
    to weight-space R-hat raw and after canonical ordering of the hidden units. Predictions:
    f(x) for one output; the class probabilities at every test point for a softmax network."""
    names = [f"w{k}" for k in range(1, n_hidden + 1)] + [f"b{k}" for k in range(1, n_hidden + 1)]
    params = {n: _flat_draws(idata, n) for n in [*names, "w_out", "b_out"]}
    out_all = forward(params, X_test, activation, n_hidden)  # (chain, draw, N, outputs)
    if out_all.shape[-1] == 1:
        f = out_all[..., 0]  # (chain, draw, N)
    else:
        # softmax logits are identified only up to a common shift: check the class
        # probabilities, every (test point, class) pair as one quantity
        probs = special.softmax(out_all, axis=-1)
        f = probs.reshape(*probs.shape[:2], -1)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"f_test": (("chain", "draw", "test_point"), f)})})
    # Split R-hat of each chain on its own (its two halves): near 1 when every chain is
    # stationary, so a large between-chain R-hat then means chains settled in different modes
    # (different functions), not that they are still moving.
    within = [float(np.max(split_rhat_one_chain(f[c]))) for c in range(f.shape[0])]
    out = {
        "f_rhat_max": float(az.rhat(tree).dataset["f_test"].max()),
        # ArviZ's nested R-hat (Margossian et al. 2024) with each chain its own superchain: its
        # rank method splits every chain and keeps both halves in that chain's superchain,
        # where split R-hat above counts them as two chains; so it is not the same number,
        # though both grow with the distance between the chains' modes.
        "f_rhat_nested_max": float(az.rhat_nested(
            tree, superchain_ids=list(range(f.shape[0]))).dataset["f_test"].max()),
        "f_rhat_within_chain_max": max(within),
        "f_ess_bulk_min": float(az.ess(tree, method="bulk").dataset["f_test"].min()),
        "f_ess_tail_min": float(az.ess(tree, method="tail").dataset["f_test"].min()),
        "weight_rhat_max_raw": float(max(az.rhat(idata, var_names=[n]).dataset[n].max()
                                         for n in [*names, "w_out"])),
    }
    if n_hidden == 1:
        w1, b1, wo = canonical_hidden_order(params["w1"], params["b1"], params["w_out"],
                                            odd=activation == "tanh")
        canon = xr.DataTree.from_dict({"posterior": xr.Dataset({
            "w1": (("chain", "draw", "feature", "unit"), w1),
            "b1": (("chain", "draw", "unit"), b1),
            "w_out": (("chain", "draw", "unit", "output"), wo)})})
        out["weight_rhat_max_canonical"] = float(max(
            az.rhat(canon).dataset[n].max() for n in ("w1", "b1", "w_out")))
    else:
        out["weight_rhat_max_canonical"] = float("nan")  # canonical order: one hidden layer only
    stats_ = idata["sample_stats"]
    out["divergences"] = int(stats_["diverging"].sum())
    out["max_treedepth_hits"] = int(stats_["maxdepth_reached"].sum()) if "maxdepth_reached" in stats_ else -1
    out["f_test"] = f
    return out


def function_space_check(idata, X_test, activation: str, n_hidden: int):
    """(diagnostic values, Diagnostics with pass/fail on the PREDICTIONS, f at X_test)."""
    fs = function_space_diagnostics(idata, X_test, activation, n_hidden)
    f_post = fs.pop("f_test")
    bfmi = float(np.min(az.bfmi(idata).dataset["energy"].values))
    diag = Diagnostics(fs["f_rhat_max"], fs["f_ess_bulk_min"], fs["f_ess_tail_min"],
                       fs["divergences"], bfmi, {
                           "r_hat_max": fs["f_rhat_max"] <= RHAT_MAX,
                           "ess_bulk_min": fs["f_ess_bulk_min"] >= ESS_MIN,
                           "ess_tail_min": fs["f_ess_tail_min"] >= ESS_MIN,
                           "divergences": fs["divergences"] == 0,
                           "e_bfmi_min": bfmi >= EBFMI_MIN})
    return fs, diag, f_post


# The predictors a protocol scores, as they label the rows of ``metrics`` (and of the reports).
CONSTANT = "constant (training mean)"
MLE_NET = "MLE net"
MAP_NET = "MAP net"
NUTS = "NUTS posterior"
NUTS_STACKED = "NUTS, chains stacked"
ADVI = "ADVI (mean-field)"
DEEP_ENSEMBLE = "deep ensemble (MAP nets)"
LAPLACE = "last-layer Laplace"
GGN_LAPLACE = "GGN Laplace (linearised)"
GGN_ENSEMBLE = "GGN Laplace ensemble (mixture)"
MCLMC = "MCLMC from the members"
METHODS = (MLE_NET, MAP_NET, DEEP_ENSEMBLE, LAPLACE, GGN_LAPLACE, GGN_ENSEMBLE, NUTS,
           NUTS_STACKED, MCLMC, ADVI)
# where NUTS chains start: "ensemble" (chain k at deep-ensemble member k, Sommer et al. 2024;
# judged within each chain) or "prior" (each chain at its own prior draw; judged across chains)
CHAIN_STARTS = ("ensemble", "prior")
# where NUTS runs: "weights", the network's own weights (:func:`build`), or "product", one
# tanh layer in product coordinates (:func:`build_product`: the same posterior over functions)
COORDINATES = ("weights", "product")


@dataclass(frozen=True)
class BNNProtocol:
    """How a network is fitted and scored: the network (:class:`NetworkSpec`), NUTS settings
    (:class:`SamplerConfig`; every chain starts at its own prior draw, so ``init`` is always
    "prior": the initialisation scale IS the prior), the input shift of the OOD check (in
    training sds), the optimiser's iteration cap for the MLE and MAP nets, mean-field ADVI
    iterations (0: no ADVI), and where the NUTS chains start (``chains_from``: "ensemble",
    the default: chain k at deep-ensemble member k, judged chain by chain; "prior": each chain
    at its own prior draw, judged across chains). ``nuts=False`` skips NUTS and its checks
    (and stacking): only the MLE net, the MAP net, the deep ensemble of ``sampler.chains``
    members, the Laplace rows (GGN Laplace ensemble included) and optional ADVI, e.g. where
    sampling a wide net is out of reach.

    ``member_pool``: 0 (the default) trains one MAP net per chain; ``P >= sampler.chains``
    trains P (the chains' own K first, then P - K from prior draws of another seed stream)
    and keeps the K with the highest training log posterior, best first
    (:func:`best_members`): the deep ensemble, the MAP net (the best of P), the Laplace rows
    and the chains' starts are then those K. A chain started in a mode hundreds of nats below
    the best member's is the one that got stuck on energy (README).

    ``coordinates``: where NUTS runs. "weights" (the default): the network's own weights.
    "product": a one-tanh-layer net with a normal weight prior and a normal likelihood,
    sampled in product coordinates (:func:`build_product`: log output weight, and output x
    input weights; the same posterior over functions, its draws carrying ``w1``, ``b1``,
    ``w_out`` as Deterministics), each chain started at its member mapped by
    :func:`product_start`. ``product_power`` a in (0, 1] (product coordinates only): u =
    v^a (w, b), output weight to the power a times input weights (:func:`build_product`'s
    ``power``; a < 1 is partly non-centred, milder at a unit's small output weights). The
    MLE net, the members and the Laplace rows are fitted on the network's weights either way.
    Ensemble starts only: the product coordinates have no prior draw to start from.

    ``ggn_noise``: the noise sd of the GGN Laplace rows (one GGN Laplace and the GGN Laplace
    ensemble). "map" (the default): each member's own (MAP) sigma; "evidence": chosen with the
    prior precision by the Laplace evidence (:func:`fit_ggn_laplace`'s ``noise``), as the
    last-layer Laplace always does.

    ``mclmc_steps``: 0 (the default) runs no MCLMC; N > 0 adds the "MCLMC from the members"
    row (MILE, Sommer et al. 2025; needs the optional ``jax`` extra): one unadjusted
    microcanonical Langevin chain from each member, on the network's own weights, tuned from
    its member, then N steps with ``mclmc_keep`` draws kept
    (:func:`models.inference.mclmc.sample_from_members`), each chain judged on its own in
    function space as ensemble-started NUTS chains are (less divergences and E-BFMI)."""

    net: NetworkSpec = NetworkSpec()
    sampler: SamplerConfig = SamplerConfig(seed=0, init="prior")
    shift: float = 3.0
    mle_maxiter: int = 3000
    advi_iterations: int = 0
    chains_from: str = "ensemble"
    nuts: bool = True
    # repr=False: __repr__ adds it only when set, so that a protocol without a pool keeps the
    # fingerprint (a hash of the repr) its saved UCI splits were written under
    member_pool: int = field(default=0, repr=False)
    # the same: a protocol in the network's own weights keeps its saved splits' fingerprint
    coordinates: str = field(default="weights", repr=False)
    product_power: float = field(default=1.0, repr=False)
    # the same: the GGN rows' noise sd, the MAP net's unless "evidence"
    ggn_noise: str = field(default="map", repr=False)
    # the same: no MCLMC row unless mclmc_steps > 0
    mclmc_steps: int = field(default=0, repr=False)
    mclmc_keep: int = field(default=2000, repr=False)

    def __repr__(self):
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr]
        if self.member_pool:
            parts.append(f"member_pool={self.member_pool!r}")
        if self.coordinates != "weights":
            parts.append(f"coordinates={self.coordinates!r}")
        if self.product_power != 1:
            parts.append(f"product_power={self.product_power!r}")
        if self.ggn_noise != "map":
            parts.append(f"ggn_noise={self.ggn_noise!r}")
        if self.mclmc_steps:
            parts.append(f"mclmc_steps={self.mclmc_steps!r}, mclmc_keep={self.mclmc_keep!r}")
        return f"{type(self).__qualname__}({', '.join(parts)})"

    def __post_init__(self):
        pool = self.member_pool
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0 or \
                (pool and pool < self.sampler.chains):
            raise ValueError(f"member_pool must be 0 (off) or an integer >= the {self.sampler.chains} "
                             f"chains, got {pool!r}")
        if self.chains_from not in CHAIN_STARTS:
            raise ValueError(f"chains_from must be one of {CHAIN_STARTS}, got {self.chains_from!r}")
        self._check_coordinates()
        if self.ggn_noise not in GGN_NOISES:
            raise ValueError(f"ggn_noise must be one of {GGN_NOISES}, got {self.ggn_noise!r}")
        if self.sampler.init != "prior":
            object.__setattr__(self, "sampler", self.sampler.replace(init="prior"))
        if self.sampler.seed is None:
            object.__setattr__(self, "sampler", self.sampler.replace(seed=0))
        if isinstance(self.advi_iterations, bool) or not isinstance(self.advi_iterations, int) \
                or self.advi_iterations < 0:
            raise ValueError(f"advi_iterations must be a non-negative integer, got "
                             f"{self.advi_iterations!r}")
        steps, keep = self.mclmc_steps, self.mclmc_keep
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (steps, keep)) \
                or steps < 0 or keep < 1 or (steps and steps < keep):
            raise ValueError(f"mclmc_steps must be 0 (off) or an integer >= mclmc_keep "
                             f"({keep!r}, a positive integer), got {steps!r}")

    def _check_coordinates(self) -> None:
        """Product coordinates exist for one tanh layer, a normal weight prior, a normal
        likelihood and ensemble-started NUTS only; anything else is refused in words."""
        if self.coordinates not in COORDINATES:
            raise ValueError(f"coordinates must be one of {COORDINATES}, got {self.coordinates!r}")
        power = self.product_power
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 < power <= 1:
            raise ValueError(f"product_power must be a number in (0, 1], got {power!r}")
        if self.coordinates == "weights":
            if power != 1:
                raise ValueError(f"product_power {power!r} needs coordinates 'product' (NUTS in "
                                 "the network's own weights has no power)")
            return
        net = self.net
        needs = [(net.depth == 1, f"one hidden layer (got {net.depth})"),
                 (net.activation == "tanh", f"tanh units (got {net.activation})"),
                 (net.prior.endswith("normal"), f"a normal weight prior (got {net.prior})"),
                 (net.likelihood == "normal", f"a normal likelihood (got {net.likelihood})"),
                 (self.chains_from == "ensemble",
                  f"chains started at ensemble members (got {self.chains_from})"),
                 (self.nuts, "NUTS (it is where NUTS runs)")]
        missing = [what for ok, what in needs if not ok]
        if missing:
            raise ValueError(f"coordinates {self.coordinates!r} needs " + "; ".join(missing))

    def sampling_model(self, X, y) -> pm.Model:
        """The model NUTS runs on: the network's own (:meth:`NetworkSpec.build_model`) or, in
        product coordinates, :func:`build_product` of the same net with :attr:`power`."""
        net = self.net
        if self.power is not None:
            return build_product(X, y, net.hidden[0], net.prior, net.likelihood, net.bias_sd,
                                 power=self.power)
        return net.build_model(X, y)

    @property
    def power(self) -> float | None:
        """a of the product coordinates u = v^a (w, b) NUTS runs in; None: the weights."""
        return float(self.product_power) if self.coordinates == "product" else None

    def replace(self, **changes) -> BNNProtocol:
        return dataclasses.replace(self, **changes)


@dataclass
class Evaluation:
    """What a BNN protocol returns: the model, the MLE (:class:`MLEResult`), the MAP net's
    parameters, the NUTS posterior, ``metrics`` (predictor -> score -> value), the
    function-space diagnostic values and their pass/fail (:class:`Diagnostics`), and
    protocol-specific ``extra`` results. ``r["metrics"]`` works as ``r.metrics`` (and reaches
    ``extra``) for code written against the earlier dict."""

    model: pm.Model
    mle: MLEResult
    map: dict | None
    idata: object
    metrics: dict
    function_space: dict
    diagnostics: Diagnostics
    extra: dict = field(default_factory=dict)

    def __getitem__(self, key: str):
        if key in self.extra:
            return self.extra[key]
        if key in {f.name for f in dataclasses.fields(self)}:
            return getattr(self, key)
        raise KeyError(key)


def method_seconds(phase: dict, members: int, chains_from: str = "ensemble",
                   pooled: bool = False) -> dict:
    """Wall seconds to produce each method's predictive from the compiled model (fitting
    only: compilation, scoring and diagnostics excluded), from :func:`evaluate`'s phase
    timings. The MAP net is one member (the ensemble's time / ``members``), or, ``pooled``
    (the best of a member pool), every fit of the pool; both Laplace
    rows add their fit to it; the GGN Laplace ensemble pays for every member and every GGN
    fit; NUTS from ensemble starts includes training the members it starts from; the stacked
    row adds the stacking."""
    one_map = phase["members"] if pooled else phase["members"] / members
    out = {MLE_NET: phase["mle"], MAP_NET: one_map, DEEP_ENSEMBLE: phase["members"],
           LAPLACE: one_map + phase["last_layer"], GGN_LAPLACE: one_map + phase["ggn"]}
    if "ggn_ensemble" in phase:
        out[GGN_ENSEMBLE] = phase["members"] + phase["ggn"] + phase["ggn_ensemble"]
    if "mclmc" in phase:  # its chains start at the members: training them is part of it
        out[MCLMC] = phase["members"] + phase["mclmc"]
    if "nuts" not in phase:  # a protocol without NUTS
        return {**out, **({ADVI: phase["advi"]} if "advi" in phase else {})}
    nuts = phase["nuts"] + (phase["members"] if chains_from == "ensemble" else 0.0)
    out[NUTS] = nuts
    if "stacking" in phase:
        out[NUTS_STACKED] = nuts + phase["stacking"]
    if "advi" in phase:
        out[ADVI] = phase["advi"]
    return out


class _Clock:
    """Wall seconds per named phase: ``with clock("nuts"): ...`` adds to ``clock.seconds``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _sample(model, compiled, config, protocol, members, d, cores):
    """The NUTS draws of :func:`evaluate`: from the members (ensemble starts; in product
    coordinates each member mapped by :func:`product_start`) or the prior. ``model`` and
    ``compiled`` are the sampling model's (:meth:`BNNProtocol.sampling_model`)."""
    if protocol.power is not None:
        members = [product_start(m, protocol.power) for m in members]
    if protocol.chains_from == "ensemble":
        sampler = compiled.with_config(config) if compiled is not None else None
        return (sampler.sample_from(members, cores=cores, X=d["X_train"], y=d["y_train"])
                if sampler is not None else
                sample_from_starts(model, members, config, cores=cores))
    if compiled is None:
        return sample_posterior(model, config)
    # the protocol's settings, on the compiled model (which must start from the prior)
    return compiled.with_config(config).sample(cores=cores, X=d["X_train"], y=d["y_train"])


def evaluate(d, protocol: BNNProtocol | None = None, compiled=None,
             cores: int | None = None, model: pm.Model | None = None) -> Evaluation:
    """Fit one regression split (``models.base.datasets.uci`` format) every way and score them.

    ``protocol``: :class:`BNNProtocol` (default: 50 ReLU units, He prior, nutpie 4 x 1000).
    ``compiled``: a :class:`models.inference.CompiledSampler` of the protocol's sampling model
    (:meth:`BNNProtocol.sampling_model`: a model built by :func:`build` with the same
    architecture, or in product coordinates :func:`build_product`'s) with ``init="prior"``
    (e.g. on split 0): its model and nutpie sampler are reused with this split's data and the
    protocol's sampler settings, so a 20-split benchmark compiles once. ``model``: a model of
    :func:`build` with the same architecture, reused with this split's data for the MLE net,
    the members and the Laplace rows (default: ``compiled``'s model in the network's weights,
    else a new one). ``cores``: threads for its chains (default all; 1 inside
    a Dask worker). ``protocol.advi_iterations`` > 0 adds a mean-field ADVI fit
    (:func:`fit_advi`, 1000 draws) as a predictor, "ADVI (mean-field)". With 2 or more chains,
    "NUTS, chains stacked" weights the chains by stacking (:func:`models.inference.stack_chains`,
    PSIS-LOO on the training split) instead of 1/chains each, or equally where PSIS-LOO is
    unreliable (then it equals the pooled row); the weights are in
    ``function_space["chain_stacking"]``, the verdict in ``["chain_stacking_reliable"]``.

    MLE net (``fit_mle`` from 3 prior-drawn starts, priors ignored); a deep ensemble of one
    MAP net per chain (:func:`deep_ensemble`, ``pm.find_MAP`` from its own prior draw: the prior
    acts as weight decay; with ``protocol.member_pool`` the best of a larger pool,
    :func:`best_members`), whose first member is the MAP net; last-layer Laplace
    (:func:`fit_last_layer`) and GGN Laplace (:func:`fit_ggn_laplace`) around the MAP net;
    with 2 or more members the "GGN Laplace ensemble (mixture)": a GGN Laplace around every
    member, mixed with equal weights (Eschenhagen et al. 2021); and the NUTS posterior. With
    ``protocol.chains_from == "ensemble"`` chain k starts at member k and the Diagnostics
    judge each chain alone (:func:`models.inference.within_chain_check`; the per-chain rows
    in ``function_space["within_chain"]``); with "prior" every chain starts
    at a prior draw and the chains are judged together. ``protocol.coordinates`` "product"
    (``protocol.product_power`` a): NUTS runs on :meth:`BNNProtocol.sampling_model` (product
    coordinates), chain k from member k mapped by :func:`product_start`;
    ``function_space["coordinates"]`` says which. Metrics on the test split in original
    units; the input-shift check adds ``protocol.shift`` training sds to every input and asks
    whether predictive uncertainty (sd of f) flags the shifted points (AUROC). ``extra``:
    ``f_post`` (chain, draw, test point), ``sd_in``, ``sd_out``, ``advi``, ``members``,
    ``f_members``, ``laplace``, ``laplace_f``, ``running_lppd`` (:func:`running_lppd`),
    ``mclmc`` (:class:`models.inference.mclmc.MCLMCChains`, or None). ``protocol.mclmc_steps``
    > 0 adds the "MCLMC from the members" row: one unadjusted MCLMC chain from each member
    (:func:`models.inference.mclmc.sample_from_members`, seed ``protocol.sampler.seed``), the
    chains' equal mixture scored, each chain judged on its own in
    ``function_space["mclmc"]``.
    With ``protocol.nuts`` False nothing is sampled: ``idata``, ``diagnostics`` and the NUTS
    extras are None and ``metrics`` has no NUTS rows.
    """
    protocol = protocol or BNNProtocol()
    net, config, seed = protocol.net, protocol.sampler, protocol.sampler.seed
    activation, shift = net.activation, protocol.shift
    product = protocol.power is not None
    if model is None and compiled is not None and not product:
        model = compiled.model
    if model is None:
        model = net.build_model(d["X_train"], d["y_train"])
    else:
        set_data(model, X=d["X_train"], y=d["y_train"])
    # where NUTS runs (product coordinates: another model, the same posterior over functions)
    sampling_model = model
    if protocol.nuts and product:
        if compiled is None:
            sampling_model = protocol.sampling_model(d["X_train"], d["y_train"])
        else:  # its data too: stacking computes the training log-likelihood on it
            sampling_model = compiled.model
            set_data(sampling_model, X=d["X_train"], y=d["y_train"])
    K = config.chains
    clock = _Clock()
    starts = prior_starts(model, max(3, K), seed=seed)
    with clock("mle"):
        mle = fit_mle(model, initvals=starts[:3], maxiter=protocol.mle_maxiter, warn=False)
    with clock("members"):
        members = deep_ensemble(model, starts[:K], protocol.mle_maxiter)
        if protocol.member_pool:
            more = prior_starts(model, protocol.member_pool - K,
                                seed=int(np.random.SeedSequence((seed, 1)).generate_state(1)[0]))
            pool = members + deep_ensemble(model, more, protocol.mle_maxiter)
            members, pool_logp = best_members(model, pool, K)
    map_params = members[0]
    L = net.depth
    idata = fdiag = f_post = None
    fs = {"nuts": protocol.nuts}
    if protocol.nuts:
        with clock("nuts"):
            idata = _sample(sampling_model, compiled, config, protocol, members, d, cores)
        fs, fdiag, f_post = function_space_check(idata, d["X_test"], activation, L)
        fs["nuts"] = True
        if protocol.chains_from == "ensemble":
            # chains sit in the members' modes: each chain is judged on its own; the
            # between-chain R-hat above stays as information (how far apart the modes are)
            per_chain, fdiag = within_chain_check(f_post, idata)
            fs["within_chain"] = per_chain.reset_index().to_dict(orient="list")
        if fs["divergences"]:
            fs["divergence_locations"] = divergence_locations(
                idata, unit_scales(idata["posterior"], L)).to_dict(orient="list")
    fs["chains_from"] = protocol.chains_from
    fs["coordinates"] = protocol.coordinates
    if protocol.member_pool:
        fs["member_pool_log_posterior"] = pool_logp
        fs["member_log_posterior"] = sorted(pool_logp, reverse=True)[:K]
    y, m, sd = d["y_test_original"], d["y_mean"], d["y_sd"]
    f_members = np.stack([forward(p, d["X_test"], activation, L)[:, 0] for p in members])
    sigma_members = np.array([float(p["sigma"]) for p in members])
    with clock("last_layer"):
        laplace = fit_last_layer(map_params, d["X_train"], d["y_train"], activation, L)
    la_mean, la_var = laplace.predict(d["X_test"])
    metrics = {
        CONSTANT: predictive_regression_metrics(
            np.zeros((1, len(y))), np.ones(1), y, m, sd),
        MLE_NET: predictive_regression_metrics(
            forward(mle.params, d["X_test"], activation, L)[None, :, 0],
            np.asarray(mle.params["sigma"]).reshape(1), y, m, sd),
        MAP_NET: predictive_regression_metrics(f_members[:1], sigma_members[:1], y, m, sd),
        DEEP_ENSEMBLE: predictive_regression_metrics(f_members, sigma_members, y, m, sd),
        LAPLACE: gaussian_predictive_metrics(la_mean, la_var + laplace.sigma ** 2, y, m, sd),
    }
    metrics[DEEP_ENSEMBLE]["shift_auroc"] = auroc(
        f_members.std(axis=0),
        np.stack([forward(p, d["X_test"] + shift, activation, L)[:, 0] for p in members]).std(axis=0))
    metrics[LAPLACE]["shift_auroc"] = auroc(la_var, laplace.predict(d["X_test"] + shift)[1])
    fs["laplace"] = {"prior_precision": laplace.prior_precision, "sigma": laplace.sigma,
                     "log_evidence": laplace.log_evidence}
    with clock("ggn"):
        ggn = fit_ggn_laplace(map_params, d["X_train"], d["y_train"], activation, L,
                              noise=protocol.ggn_noise)
    ggn_mean, ggn_var = ggn.predict(d["X_test"])
    metrics[GGN_LAPLACE] = gaussian_predictive_metrics(ggn_mean, ggn_var + ggn.sigma ** 2,
                                                       y, m, sd)
    metrics[GGN_LAPLACE]["shift_auroc"] = auroc(ggn_var, ggn.predict(d["X_test"] + shift)[1])
    fs["ggn_laplace"] = {"prior_precision": ggn.prior_precision, "sigma": ggn.sigma,
                         "log_evidence": ggn.log_evidence, "parameters": int(len(ggn.cov)),
                         "noise": protocol.ggn_noise}
    # is the Gaussian the network's posterior? (PSIS k-hat; a diagnostic, outside the fit's
    # seconds, as the NUTS checks are)
    with clock("posterior_checks"):  # a phase no method's seconds include (method_seconds)
        checks = [posterior_check(ggn, model, seed=_check_seed(seed, 0))]
    fs["ggn_laplace"]["posterior_check"] = _check_dict(checks[0])
    if K > 1:
        # a mixture of Laplace approximations (Eschenhagen et al. 2021): the GGN Laplace around
        # every member, equal weights; members' modes plus each mode's local spread
        with clock("ggn_ensemble"):
            fits = [ggn] + [fit_ggn_laplace(p, d["X_train"], d["y_train"], activation, L,
                                            noise=protocol.ggn_noise)
                            for p in members[1:]]
        parts = [g.predict(d["X_test"]) for g in fits]
        means = np.stack([mu for mu, _ in parts])
        var_f = np.stack([v for _, v in parts])
        metrics[GGN_ENSEMBLE] = gaussian_predictive_metrics(
            means, var_f + np.array([g.sigma ** 2 for g in fits])[:, None], y, m, sd)
        shifted = [g.predict(d["X_test"] + shift) for g in fits]
        metrics[GGN_ENSEMBLE]["shift_auroc"] = auroc(
            _mixture_var(means, var_f), _mixture_var(np.stack([mu for mu, _ in shifted]),
                                                     np.stack([v for _, v in shifted])))
        fs["ggn_ensemble_sigma"] = [float(g.sigma) for g in fits]
        with clock("posterior_checks"):
            checks += [posterior_check(g, model, seed=_check_seed(seed, k))
                       for k, g in enumerate(fits[1:], start=1)]
        fs["ggn_ensemble_posterior_check"] = [_check_dict(c) for c in checks]
    chains = None
    if protocol.mclmc_steps:
        with clock("mclmc"):
            chains = mclmc.sample_from_members(model, members, protocol.mclmc_steps,
                                               protocol.mclmc_keep, seed)
        metrics[MCLMC], fs["mclmc"] = score_mclmc(chains, d, protocol)
    sd_in = sd_out = running = None
    if protocol.nuts:
        nuts_metrics, nuts_fs, sd_in, sd_out, running = _score_nuts(
            idata, f_post, sampling_model, map_params, d, protocol, clock)
        metrics.update(nuts_metrics)
        fs.update(nuts_fs)
    for k in (MLE_NET, MAP_NET, CONSTANT):
        metrics[k]["shift_auroc"] = 0.5  # a point estimate has no epistemic sd: chance level
    advi = None
    if protocol.advi_iterations:
        with clock("advi"):
            advi = fit_advi(model, starts[0], protocol.advi_iterations, seed=seed)
        # its PSIS check is a diagnostic, not part of the fit: moved to the checks' phase
        check_s = advi["_meta"]["posterior_check_seconds"]
        clock.seconds["advi"] -= check_s
        clock.seconds["posterior_checks"] = clock.seconds.get("posterior_checks", 0.0) + check_s
        f_advi = forward(advi, d["X_test"], activation, L)[..., 0]
        metrics[ADVI] = predictive_regression_metrics(f_advi, advi["sigma"], y, m, sd)
        metrics[ADVI]["shift_auroc"] = auroc(
            f_advi.std(axis=0), forward(advi, d["X_test"] + shift, activation, L)[..., 0].std(axis=0))
        fs["advi_posterior_check"] = advi["_meta"]["posterior_check"]
    metrics = {k: metrics[k] for k in (CONSTANT, *METHODS) if k in metrics}  # table order
    fs["phase_seconds"] = clock.seconds
    fs["method_seconds"] = method_seconds(clock.seconds, K, protocol.chains_from,
                                          pooled=bool(protocol.member_pool))
    return Evaluation(model, mle, map_params, idata, metrics, fs, fdiag,
                      extra={"f_post": f_post, "sd_in": sd_in, "sd_out": sd_out, "advi": advi,
                             "members": members, "f_members": f_members, "laplace": laplace,
                             "laplace_f": (la_mean, la_var), "running_lppd": running,
                             "mclmc": chains})


def score_mclmc(chains, d, protocol) -> tuple[dict, dict]:
    """:func:`evaluate`'s MCLMC row (and ``benchmarks/mclmc_step_bias.py``'s and
    ``benchmarks/mclmc_probe.py``'s): the chains' equal-weight mixture
    (:class:`models.inference.mclmc.MCLMCChains`) scored on the test split
    (with the input-shift AUROC), and its function-space entries: each chain's checks
    (:func:`models.inference.mclmc.check_chains` on the predictions at the test points), its
    own test LL, and the run's settings (for adjusted chains, their smallest acceptance rate
    and their divergences instead of the largest energy error)."""
    activation, L, shift = protocol.net.activation, protocol.net.depth, protocol.shift
    y, m, sd = d["y_test_original"], d["y_mean"], d["y_sd"]
    params = {n: v for n, v in chains.draws.items() if n != "sigma"}
    C, S = chains.draws["sigma"].shape
    flat = {n: v.reshape(C * S, *v.shape[2:]) for n, v in params.items()}
    f_in = forward(flat, d["X_test"], activation, L)[..., 0]
    f_out = forward(flat, d["X_test"] + shift, activation, L)[..., 0]
    sigma = chains.draws["sigma"]
    metrics = predictive_regression_metrics(f_in, sigma.reshape(-1), y, m, sd)
    metrics["shift_auroc"] = auroc(f_in.std(axis=0), f_out.std(axis=0))
    f = f_in.reshape(C, S, -1)
    per_chain = mclmc.check_chains(f, chains)
    per_chain["test_ll_nats"] = [predictive_regression_metrics(f[c], sigma[c], y, m, sd)[
        "test_ll_nats"] for c in range(C)]
    fs = {"within_chain": per_chain.reset_index().to_dict(orient="list"),
          "passed": bool(per_chain["passed"].all()), "steps": chains.steps, "keep": chains.keep,
          "rhat_max": float(per_chain["split_rhat_max"].max()),
          "ess_bulk_min": float(per_chain["ess_bulk_min"].min()),
          "ess_tail_min": float(per_chain["ess_tail_min"].min())}
    if chains.adjusted:  # an accept step: no energy error to show, divergences instead
        fs.update({"adjusted": True, "accept_min": float(per_chain["accept"].min()),
                   "divergences": int(per_chain["divergences"].sum())})
    else:
        fs["energy_var_per_dim_max"] = float(per_chain["energy_var_per_dim"].max())
    return metrics, fs


def _regression_only(protocol: BNNProtocol) -> None:
    """The classifiers score no MCLMC row: a protocol asking for one is refused, not ignored."""
    if protocol.mclmc_steps:
        raise ValueError(f"mclmc_steps={protocol.mclmc_steps}: the MCLMC row is scored for "
                         "regression (evaluate) only; use mclmc_steps=0 for the classifiers")


def _check_dict(check: PosteriorCheck | None) -> dict | None:
    return None if check is None else check.to_dict()  # None: uniform weight priors


def _check_seed(seed: int, member: int) -> int:
    """The seed of member ``member``'s :func:`posterior_check` draws: its own stream, apart
    from the members' starts and the sampler's."""
    return int(np.random.SeedSequence((seed, 2, member)).generate_state(1)[0])


def _mixture_var(means, var) -> np.ndarray:
    """The variance of an equal-weight mixture of normals (components on axis 0), per point:
    the mean of the components' variances plus the variance of their means."""
    return var.mean(axis=0) + means.var(axis=0)


def _score_nuts(idata, f_post, model, map_params, d, protocol, clock):
    """:func:`evaluate`'s NUTS rows: (metrics of the pooled and, with 2+ chains, the stacked
    predictive; function-space entries: each chain's test LL and the stacking weights; the
    predictive sd of f in and out of the input shift; the running LPPD)."""
    metrics, fs = {}, {}
    activation, shift, L = protocol.net.activation, protocol.shift, protocol.net.depth
    y, m, sd = d["y_test_original"], d["y_mean"], d["y_sd"]
    S = f_post.shape[0] * f_post.shape[1]
    sigma_post = _flat_draws(idata, "sigma").reshape(S)
    metrics[NUTS] = predictive_regression_metrics(f_post.reshape(S, -1), sigma_post, y, m, sd)
    post_params = {n: _flat_draws(idata, n).reshape(S, *idata["posterior"][n].shape[2:])
                   for n in map_params if n != "sigma"}
    f_in = forward(post_params, d["X_test"], activation, L)[..., 0]
    f_out = forward(post_params, d["X_test"] + shift, activation, L)[..., 0]
    sd_in, sd_out = f_in.std(axis=0), f_out.std(axis=0)
    metrics[NUTS]["shift_auroc"] = auroc(sd_in, sd_out)
    # each chain's own posterior predictive: how far apart are the modes the chains found?
    fs["chain_test_ll_nats"] = [predictive_regression_metrics(
        f_post[c], _flat_draws(idata, "sigma")[c], y, m, sd)["test_ll_nats"]
        for c in range(f_post.shape[0])]
    if f_post.shape[0] > 1:
        # chains that do not mix, weighted by stacking on the TRAINING data's PSIS-LOO instead
        # of 1/chains each (the test split plays no part in the weights)
        with clock("stacking"):
            stacking = stack_chains(idata, model)
        w = np.repeat(stacking.weights / f_post.shape[1], f_post.shape[1])
        metrics[NUTS_STACKED] = predictive_regression_metrics(
            f_post.reshape(S, -1), sigma_post, y, m, sd, weights=w)
        metrics[NUTS_STACKED]["shift_auroc"] = auroc(
            weighted_sd(f_in, w), weighted_sd(f_out, w))
        fs["chain_stacking"] = stacking.to_frame().to_dict(orient="list")
        fs["chain_stacking_reliable"] = stacking.reliable
    return metrics, fs, sd_in, sd_out, running_lppd(f_post, _flat_draws(idata, "sigma"), y, m, sd)




@dataclass
class SplitResult:
    """One split of the UCI protocol: scores per predictor, function-space diagnostic values
    and pass/fail, wall seconds, and the training data (for the report's data hash).
    ``r["metrics"]`` works as ``r.metrics``."""

    data: str
    split: int
    metrics: dict
    function_space: dict
    diagnostics: Diagnostics
    seconds: float
    data_hash: tuple

    def __getitem__(self, key: str):
        return getattr(self, key)


def _uci_split(key, name, split, protocol: BNNProtocol, cores):
    """One split of the UCI protocol; with nutpie the model is compiled once per process."""
    d = datasets.uci(name, split)
    compiled = model = None
    if protocol.sampler.sampler == "nutpie" and protocol.nuts:
        compiled = worker_cached(("uci", key, name), lambda: CompiledSampler(
            protocol.sampling_model(d["X_train"], d["y_train"]), protocol.sampler))
        if protocol.power is not None:  # the weights' model, for the fits, once too
            model = worker_cached(("uci-net", key, name),
                                  lambda: protocol.net.build_model(d["X_train"], d["y_train"]))
    start = time.perf_counter()
    r = evaluate(d, protocol, compiled=compiled, cores=cores, model=model)
    return SplitResult(name, split, r.metrics, r.function_space, r.diagnostics,
                       time.perf_counter() - start, (d["X_train"], d["y_train"]))


def _uci_split_stored(store, key, name, split, protocol: BNNProtocol, cores):
    """:func:`_uci_split`, its result saved by ``store`` (if not None) the moment it exists
    (in the process that computed it), so an interrupted protocol keeps every finished split."""
    result = _uci_split(key, name, split, protocol, cores)
    if store is not None:
        store.save(result)
    return result


def uci_splits(names: Sequence[str], n_splits: int = 20, protocol: BNNProtocol | None = None,
               client=None, on_done=None, store=None, pairs=None):
    """The UCI protocol (:func:`evaluate` with ``protocol``) on splits ``0..n_splits-1`` of each
    data set, one task per (data set, split), in this process or on Dask workers (``client``:
    chains on one core per worker). Split ``k`` uses seed ``protocol.sampler.seed + k`` either
    way. With nutpie every process compiles each data set's model once and swaps each split's
    data in. ``on_done(done, total)`` is called as each split ends.

    ``store``: resumable runs. An object with ``load(name, split)`` (a saved
    :class:`SplitResult` of THIS protocol, or None) and ``save(result)`` (picklable: it is
    shipped to Dask workers). Saved splits are loaded, not run again; each new split is saved
    as soon as it finishes (the workflow's store: ``workflows.uci_benchmark.SplitStore``).

    ``pairs``: run these (data set, split) pairs instead of splits ``0..n_splits-1`` of each
    of ``names``.

    Returns ``(results, failures)``: per (data set, split), in order, a :class:`SplitResult`
    (or None if it failed twice); failures index that order."""
    protocol = protocol or BNNProtocol(sampler=SamplerConfig(draws=500, tune=500, chains=2,
                                                             seed=0, init="prior"))
    order = (list(pairs) if pairs is not None else
             [(name, split) for name in names for split in range(n_splits)])
    (results,), (failures,) = uci_groups([(protocol, order, store)], client=client,
                                         on_done=on_done)
    return results, failures


def uci_groups(groups: Sequence[tuple], client=None, on_done=None):
    """Several protocols' splits as ONE task list: ``groups`` holds ``(protocol, pairs,
    store)`` triples (``store`` may be None), each as in :func:`uci_splits`. On Dask workers
    every split of every group is queued at once, so a group of one split (a rerun round's
    usual case) does not leave the other workers idle while it runs, as one
    :func:`uci_splits` call per group would. Tasks are queued most draws first, the longest
    tasks first, so the last to finish are the short ones. ``on_done(done, total)`` counts
    over all groups (splits loaded from a store count as done).

    Returns ``(results, failures)``: one list per group, as :func:`uci_splits` returns."""
    cores = 1 if client is not None else None  # one core per worker; else nutpie's default
    tasks, where, results = [], [], []
    for g, (protocol, pairs, store) in enumerate(groups):
        key = uuid.uuid4().hex  # the compile cache's key: one model per protocol and data set
        base = protocol.sampler.seed
        results.append([store.load(name, split) if store is not None else None
                        for name, split in pairs])
        for i, (name, split) in enumerate(pairs):
            if results[g][i] is not None:
                continue
            tasks.append((store, key, name, split,
                          protocol.replace(sampler=protocol.sampler.replace(seed=base + split)),
                          cores))
            where.append((g, i, protocol.sampler.draws))
    # longest first: more draws take longer on the same data set (a rerun round mixes 24,000
    # and 48,000 draws); sorted() is stable, so equal draws keep the splits' order
    order = sorted(range(len(tasks)), key=lambda t: -where[t][2])
    total = sum(len(r) for r in results)
    done_before = total - len(tasks)
    progress = None if on_done is None else (lambda k, n: on_done(done_before + k, total))
    failures = [[] for _ in groups]
    if not tasks:
        return results, failures
    new, failed = run_tasks(_uci_split_stored, [tasks[t] for t in order], client=client,
                            on_done=progress)
    for t, r in zip(order, new):
        g, i, _ = where[t]
        results[g][i] = r
    for k, msg in failed:
        g, i, _ = where[order[k]]
        failures[g].append((i, msg))
    for f in failures:
        f.sort()
    return results, failures


def evaluate_classification(X_train, y_train, X_test, y_test,
                            protocol: BNNProtocol | None = None) -> Evaluation:
    """Binary classification: MLE net vs NUTS BNN (Bernoulli likelihood, logit output; the
    protocol's network with ``likelihood="bernoulli"``; default 10 tanh units, Xavier prior).

    Metrics on the test split: accuracy, NLL per point (nats, bits), Brier, ECE (10 bins), and
    the AUROC with which predictive entropy flags inputs shifted by ``protocol.shift`` sds.
    """
    protocol = protocol or BNNProtocol(NetworkSpec((10,), "tanh", "xavier_normal"))
    _regression_only(protocol)
    net = dataclasses.replace(protocol.net, likelihood="bernoulli")
    activation, shift, seed = net.activation, protocol.shift, protocol.sampler.seed
    model = net.build_model(X_train, y_train)
    L = net.depth
    mle = fit_mle(model, initvals=prior_starts(model, 3, seed=seed), maxiter=protocol.mle_maxiter,
                  warn=False)
    idata = sample_posterior(model, protocol.sampler)
    names = [f"w{k}" for k in range(1, L + 1)] + [f"b{k}" for k in range(1, L + 1)] + ["w_out", "b_out"]
    S = idata["posterior"].sizes["chain"] * idata["posterior"].sizes["draw"]
    post = {n: _flat_draws(idata, n).reshape(S, *idata["posterior"][n].shape[2:]) for n in names}
    y_test = np.asarray(y_test, dtype=int)

    out = {}
    for label, probs, probs_shift in (
        (MLE_NET, special.expit(forward(mle.params, X_test, activation, L)[:, 0]),
         special.expit(forward(mle.params, np.asarray(X_test) + shift, activation, L)[:, 0])),
        (NUTS, special.expit(forward(post, X_test, activation, L)[..., 0]).mean(0),
         special.expit(forward(post, np.asarray(X_test) + shift, activation, L)[..., 0]).mean(0)),
    ):
        p = np.clip(probs, 1e-300, 1 - 1e-16)
        nll = -np.mean(y_test * np.log(p) + (1 - y_test) * np.log1p(-p))
        out[label] = {"accuracy": float(np.mean((probs > 0.5) == y_test)),
                      "nll_nats": float(nll), "nll_bits": float(nll / np.log(2)),
                      "brier": calibration.brier_score(y_test, probs),
                      "ece_10_bins": calibration.expected_calibration_error(y_test, probs),
                      "shift_auroc_entropy": auroc(binary_entropy(probs), binary_entropy(probs_shift))}
    fs, diag, _ = function_space_check(idata, X_test, activation, L)
    return Evaluation(model, mle, None, idata, out, fs, diag)


def deep_ensemble(model, starts: list[dict], maxiter: int) -> list[dict]:
    """A deep ensemble (Lakshminarayanan et al. 2017, with the model's own prior as weight
    decay and a shared noise sd per member): one MAP net (:func:`_map_params`) from each
    prior-drawn start. Its predictive is the equal-weight mixture of the members' normals."""
    return [_map_params(model, start, maxiter) for start in starts]


def protocol_members(d, protocol: BNNProtocol):
    """The model (the protocol's network on ``d``'s training split) and its deep ensemble as
    :func:`evaluate` trains it without a member pool: one MAP net per chain, from the first
    prior draws of ``prior_starts(model, max(3, chains), seed=protocol.sampler.seed)`` (the
    draws the MLE net also starts from). For probes that need a split's members alone
    (``benchmarks/ggn_layerwise.py``, ``benchmarks/mclmc_probe.py``)."""
    model = protocol.net.build_model(d["X_train"], d["y_train"])
    K = protocol.sampler.chains
    starts = prior_starts(model, max(3, K), seed=protocol.sampler.seed)
    return model, deep_ensemble(model, starts[:K], protocol.mle_maxiter)


def best_members(model, members: list[dict], k: int) -> tuple[list[dict], list[float]]:
    """The ``k`` members with the highest MAP objective, best first, and that objective for
    every member in the order given. The objective is ``model.logp(jacobian=False)`` at the
    member (training data only): what ``pm.find_MAP`` maximised to find it. A mode hundreds
    of nats below the best holds almost none of the posterior's mass, and chains started in
    such modes are the ones that got stuck on energy (README, "A member pool")."""
    # compiled once per model (shared with the GGN Laplace's PSIS check): the data are shared
    # variables, so a protocol that swaps each split into one model reuses it on every split
    logp = compiled_logp(model, jacobian=False)
    values = [float(logp(value_point(model, m))) for m in members]
    order = np.argsort(values, kind="stable")[::-1][:k]
    return [members[i] for i in order], values


def running_lppd(f, sigma, y_original, y_mean, y_sd) -> np.ndarray:
    """(chain, draw): the test log predictive density per point (original units) of each
    chain's predictive from its first t draws, t = 1..draws; with the pooled mixture's as one
    more row at the end. A chain whose curve still drifts at the end has not settled; curves
    that level off at different heights are chains in modes that predict differently."""
    f, sigma = np.asarray(f, float), np.asarray(sigma, float)
    mu = f * y_sd + y_mean  # (chain, draw, N)
    logp = stats.norm.logpdf(np.asarray(y_original)[None, None, :], mu,
                             sigma[..., None] * y_sd)
    t = np.arange(1, f.shape[1] + 1)[None, :, None]
    per_chain = (np.logaddexp.accumulate(logp, axis=1) - np.log(t)).mean(axis=-1)
    pooled = np.logaddexp.accumulate(
        special.logsumexp(logp, axis=0), axis=0) - np.log(t[0] * f.shape[0])
    return np.vstack([per_chain, pooled.mean(axis=-1)[None]])


def _map_params(model, start: dict, maxiter: int) -> dict:
    """MAP network: ``pm.find_MAP`` from one prior draw (the prior acts as weight decay)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = pm.find_MAP(model=model, initvals=start, return_inferencedata=True, jitter=False,
                           progressbar=False, maxiter=maxiter)
    return {n: np.asarray(tree["posterior"][n].values[0, 0]) for n in tree["posterior"].data_vars}


def fit_advi(model: pm.Model, start: dict, iterations: int = 30000, draws: int = 1000,
             seed: int = 0, learning_rate: float = 0.01) -> dict:
    """Mean-field ADVI (``pm.fit``) from one prior draw; ``draws`` samples of the approximation.

    Adam at ``learning_rate`` 0.01: PyMC's default optimiser (adagrad_window, 0.001) left a
    5-unit net on yacht near the constant predictor after 20,000 steps (test RMSE 8.8 vs 1.8
    with Adam, measured on split 0). Returns ``{name: (draws, ...)}`` for every free variable,
    plus ``"elbo_tail"`` (mean negative ELBO over the last 500 steps) and
    ``"posterior_check"`` (:func:`models.evaluation.psis.mean_field_check`'s verdict: is the
    mean-field normal the posterior?) and the seconds it took under ``"_meta"``.
    """
    with model:
        approx = pm.fit(n=int(iterations), method="advi", random_seed=seed, start=start,
                        progressbar=False, obj_optimizer=pm.adam(learning_rate=learning_rate))
    tree = approx.sample(draws, random_seed=seed + 1)
    out = {n: np.asarray(tree["posterior"][n].values[0]) for n in tree["posterior"].data_vars}
    hist = np.asarray(approx.hist)
    # is the mean-field normal the posterior? (PSIS k-hat, Yao et al. 2018)
    start = time.perf_counter()
    check = mean_field_check(model, np.asarray(approx.mean.eval()), np.asarray(approx.std.eval()),
                             approx.ordering, seed=seed + 2)
    out["_meta"] = {"iterations": int(iterations), "neg_elbo_tail": float(hist[-500:].mean()),
                    "posterior_check": check.to_dict(),
                    "posterior_check_seconds": time.perf_counter() - start}
    return out


def evaluate_held_out_class(X, y, held_out, protocol: BNNProtocol | None = None,
                            test_fraction: float = 0.25) -> Evaluation:
    """Out-of-distribution check with a HELD-OUT CLASS: a categorical (softmax) network is
    trained on every class but ``held_out``; in-distribution test points are a random
    ``test_fraction`` of those classes, the OOD points are all rows of the held-out class.

    Inputs are standardised by the training rows. Three predictors: the MLE net (``fit_mle``
    from 3 prior draws), the MAP net and the NUTS posterior (mean of the draws' softmax).
    Per predictor, on in-distribution test points: accuracy, NLL (nats, bits), multi-class
    Brier, top-label ECE (at most 10 bins, about 10 points per bin); and how well the
    predictive entropy flags the held-out class (AUROC; 0.5 = chance; 1 = every OOD point
    more uncertain than every test point) and the share of OOD points given one class with
    probability > 0.95 (confidently wrong: AUROC ranks, it does not say how sure the
    predictor still is). For the posterior also the mutual information
    (entropy of the mean minus mean entropy: the epistemic part) and its AUROC.
    ``protocol``: the network (its likelihood is set to "categorical"; default 8 tanh units,
    Xavier prior) and NUTS settings. ``extra``: ``entropies``, ``classes``, ``held_out``,
    ``n_train``, ``n_test``, ``n_ood``, ``ece_bins``.
    """
    protocol = protocol or BNNProtocol(NetworkSpec((8,), "tanh", "xavier_normal"))
    _regression_only(protocol)
    net = dataclasses.replace(protocol.net, likelihood="categorical")
    activation, seed = net.activation, protocol.sampler.seed
    Xv, names = as_design_matrix(X, "X", check_columns=False)
    y = np.asarray(y)
    if len(y) != len(Xv):
        raise ValueError(f"y: expected {len(Xv)} labels (one per row of X), got {len(y)}")
    classes = sorted(set(y.tolist()))
    if held_out not in classes:
        raise ValueError(f"held_out: {held_out!r} is not a class of y (classes: {classes})")
    if len(classes) < 3:
        raise ValueError(f"y: a held-out-class test needs at least 3 classes, got {classes}")
    ood = np.flatnonzero(y == held_out)
    train, test = random_split(np.flatnonzero(y != held_out), seed, test_fraction)
    n_test = len(test)
    Z = Standardizer.fit(Xv[train])(Xv)
    kept = [c for c in classes if c != held_out]
    model = net.build_model(pd_frame(Z[train], names), y[train], classes=kept)
    code = {c: k for k, c in enumerate(kept)}
    y_test = np.array([code[c] for c in y[test]])
    L = net.depth
    starts = prior_starts(model, 3, seed=seed)
    mle = fit_mle(model, initvals=starts, maxiter=protocol.mle_maxiter, warn=False)
    map_params = _map_params(model, starts[0], protocol.mle_maxiter)
    idata = sample_posterior(model, protocol.sampler)
    pnames = [f"w{k}" for k in range(1, L + 1)] + [f"b{k}" for k in range(1, L + 1)] + ["w_out", "b_out"]
    S = idata["posterior"].sizes["chain"] * idata["posterior"].sizes["draw"]
    post = {n: _flat_draws(idata, n).reshape(S, *idata["posterior"][n].shape[2:]) for n in pnames}
    bins = int(min(10, max(2, n_test // 10)))
    metrics, entropies = {}, {}
    for label, params, sampled in ((MLE_NET, mle.params, False), (MAP_NET, map_params, False),
                                   (NUTS, post, True)):
        p_draws_in = special.softmax(forward(params, Z[test], activation, L), axis=-1)
        p_draws_out = special.softmax(forward(params, Z[ood], activation, L), axis=-1)
        p_in = p_draws_in.mean(0) if sampled else p_draws_in
        p_out = p_draws_out.mean(0) if sampled else p_draws_out
        h_in, h_out = predictive_entropy(p_in), predictive_entropy(p_out)
        nll = -np.mean(np.log(np.clip(p_in[np.arange(n_test), y_test], 1e-300, 1.0)))
        row = {"accuracy": float(np.mean(np.argmax(p_in, 1) == y_test)),
               "nll_nats": float(nll), "nll_bits": float(nll / np.log(2)),
               "brier": calibration.multiclass_brier(y_test, p_in),
               "ece": calibration.top_label_ece(y_test, p_in, bins),
               "entropy_in_bits": float(h_in.mean() / np.log(2)),
               "entropy_ood_bits": float(h_out.mean() / np.log(2)),
               "ood_auroc_entropy": auroc(h_in, h_out),
               "ood_confident_95": float(np.mean(p_out.max(-1) > 0.95))}
        if sampled:
            mi_in = h_in - predictive_entropy(p_draws_in).mean(0)
            mi_out = h_out - predictive_entropy(p_draws_out).mean(0)
            row["ood_auroc_mutual_info"] = auroc(mi_in, mi_out)
            entropies[label] = (h_in, h_out, mi_in, mi_out)
        else:
            row["ood_auroc_mutual_info"] = float("nan")  # a point estimate has no epistemic part
            entropies[label] = (h_in, h_out, None, None)
        metrics[label] = row
    fs, diag, _ = function_space_check(idata, Z[test], activation, L)
    return Evaluation(model, mle, map_params, idata, metrics, fs, diag, extra={
        "entropies": entropies, "classes": kept, "held_out": held_out, "n_train": len(train),
        "n_test": n_test, "n_ood": len(ood), "ece_bins": bins})


def pd_frame(values, names):
    """A DataFrame with the given column names (keeps the ``feature`` coordinate readable)."""
    return pd.DataFrame(values, columns=list(names))
