"""Scalar labels of a variable from its own dims and coords: ``beta[height]``, ``beta[a, b]``.

Every table of this library is keyed by these labels, never by row order."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr


def _labels(name: str, dims, shape, coords) -> list[str]:
    """Scalar labels in C order, formatted as ArviZ does: ``beta[height]``, ``beta[a, b]``."""
    shape = tuple(int(s) for s in shape)
    if shape == ():
        return [name]
    axes = []
    for axis, n in enumerate(shape):
        dim = dims[axis] if dims and axis < len(dims) else None
        values = coords.get(dim) if dim else None
        axes.append([str(v) for v in values] if values is not None and len(values) == n
                    else [str(i) for i in range(n)])
    return [f"{name}[{', '.join(combo)}]" for combo in itertools.product(*axes)]


def model_labels(model: pm.Model, name: str, shape) -> list[str]:
    return _labels(name, model.named_vars_to_dims.get(name), shape, model.coords)


def scalar_labels(name: str, dims, shape, coords) -> list[str]:
    """The scalar labels ``beta[height]`` / ``beta[a, b]`` of a variable, in C order."""
    return _labels(name, dims, shape, coords)


def flat_by_label(da: xr.DataArray, name: str) -> pd.Series:
    """A DataArray without sample dims, flattened in C order and indexed by its own labels."""
    coords = {d: da.coords[d].values for d in da.dims if d in da.coords}
    return pd.Series(np.ravel(da.values), index=_labels(name, da.dims, da.shape, coords))



def scalars_by_label(ds: xr.Dataset, names, sample_dims=("chain", "draw")) -> dict:
    """Each scalar of the variables ``names`` of ``ds`` as its own (chain, draw) DataArray,
    keyed by its label (``theta[A]``), in C order: for plotting chosen scalars by label."""
    out = {}
    for name in names:
        da = ds[name].transpose(*sample_dims, ...)
        other = [d for d in da.dims if d not in sample_dims]
        coords = {d: da.coords[d].values for d in other if d in da.coords}
        labels = _labels(name, other, da.shape[len(sample_dims):], coords)
        flat = da.values.reshape(*da.shape[:len(sample_dims)], -1)
        for i, label in enumerate(labels):
            out[label] = xr.DataArray(flat[..., i], dims=sample_dims,
                                      coords={d: da.coords[d] for d in sample_dims
                                              if d in da.coords})
    return out
