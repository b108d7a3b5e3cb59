r"""Full-network Laplace with the generalised Gauss-Newton (GGN) Hessian and the linearised
predictive (Immer et al. 2021; Daxberger et al. 2021, "Laplace Redux"), around a MAP net.

With a Gaussian likelihood the GGN of the negative log-likelihood is
:math:`G = J^\top J / \sigma^2`, where :math:`J` (N x P) is the Jacobian of the network output
with respect to all P weights and biases at the MAP net. The posterior is approximated by
:math:`\mathcal N(\theta_*, (G + \alpha I)^{-1})` and the predictive is that of the network
linearised at :math:`\theta_*`: :math:`f(x) \sim \mathcal N(f_*(x),\ J(x) (G + \alpha
I)^{-1} J(x)^\top)`, :math:`y \sim \mathcal N(f_*(x), \cdot + \sigma^2)`, with :math:`\sigma`
the MAP net's. The prior precision :math:`\alpha` is chosen post hoc by the Laplace evidence

.. math::
    \log p(y \mid \theta_*) - \tfrac\alpha2 \lVert\theta_*\rVert^2 + \tfrac P2 \log\alpha
    - \tfrac12 \log\lvert G + \alpha I\rvert

(MacKay 1992; Laplace Redux's post-hoc tuning), in closed form over the eigenvalues of G. P x P
matrices: meant for networks of up to a few thousand weights (the UCI nets have 42-651).

The Jacobian is written by hand (backpropagation of one scalar output through the layers
:func:`models.families.bnn.forward` computes): a few matrix products in numpy, checked against
finite differences of ``forward`` in the tests. PyTorch's laplace library does this for torch
models; this project's networks are PyMC models evaluated in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from models.evaluation.last_layer import NetworkLaplace
from models.families.bnn import forward, numpy_activation


def _derivative(activation: str):
    return {"relu": lambda z, h: (z > 0).astype(float), "tanh": lambda z, h: 1.0 - h ** 2,
            "sigmoid": lambda z, h: h * (1.0 - h)}[activation]


def parameter_names(n_hidden: int) -> list[str]:
    """The order of the weights in the flat parameter vector: w1, b1, ..., w_out, b_out."""
    names = []
    for layer in range(1, n_hidden + 1):
        names += [f"w{layer}", f"b{layer}"]
    return names + ["w_out", "b_out"]


def jacobian(params: dict, X, activation: str, n_hidden: int) -> np.ndarray:
    """(N, P): the derivative of the (single) network output at each row of ``X`` with respect
    to every weight and bias, flattened in :func:`parameter_names` order (each array C-order)."""
    act, dact = numpy_activation(activation), _derivative(activation)
    hs, zs = [np.asarray(X, dtype=float)], []
    for layer in range(1, n_hidden + 1):
        zs.append(hs[-1] @ np.asarray(params[f"w{layer}"]) + np.asarray(params[f"b{layer}"]))
        hs.append(act(zs[-1]))
    n = len(hs[0])
    blocks = {"w_out": hs[-1][:, :, None], "b_out": np.ones((n, 1))}  # w_out is (H, 1)
    delta = np.asarray(params["w_out"])[:, 0][None, :] * dact(zs[-1], hs[-1])  # df/dz_L
    for layer in range(n_hidden, 0, -1):
        blocks[f"w{layer}"] = hs[layer - 1][:, :, None] * delta[:, None, :]
        blocks[f"b{layer}"] = delta
        if layer > 1:
            delta = (delta @ np.asarray(params[f"w{layer}"]).T) * dact(zs[layer - 2], hs[layer - 1])
    return np.concatenate([blocks[k].reshape(n, -1) for k in parameter_names(n_hidden)], axis=1)


def flat_parameters(params: dict, n_hidden: int) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(params[k], dtype=float))
                           for k in parameter_names(n_hidden)])


@dataclass(frozen=True)
class GGNLaplace(NetworkLaplace):
    """The linearised Laplace posterior of a whole network (:class:`NetworkLaplace` over every
    weight): ``cov`` (P x P) in :func:`parameter_names` order; the features are the network's
    Jacobian (:func:`jacobian`) and the mean is the MAP net's output."""

    def features(self, X) -> np.ndarray:
        return jacobian(self.params, X, self.activation, self.n_hidden)

    def mean_f(self, X, features: np.ndarray) -> np.ndarray:
        return forward(self.params, X, self.activation, self.n_hidden)[:, 0]


def fit_ggn_laplace(params: dict, X, y, activation: str, n_hidden: int,
                    prior_precision: float | None = None) -> GGNLaplace:
    """GGN Laplace around the network ``params`` (a MAP net with its noise ``sigma``) on the
    training data (X, y): see the module docstring. ``prior_precision``: fixed instead of
    chosen by the evidence."""
    sigma = float(np.asarray(params["sigma"]))
    J = jacobian(params, X, activation, n_hidden)
    theta = flat_parameters(params, n_hidden)
    G = J.T @ J / sigma ** 2
    lam, V = np.linalg.eigh(G)
    lam = np.clip(lam, 0.0, None)
    resid = np.asarray(y, float) - forward(params, X, activation, n_hidden)[:, 0]
    loglik = float(stats.norm.logpdf(resid, 0.0, sigma).sum())
    P, sq = len(theta), float(theta @ theta)

    def log_evidence(log_alpha):
        alpha = np.exp(log_alpha)
        return (loglik - 0.5 * alpha * sq + 0.5 * P * log_alpha
                - 0.5 * np.sum(np.log(lam + alpha)))

    if prior_precision is None:
        best = optimize.minimize_scalar(lambda a: -log_evidence(a), bounds=(-20.0, 20.0),
                                        method="bounded", options={"xatol": 1e-10})
        log_alpha = float(best.x)
    else:
        log_alpha = float(np.log(prior_precision))
    alpha = np.exp(log_alpha)
    cov = (V / (lam + alpha)) @ V.T
    return GGNLaplace(cov, float(alpha), sigma, float(log_evidence(log_alpha)),
                      {k: np.asarray(v) for k, v in params.items()}, activation, n_hidden)
