r"""Last-layer Laplace around a MAP network (Daxberger et al. 2021, "Laplace Redux"): the
MLE-to-Bayes bridge for networks.

Keep the hidden layers at the MAP net's weights, so the network is a linear model in its last
layer: :math:`f(x) = \phi(x)^\top \theta`, with :math:`\phi(x)` the last hidden layer's
outputs plus a constant 1 (the output bias) and :math:`\theta` the output weights and bias.
With a Gaussian likelihood and the prior :math:`\theta \sim \mathcal N(0, \alpha^{-1} I)` the
Laplace approximation of the last layer is exact: it is Bayesian linear regression,

.. math::
    A = \alpha I + \Phi^\top \Phi / \sigma^2, \qquad m = A^{-1} \Phi^\top y / \sigma^2,

and the predictive at :math:`x_*` is :math:`\mathcal N(\phi_*^\top m,\ \phi_*^\top A^{-1}
\phi_* + \sigma^2)` (the linearised predictive; for the last layer there is nothing to
linearise). The prior precision :math:`\alpha` and the noise :math:`\sigma` are chosen by the
evidence (type-II maximum likelihood, MacKay 1992), the log marginal likelihood

.. math::
    \tfrac P2 \log\alpha - \tfrac N2 \log(2\pi\sigma^2) - \tfrac{1}{2\sigma^2}\lVert y -
    \Phi m\rVert^2 - \tfrac\alpha2 \lVert m\rVert^2 - \tfrac12 \log\lvert A\rvert,

maximised over :math:`(\log\alpha, \log\sigma)` with SciPy in the eigenbasis of
:math:`\Phi^\top\Phi`. Written here because the library that does this (laplace-torch) is
PyTorch's, and scikit-learn's ``BayesianRidge`` (the same criterion, fixed-point updates) would
be a runtime dependency for twenty lines; the tests check this against ``BayesianRidge``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from models.families.bnn import numpy_activation


def hidden_features(params: dict, X, activation: str, n_hidden: int) -> np.ndarray:
    """The last hidden layer's outputs at ``X`` for ONE network (no sample dims), with a
    column of ones appended for the output bias: (N, H + 1)."""
    act = numpy_activation(activation)
    h = np.asarray(X, dtype=float)
    for layer in range(1, n_hidden + 1):
        h = act(h @ np.asarray(params[f"w{layer}"]) + np.asarray(params[f"b{layer}"]))
    return np.column_stack([h, np.ones(len(h))])


@dataclass(frozen=True)
class NetworkLaplace:
    """A Gaussian over some of a network's parameters whose predictive is linear in them:
    f(x) ≈ mean_f(x) + features(x)·(θ - θ̂), so Var f(x) = features(x)ᵀ cov features(x).
    ``cov`` (its covariance), the evidence-chosen ``prior_precision`` and ``sigma``, the log
    evidence, and the network it sits on (``params``, ``activation``, ``n_hidden``).
    ``predict(X)`` gives the mean and the variance of f; the predictive variance of y adds
    sigma²."""

    cov: np.ndarray
    prior_precision: float
    sigma: float
    log_evidence: float
    params: dict
    activation: str
    n_hidden: int

    def features(self, X) -> np.ndarray:  # (N, P): d f / d θ at each row
        raise NotImplementedError

    def mean_f(self, X, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(mean of f, variance of f) at ``X``."""
        phi = self.features(X)
        return self.mean_f(X, phi), np.einsum("ij,jk,ik->i", phi, self.cov, phi)


@dataclass(frozen=True)
class LastLayerLaplace(NetworkLaplace):
    """The last layer's Gaussian posterior (:class:`NetworkLaplace` over the output weights
    and bias): ``mean`` (H + 1; output weights then bias) and ``cov`` = A⁻¹; the features are
    the hidden units plus a constant (:func:`hidden_features`)."""

    mean: np.ndarray = field(kw_only=True)

    def features(self, X) -> np.ndarray:
        return hidden_features(self.params, X, self.activation, self.n_hidden)

    def mean_f(self, X, features: np.ndarray) -> np.ndarray:
        return features @ self.mean


def _evidence_terms(lam, Ub, yy, n, log_alpha, log_sigma):
    """Log evidence of Bayesian linear regression in the eigenbasis of ΦᵀΦ (eigenvalues
    ``lam``, ``Ub`` = Vᵀ Φᵀ y, ``yy`` = yᵀy)."""
    alpha, beta = np.exp(log_alpha), np.exp(-2.0 * log_sigma)
    d = alpha + beta * lam
    m = beta * Ub / d  # the posterior mean in the eigenbasis
    fit = yy - 2.0 * m @ Ub + np.sum(lam * m ** 2)  # ||y - Φ m||²
    return (0.5 * len(lam) * log_alpha + 0.5 * n * np.log(beta) - 0.5 * n * np.log(2 * np.pi)
            - 0.5 * beta * fit - 0.5 * alpha * np.sum(m ** 2) - 0.5 * np.sum(np.log(d)))


def fit_last_layer(params: dict, X, y, activation: str, n_hidden: int) -> LastLayerLaplace:
    """Last-layer Laplace around the network ``params`` (a MAP net) on training data (X, y):
    see the module docstring. ``y`` in the units the network was fitted in (standardised)."""
    phi = hidden_features(params, X, activation, n_hidden)
    y = np.asarray(y, dtype=float)
    n = len(y)
    lam, V = np.linalg.eigh(phi.T @ phi)
    lam = np.clip(lam, 0.0, None)  # round-off can make a zero eigenvalue slightly negative
    Ub, yy = V.T @ (phi.T @ y), float(y @ y)

    def neg(z):
        return -_evidence_terms(lam, Ub, yy, n, z[0], z[1])

    start = np.array([0.0, np.log(max(np.std(y), 1e-3))])
    tight = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000}
    best = optimize.minimize(neg, start, method="L-BFGS-B", options=tight)
    # a second start from the other side of the noise scale, in case of two local optima
    other = optimize.minimize(neg, start + np.array([2.0, -1.0]), method="L-BFGS-B", options=tight)
    best = other if other.fun < best.fun else best
    if not np.all(np.isfinite(best.x)):
        raise ValueError("last-layer Laplace: the evidence optimisation did not converge")
    log_alpha, log_sigma = best.x
    alpha, beta = np.exp(log_alpha), np.exp(-2.0 * log_sigma)
    d = alpha + beta * lam
    cov = (V / d) @ V.T
    mean = V @ (beta * Ub / d)
    return LastLayerLaplace(cov, float(alpha), float(np.exp(log_sigma)), float(-best.fun),
                            {k: np.asarray(v) for k, v in params.items()}, activation, n_hidden,
                            mean=mean)
