"""Pointwise quantities whose memory does not grow with rows x draws.

A posterior of S draws on N rows has S x N pointwise log-likelihood values: 4 x 1000 draws on
200,000 rows is 6.4 GB in float64, and a posterior predictive of the same shape as much again.
The reports need far less than that:

* held-out scores need, per point, log mean_s p(y_i | theta_s) (:func:`lppd`) or the mean
  likelihood (:func:`mean_likelihood`): both are accumulated one draw at a time, O(N) memory;
* the prior/likelihood power-scaling sensitivity needs only the total log-likelihood of each
  draw (``psense`` sums the pointwise values; :func:`total_log_likelihood`), O(S) memory;
* PSIS-LOO, LOO-PIT, Pareto k and the posterior predictive checks are estimated on a seeded
  simple random sample of rows (:func:`pointwise_rows`) when N exceeds
  :data:`POINTWISE_MAX_ROWS`, and the total elpd by ArviZ's difference estimator for
  subsampled LOO (Magnusson et al. 2019; ``arviz_stats``' ``diff_srs_estimator``, the
  estimator of its ``loo_subsample``, whose own entry point wants the full S x N
  log-likelihood in memory, which is what this module avoids).

Everything here reads the model's data containers as they are, so ``data_swapped`` scores
held-out data without rebuilding the model.
"""

from __future__ import annotations

import weakref

import numpy as np
import pymc as pm
import xarray as xr

from models.base.coords import OBS_DIM

# Above this many rows, pointwise LOO / LOO-PIT / predictive checks use a subsample ...
POINTWISE_MAX_ROWS = 10_000
# ... of this many rows (4000 draws x 5000 rows x 8 bytes = 160 MB per pointwise array).
POINTWISE_SUBSAMPLE = 5_000
# attrs of a log_likelihood / posterior_predictive group computed on a subsample of rows
ATTR_ROWS = "rows_of"  # N, the number of rows the subsample was drawn from


def pointwise_rows(n_rows: int, seed: int, max_rows: int | None = None,
                   size: int | None = None) -> np.ndarray | None:
    """None when ``n_rows <= max_rows`` (default :data:`POINTWISE_MAX_ROWS`: use every row);
    otherwise ``size`` (default :data:`POINTWISE_SUBSAMPLE`) distinct row indices drawn
    uniformly without replacement (seeded), sorted."""
    max_rows = POINTWISE_MAX_ROWS if max_rows is None else max_rows
    size = POINTWISE_SUBSAMPLE if size is None else size
    if n_rows <= max_rows:
        return None
    rng = np.random.default_rng([int(seed), 0x5EB5])
    return np.sort(rng.choice(n_rows, size=min(size, n_rows), replace=False))


def n_rows(model: pm.Model) -> int | None:
    """Rows of the model's observations (the length of its ``obs_id`` coordinate), or None."""
    coord = model.coords.get(OBS_DIM)
    return None if coord is None else len(coord)


def row_data(model: pm.Model) -> dict[str, np.ndarray]:
    """The model's data containers whose first dimension is ``obs_id`` (one row each)."""
    out = {}
    for name in model.named_vars:
        dims = model.named_vars_to_dims.get(name) or ()
        var = model[name]
        if dims and dims[0] == OBS_DIM and hasattr(var, "get_value"):
            out[name] = var.get_value()
    return out


def _relabel(ds: xr.Dataset, rows: np.ndarray, n_total: int) -> xr.Dataset:
    ds = ds.assign_coords({OBS_DIM: np.asarray(rows)}) if OBS_DIM in ds.dims else ds
    ds.attrs[ATTR_ROWS] = int(n_total)
    return ds


def _on_rows(model: pm.Model, rows: np.ndarray):
    """The model with every row-aligned data container cut to ``rows`` (restored on exit)."""
    from models.inference.sampling import data_swapped

    return data_swapped(model, **{k: v[rows] for k, v in row_data(model).items()})


def log_likelihood_rows(posterior, model: pm.Model, rows: np.ndarray) -> xr.Dataset:
    """PyMC's pointwise log-likelihood of ``posterior`` on the training rows ``rows`` only,
    labelled with their row numbers, ``attrs["rows_of"]`` = all rows."""
    total = n_rows(model)
    with _on_rows(model, rows):
        ll = pm.compute_log_likelihood(posterior, model=model, extend_inferencedata=False,
                                       progressbar=False)
    ll = ll.to_dataset() if isinstance(ll, xr.DataTree) else ll
    return _relabel(ll, rows, total)


def posterior_predictive_rows(idata, model: pm.Model, rows: np.ndarray, seed) -> xr.Dataset:
    """Posterior predictive draws at the training rows ``rows`` only, labelled like
    :func:`log_likelihood_rows`."""
    total = n_rows(model)
    posterior = xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})
    with _on_rows(model, rows):
        pp = pm.sample_posterior_predictive(posterior, model=model, random_seed=seed,
                                            progressbar=False)
    ds = pp["posterior_predictive"].to_dataset()
    return _relabel(ds, rows, total)


def subsampled(idata) -> int | None:
    """All rows N when ``idata``'s log_likelihood holds a subsample of them, else None."""
    if "log_likelihood" not in idata.children:
        return None
    n = idata["log_likelihood"].attrs.get(ATTR_ROWS)
    return None if n is None else int(n)


def pointwise_view(idata) -> xr.DataTree:
    """``idata`` with observed_data restricted to the rows its log_likelihood holds (when
    those are a subsample), so LOO-PIT and predictive checks compare like with like."""
    if subsampled(idata) is None or "observed_data" not in idata.children:
        return idata
    rows = idata["log_likelihood"][OBS_DIM].values
    groups = {k: idata[k].to_dataset() for k in idata.children}
    groups["observed_data"] = groups["observed_data"].sel({OBS_DIM: rows})
    return xr.DataTree.from_dict(groups)


# PSIS-LOO of a posterior, once per (tree, observed variable): the model-fit checks (Pareto k,
# and LOO-PIT through its log weights) and the LOO table read the same one. Each az.loo call
# on the wells posterior (4,000 draws x 2,265 rows) took 4-5 s; loo_pit, given the weights,
# 0.5 s instead of 3.3 s, with identical values.
# (DataTree is unhashable: keyed by id, each entry checked against a weak reference to its
# tree and dropped when the tree goes.)
_LOO: dict[int, tuple] = {}


def psis_loo(idata: xr.DataTree, var_name: str | None = None):
    """``arviz.loo(idata, var_name=var_name, pointwise=True)``, computed once per tree and
    variable while the tree's log_likelihood values stay the same arrays."""
    import warnings

    import arviz as az

    ll = idata["log_likelihood"].to_dataset()
    name = var_name or next(iter(ll.data_vars))
    values = ll[name].values
    tree_ref, by_name = _LOO.get(id(idata), (None, {}))
    if tree_ref is not None and tree_ref() is idata:
        hit = by_name.get(name)
        if hit is not None and hit[0]() is values:
            return hit[1]
    else:
        by_name = {}
        _LOO[id(idata)] = (weakref.ref(idata), by_name)
        weakref.finalize(idata, _LOO.pop, id(idata), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings: the reports say it in words
        loo = az.loo(idata, var_name=var_name, pointwise=True)
    by_name[name] = (weakref.ref(values), loo)
    return loo


def loo_pit_from(idata: xr.DataTree, var_name: str, loo, random_state=0) -> xr.Dataset:
    """``arviz.loo_pit`` with the log weights and Pareto k of an existing ``psis_loo``."""
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo_pit(idata, var_names=[var_name], random_state=random_state,
                          log_weights=loo.log_weights.to_dataset(name=var_name),
                          pareto_k=loo.pareto_k.to_dataset(name=var_name))


# ---------------------------------------------------------------- streamed over draws
def _draw_loglik(model: pm.Model, posterior):
    """(compiled elemwise log-likelihood fn of one draw's values, iterator over draws).
    Compiled on the model's current data; with transforms removed, as PyMC's
    ``compute_log_likelihood`` does (the draws are constrained values)."""
    from pymc.model.transform.conditioning import remove_value_transforms

    umodel = remove_value_transforms(model)
    fn = umodel.compile_fn(inputs=umodel.value_vars,
                           outs=umodel.logp(vars=umodel.observed_RVs, sum=False),
                           on_unused_input="ignore")
    post = posterior["posterior"] if isinstance(posterior, xr.DataTree) else posterior
    names = [rv.name for rv in model.free_RVs]
    values = {n: np.asarray(post[n].values) for n in names}
    n_chain, n_draw = next(iter(values.values())).shape[:2]
    dtypes = {umodel.rvs_to_values[rv].name: umodel.rvs_to_values[rv].type.dtype
              for rv in umodel.free_RVs}

    def draws():
        for c in range(n_chain):
            for d in range(n_draw):
                point = {umodel.rvs_to_values[umodel[n]].name: values[n][c, d] for n in names}
                out = fn({k: np.asarray(v, dtype=dtypes[k]) for k, v in point.items()})
                yield c, d, sum(np.ravel(o).astype(float) for o in out) if isinstance(
                    out, list) else np.ravel(out).astype(float)

    return (n_chain, n_draw), draws()


def total_log_likelihood(model: pm.Model, posterior) -> xr.Dataset:
    """sum_i log p(y_i | theta_s) per draw as a ``log_likelihood`` dataset with one
    observation (``psense`` power-scales the likelihood by this sum, so its values equal the
    pointwise group's), O(draws) memory."""
    (n_chain, n_draw), draws = _draw_loglik(model, posterior)
    total = np.empty((n_chain, n_draw))
    for c, d, ll in draws:
        total[c, d] = ll.sum()
    name = model.observed_RVs[0].name
    return xr.Dataset({name: (("chain", "draw", "all_rows"), total[..., None])},
                      coords={"chain": np.arange(n_chain), "draw": np.arange(n_draw)})


def lppd(model: pm.Model, posterior) -> np.ndarray:
    """Per observation of the model's current data: log mean_s p(y_i | theta_s), summed in
    log space one draw at a time (O(rows) memory). -inf where every draw gives -inf."""
    (n_chain, n_draw), draws = _draw_loglik(model, posterior)
    acc = None
    for _, _, ll in draws:
        ll = np.where(np.isnan(ll), -np.inf, ll)
        acc = ll if acc is None else np.logaddexp(acc, ll)
    return acc - np.log(n_chain * n_draw)


def mean_likelihood(model: pm.Model, posterior) -> np.ndarray:
    """Per observation: mean_s p(y_i | theta_s), one draw at a time (O(rows) memory)."""
    (n_chain, n_draw), draws = _draw_loglik(model, posterior)
    acc = None
    for _, _, ll in draws:
        acc = np.exp(ll) if acc is None else acc + np.exp(ll)
    return acc / (n_chain * n_draw)
