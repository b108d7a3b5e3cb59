"""Held-out predictive scores (plug-in MLE vs posterior predictive) and stacking of chains."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from models.base.likelihood import LOG2
from models.inference import pointwise as streamed
from models.inference.mle import MLEResult
from models.inference.sampling import data_swapped


def point_tree(model: pm.Model, params: dict[str, np.ndarray]) -> xr.DataTree:
    """A one-chain, one-draw 'posterior' holding a point estimate (for pm.compute_log_likelihood)."""
    data = {}
    for rv in model.free_RVs:
        value = np.asarray(params[rv.name])
        dims = list(model.named_vars_to_dims.get(rv.name) or [])
        if len(dims) != value.ndim:
            dims = [f"{rv.name}_dim_{i}" for i in range(value.ndim)]
        data[rv.name] = (["chain", "draw", *dims], value[None, None])
    coords = {d: model.coords[d] for d in model.coords}
    ds = xr.Dataset(data, coords={k: list(v) for k, v in coords.items() if v is not None})
    return xr.DataTree.from_dict({"posterior": ds})


def pointwise_log_likelihood(model: pm.Model, posterior: xr.DataTree) -> np.ndarray:
    """log p(y_i | theta_s) as an array (samples, observations), computed by PyMC."""
    ll = pm.compute_log_likelihood(posterior, model=model, extend_inferencedata=False,
                                   progressbar=False)
    name = model.observed_RVs[0].name
    arr = ll[name]  # extend_inferencedata=False returns the log_likelihood dataset itself
    sample_dims = ["chain", "draw"]
    arr = arr.stack(sample=sample_dims).transpose("sample", ...)
    return arr.values.reshape(arr.shape[0], -1)


def _check_test_data(test_data: dict) -> None:
    """Held-out data must be finite numbers: a NaN or inf would make every score NaN."""
    from models.base.checks import DataError

    for name, values in test_data.items():
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"test data {name!r} must be numeric") from None
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])[:5].tolist() if arr.ndim else [0]
            raise DataError(f"test data {name!r} has NaN or inf in row(s) {rows}: refuse to "
                            "score held-out data that the model cannot evaluate")


def _check_support(ll: np.ndarray, test_data: dict) -> None:
    """A test point outside the likelihood's support (a logistic outcome of 2, a negative
    count) has log-likelihood -inf or NaN under every draw: refuse it, naming the rows."""
    from models.base.checks import DataError

    bad = ~np.isfinite(ll).any(axis=0)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(f"test data: row(s) {rows} lie outside the likelihood's support "
                        "(log-likelihood -inf or NaN under every posterior draw), e.g. an outcome "
                        "the family cannot produce; check them against the training data's type")


def predictive_log_score(model: pm.Model, mle: MLEResult, idata: xr.DataTree,
                         **test_data) -> pd.DataFrame:
    """Held-out log score of the plug-in MLE predictive vs the posterior predictive.

    ``test_data`` are the data containers to swap in (e.g. ``X=X_test, y=y_test``); the model
    is not recompiled and its training data are restored afterwards. Posterior predictive
    density per observation: log mean_s p(y_i | theta_s) (log-sum-exp). Rows: "mle_plugin",
    "posterior_predictive"; columns: total and per-observation score in nats and bits, and
    the per-observation gain over the plug-in MLE with its paired standard error (sd of the
    pointwise differences / sqrt(n)), in nats and bits.
    """
    _check_test_data(test_data)
    posterior = xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})
    with data_swapped(model, **test_data):
        # one draw at a time: memory grows with the test rows, not test rows x draws
        lppd = streamed.lppd(model, posterior)
        params = {n: np.nan_to_num(v) for n, v in mle.params.items()}
        ll_mle = pointwise_log_likelihood(model, point_tree(model, params))[0]
    _check_support(lppd[None, :], test_data)
    rows = {}
    for label, pointwise in (("mle_plugin", ll_mle), ("posterior_predictive", lppd)):
        n = pointwise.size
        diff = pointwise - ll_mle  # paired: the same held-out points
        se = diff.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        rows[label] = {"n_test": n, "log_score_nats": pointwise.sum(),
                       "per_obs_nats": pointwise.mean(), "per_obs_bits": pointwise.mean() / LOG2,
                       "gain_vs_plugin_nats": diff.mean(), "gain_se_nats": se,
                       "gain_vs_plugin_bits": diff.mean() / LOG2, "gain_se_bits": se / LOG2}
    return pd.DataFrame(rows).T


def predictive_class_probs(model: pm.Model, mle: MLEResult, idata: xr.DataTree, X,
                           n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, K) for new ``X``: plug-in MLE and posterior predictive.

    Generic over binary and categorical likelihoods: with every outcome set to class k, the
    pointwise likelihood IS p(y = k | x, theta); the posterior predictive probability is its
    mean over draws. The model's training data are restored afterwards.
    """
    X = np.asarray(X, dtype=float)
    posterior = xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})
    params = {n: np.nan_to_num(v) for n, v in mle.params.items()}
    plugin, post = [], []
    for k in range(n_classes):
        y_k = np.full(X.shape[0], k, dtype="int64")
        with data_swapped(model, X=X, y=y_k):
            post.append(streamed.mean_likelihood(model, posterior))  # one draw at a time
            plugin.append(np.exp(pointwise_log_likelihood(model, point_tree(model, params))[0]))
    return np.stack(plugin, axis=1), np.stack(post, axis=1)



# stacking put weight 1 on a chain that then scored -4.2 nats per test point vs -1.2 pooled).

# Chain stacking is trusted only if, in every chain, at most this share of observations has a
# Pareto k above ArviZ's good_k (min(1 - 1/log10(S), 0.7)): a few unreliable terms barely move
# a sum over hundreds of points; past that the weights reward the chain whose LOO is most
# over-estimated (measured: a 50-unit ReLU net on yacht had 47-66% of points above 0.7, and
# stacking put weight 1 on a chain that then scored -4.2 nats per test point vs -1.2 pooled).
STACKING_MAX_BAD_K_SHARE = 0.01


@dataclass
class ChainStacking:
    """Result of :func:`stack_chains`: one entry per chain."""

    weights: np.ndarray  # stacking weights, sum to 1 (equal weights when not reliable)
    elpd_loo: np.ndarray  # each chain's own PSIS-LOO elpd on the training data (nats)
    pareto_k_max: np.ndarray  # largest Pareto k of each chain's PSIS-LOO
    pareto_k_bad: np.ndarray  # share of observations with k > good_k (LOO unreliable there)
    stacking_weights: np.ndarray  # what stacking chose, whether used or not
    good_k: float = 0.7

    @property
    def reliable(self) -> bool:
        return bool(np.all(self.pareto_k_bad <= STACKING_MAX_BAD_K_SHARE))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"weight used": self.weights,
                             "stacking weight": self.stacking_weights,
                             "elpd_loo (train)": self.elpd_loo,
                             "Pareto k max": self.pareto_k_max,
                             f"share k > {self.good_k:.2f}": self.pareto_k_bad},
                            index=pd.Index(range(len(self.weights)), name="chain"))


def stack_chains(idata: xr.DataTree, model: pm.Model) -> ChainStacking:
    """Stacking weights for chains that do not mix (Yao, Vehtari & Gelman 2022, "Stacking for
    non-mixing Bayesian computations", JMLR 23(79)).

    When each chain is stationary but the chains sit in different modes, pooling them gives
    every mode the weight 1/chains, whatever its posterior mass. Stacking instead treats each
    chain as its own predictive distribution and weights the chains to maximise the
    leave-one-out log score of their mixture on the training data: each chain's pointwise
    elpd from PSIS-LOO (``arviz.loo``), the weights from ``arviz.compare(method="stacking")``.
    The pointwise log-likelihood is ``idata``'s own or computed by PyMC on ``model``'s data.
    Use the weights with the chains' draws (weight / draws per draw). Not a posterior: a
    predictive combination, and only as good as each chain's LOO: when more than
    ``STACKING_MAX_BAD_K_SHARE`` of any chain's observations have Pareto k above ArviZ's
    ``good_k``, ``reliable`` is False and ``weights`` fall back to equal (``stacking_weights``
    keeps what stacking chose, for the record). A chain that repeats one state, so that PSIS
    cannot fit a tail, has no LOO: its elpd is NaN, every observation counts as unreliable,
    and nothing is stacked (``stacking_weights`` NaN, equal weights used).
    """
    import arviz as az

    if "log_likelihood" in idata.children:
        ll = idata["log_likelihood"].to_dataset()
    else:
        ll = pm.compute_log_likelihood(idata, model=model, extend_inferencedata=False,
                                       progressbar=False)
    post = idata["posterior"].to_dataset()
    chains = post.sizes["chain"]
    if chains < 2:
        raise ValueError(f"stack_chains needs at least 2 chains, got {chains}")
    elpd, k_max, k_bad, good_k = {}, [], [], 0.7
    for c in range(chains):
        tree = xr.DataTree.from_dict({"posterior": post.isel(chain=[c]),
                                      "log_likelihood": ll.isel(chain=[c])})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the Pareto-k warning: reported in the result
                elpd[c] = az.loo(tree, pointwise=True)
        except ValueError as exc:
            # PSIS cannot fit a tail ("All tail values are the same"): the chain repeats one
            # state, so it has no LOO estimate at all; every observation counts as unreliable
            if "tail" not in str(exc):
                raise
            k_max.append(np.inf)
            k_bad.append(1.0)
            continue
        k = np.asarray(elpd[c].pareto_k).ravel()
        good_k = float(getattr(elpd[c], "good_k", 0.7))
        k_max.append(float(k.max()))
        k_bad.append(float((k > good_k).mean()))
    equal = np.full(chains, 1.0 / chains)
    if len(elpd) == chains:
        table = az.compare(elpd, method="stacking", round_to="none")
        stacked = table.loc[list(range(chains)), "weight"].to_numpy(dtype=float)
    else:  # a chain without LOO: nothing to stack on
        stacked = np.full(chains, np.nan)
    reliable = max(k_bad) <= STACKING_MAX_BAD_K_SHARE
    return ChainStacking(weights=stacked if reliable else equal,
                         elpd_loo=np.array([float(elpd[c].elpd) if c in elpd else np.nan
                                            for c in range(chains)]),
                         pareto_k_max=np.array(k_max), pareto_k_bad=np.array(k_bad),
                         stacking_weights=stacked, good_k=good_k)
