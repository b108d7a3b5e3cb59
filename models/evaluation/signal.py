r"""Signal propagation through deep networks drawn from the weight priors of :mod:`models.bnn`.

For width :math:`n` and weight variance :math:`\sigma_w^2/n` (biases :math:`\sigma_b^2`), the
mean-field recursions for pre-activations :math:`z^l` are (Poole et al. 2016;
Schoenholz et al. 2017):

.. math::

    q^l = \sigma_w^2\, \mathbb E_{z\sim\mathcal N(0, q^{l-1})}[\phi(z)^2] + \sigma_b^2, \qquad
    q_{12}^l = \sigma_w^2\, \mathbb E[\phi(u_1)\phi(u_2)] + \sigma_b^2, \qquad
    \chi_1 = \sigma_w^2\, \mathbb E[\phi'(z)^2]

with :math:`(u_1, u_2)` bivariate normal with variances :math:`q^{l-1}` and covariance
:math:`q_{12}^{l-1}`; :math:`c^l = q_{12}^l / q^l`. :math:`\chi_1 > 1` is the chaotic phase
(nearby inputs decorrelate), :math:`< 1` the ordered one. :func:`simulate` draws networks
from the prior and measures the same quantities; :func:`mean_field` evaluates the recursion.
Hand-written: no library implements these recursions; the expectations use numpy's
Gauss-Hermite quadrature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.families.bnn import numpy_activation, weight_variance

# E over N(0, 1). 1-D: a dense grid, because at large q the integrands (phi'(sqrt(q) z)^2 for a
# saturated tanh) are spikes of width ~1/sqrt(q) that Gauss-Hermite nodes step over.
_GRID = np.linspace(-12.0, 12.0, 48_001)
_GRID_W = np.exp(-0.5 * _GRID**2)
_GRID_W /= _GRID_W.sum()
# 2-D cross term: Gauss-Hermite on a 160 x 160 product rule (its integrand is bounded).
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(160)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def activation_derivative(name: str):
    return {"relu": lambda z: (z > 0).astype(float), "tanh": lambda z: 1 - np.tanh(z) ** 2,
            "sigmoid": lambda z: (s := 1 / (1 + np.exp(-z))) * (1 - s)}[name]


def sigma_w2(prior: str, width: int) -> float:
    """sigma_w^2 = width x (one weight's prior variance) for a square layer."""
    return width * weight_variance(prior, width, width)


def mean_field(prior: str, activation: str, depth: int, width: int = 256, q0: float = 1.0,
               c0: float = 0.5, bias_sd: float = 0.0) -> pd.DataFrame:
    """The recursion for layers 1..depth from inputs with mean square ``q0`` and correlation
    ``c0`` (layer 1 is linear in the inputs: q^1 = sigma_w^2 q0 + sigma_b^2)."""
    sw2, sb2 = sigma_w2(prior, width), bias_sd**2
    phi, dphi = numpy_activation(activation), activation_derivative(activation)
    q, q12 = sw2 * q0 + sb2, sw2 * q0 * c0 + sb2
    rows = []
    for layer in range(1, depth + 1):
        sq = np.sqrt(q)
        chi = sw2 * np.sum(_GRID_W * dphi(sq * _GRID) ** 2)
        rows.append({"layer": layer, "q": q, "c": q12 / q, "chi_1": chi})
        c = np.clip(q12 / q, -1.0, 1.0)
        u1 = sq * _NODES[:, None]
        u2 = sq * (c * _NODES[:, None] + np.sqrt(1 - c**2) * _NODES[None, :])
        e_same = np.sum(_GRID_W * phi(sq * _GRID) ** 2)
        e_cross = np.sum(_WEIGHTS[:, None] * _WEIGHTS[None, :] * phi(u1) * phi(u2))
        q, q12 = sw2 * e_same + sb2, sw2 * e_cross + sb2
    return pd.DataFrame(rows).set_index("layer")


def simulate(prior: str, activation: str, depth: int, width: int = 256, networks: int = 20,
             c0: float = 0.5, bias_sd: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Draw ``networks`` square networks from the prior and propagate two inputs.

    Inputs: two vectors of mean square 1 and correlation ``c0``. Per layer: q (mean square
    pre-activation), c (correlation of the two inputs' pre-activations), chi_1 (mean squared
    singular value of the layer Jacobian, tr(J J^T)/width with J = W^T diag(phi'(z))),
    averaged over networks.
    """
    rng = np.random.default_rng(seed)
    phi, dphi = numpy_activation(activation), activation_derivative(activation)
    var = weight_variance(prior, width, width)
    uniform = prior.endswith("uniform")
    a = rng.standard_normal((networks, width))
    b = rng.standard_normal((networks, width))
    x1 = a
    x2 = c0 * a + np.sqrt(1 - c0**2) * b
    q, c, chi = np.zeros((networks, depth)), np.zeros((networks, depth)), np.zeros((networks, depth))
    h1, h2 = x1, x2
    for layer in range(depth):
        if uniform:
            half = np.sqrt(3 * var)
            W = rng.uniform(-half, half, size=(networks, width, width))
        else:
            W = rng.normal(0.0, np.sqrt(var), size=(networks, width, width))
        bias = rng.normal(0.0, bias_sd, size=(networks, 1, width)) if bias_sd else 0.0
        z = np.einsum("ni,nij->nj", h1, W) + (bias[:, 0] if bias_sd else 0.0)
        z2 = np.einsum("ni,nij->nj", h2, W) + (bias[:, 0] if bias_sd else 0.0)
        q[:, layer] = np.mean(z**2, axis=1)
        c[:, layer] = np.mean(z * z2, axis=1) / np.sqrt(np.mean(z**2, axis=1) * np.mean(z2**2, axis=1))
        if layer > 0:  # Jacobian of z^l w.r.t. z^{l-1}: W^T diag(phi'(z^{l-1}))
            chi[:, layer] = np.einsum("nij,ni->n", W**2, dphi(prev) ** 2) / width
        else:
            chi[:, layer] = np.nan
        prev = z
        h1, h2 = phi(z), phi(z2)
    # chi at layer l measures the step from l-1 to l; report it against layer l-1, like
    # mean_field's chi_1 (a property of the distribution of z at that layer). One more weight
    # matrix gives it for the last layer too.
    W = (rng.uniform(-np.sqrt(3 * var), np.sqrt(3 * var), size=(networks, width, width)) if uniform
         else rng.normal(0.0, np.sqrt(var), size=(networks, width, width)))
    last = np.einsum("nij,ni->n", W**2, dphi(prev) ** 2) / width
    chi_at = np.r_[chi[:, 1:].mean(axis=0), last.mean()]
    with np.errstate(invalid="ignore"):
        return pd.DataFrame({"layer": np.arange(1, depth + 1), "q": q.mean(0),
                             "c": np.nanmean(c, 0), "chi_1": chi_at}).set_index("layer")
