"""The likelihood and information-theory core: pure numpy/scipy, no PyMC.

These are the notes the project grew from (sections 2-3), made exact and testable:

* the log-likelihood of iid data is a **sum of log-densities**; the product of densities
  underflows long before the sum of logs loses precision (:func:`product_vs_sum_of_logs`);
* Gaussian log-densities in one and many dimensions, the latter through a Cholesky factor
  (:func:`gaussian_logpdf`, :func:`mvn_logpdf`);
* the Gaussian class-conditional classifier, whose decisions do not change when the
  class-independent constants are dropped (:class:`GaussianClassifier`);
* negative log-likelihood, cross-entropy, entropy and KL divergence, in nats or bits.

Why hand-written: scipy.stats has the densities (and the tests compare against it), but not
the Cholesky-based multivariate density with an explicit, named positive-definiteness error,
nor the information-theory quantities in a chosen unit with the NLL = cross-entropy identity
spelled out. Each function here is a few lines and is checked against scipy in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, special

LOG2 = np.log(2.0)
UNITS = {"nats": 1.0, "bits": 1.0 / LOG2}


def _unit_factor(unit: str) -> float:
    try:
        return UNITS[unit]
    except KeyError:
        raise ValueError(f"unit must be one of {sorted(UNITS)}, got {unit!r}") from None


# --------------------------------------------------------------------------- densities
def gaussian_logpdf(x, mu=0.0, sigma=1.0):
    """Elementwise log N(x | mu, sigma^2) = -0.5 ln(2 pi sigma^2) - (x - mu)^2 / (2 sigma^2)."""
    sigma = np.asarray(sigma, dtype=float)
    if np.any(sigma <= 0):
        raise ValueError(f"sigma must be > 0, got {sigma}")
    z = (np.asarray(x, dtype=float) - mu) / sigma
    return -0.5 * np.log(2 * np.pi) - np.log(sigma) - 0.5 * z**2


def cholesky(cov) -> np.ndarray:
    """Lower Cholesky factor of a covariance matrix, with a clear error if it is not PD."""
    cov = np.asarray(cov, dtype=float)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be a square 2-D matrix, got shape {cov.shape}")
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12):
        raise ValueError("cov must be symmetric")
    try:
        return linalg.cholesky(cov, lower=True)
    except linalg.LinAlgError:
        eig = np.linalg.eigvalsh(cov)
        raise ValueError(
            f"cov is not positive definite (smallest eigenvalue {eig.min():.3g}); "
            "a Gaussian needs a symmetric positive-definite covariance"
        ) from None


def mvn_logpdf(x, mean, cov):
    """log N(x | mean, cov) for each row of ``x`` via the Cholesky factor L (cov = L L^T).

    log p = -d/2 ln(2 pi) - sum(ln diag L) - 0.5 |L^{-1}(x - mean)|^2, never forming cov^{-1}
    or det(cov) explicitly (both lose precision and the determinant over/underflows in high d).
    """
    mean = np.asarray(mean, dtype=float)
    L = cholesky(cov)
    d = L.shape[0]
    if mean.shape != (d,):
        raise ValueError(f"mean must have shape ({d},) to match cov, got {mean.shape}")
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.shape[-1] != d:
        raise ValueError(f"x must have {d} columns to match cov, got {x.shape[-1]}")
    z = linalg.solve_triangular(L, (x - mean).T, lower=True)
    out = -0.5 * d * np.log(2 * np.pi) - np.log(np.diag(L)).sum() - 0.5 * (z**2).sum(axis=0)
    return out


def iid_loglik(logpdf_values) -> float:
    """Log-likelihood of iid data: the SUM of the per-observation log-densities."""
    return float(np.sum(logpdf_values))


@dataclass(frozen=True)
class UnderflowDemo:
    n: int
    product_of_densities: float  # prod_i p(x_i): underflows to 0.0 in float64
    sum_of_log_densities: float  # sum_i log p(x_i): finite
    closed_form: float  # -n/2 ln(2 pi sigma^2) - sum (x-mu)^2 / (2 sigma^2)
    log_of_product: float  # log(product) = -inf: the information is gone


def product_vs_sum_of_logs(n: int = 1_000_000, mu: float = 0.0, sigma: float = 1.0, seed: int = 0):
    """Show that the product of n Gaussian likelihoods underflows while the sum of logs does not.

    Each density is at most 1/sqrt(2 pi) ~ 0.4, so the product shrinks geometrically and
    leaves float64's range (~1e-308, subnormals to ~5e-324) after a few hundred terms.
    """
    x = np.random.default_rng(seed).normal(mu, sigma, size=n)
    densities = np.exp(gaussian_logpdf(x, mu, sigma))
    with np.errstate(under="ignore", divide="ignore"):
        product = float(np.prod(densities))
        log_of_product = float(np.log(product))
    sum_logs = iid_loglik(gaussian_logpdf(x, mu, sigma))
    closed = float(-0.5 * n * np.log(2 * np.pi * sigma**2) - np.sum((x - mu) ** 2) / (2 * sigma**2))
    return UnderflowDemo(n, product, sum_logs, closed, log_of_product)


# --------------------------------------------------------------- information theory
def _as_prob(p, name: str, axis=-1) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError(f"{name} must hold finite, non-negative probabilities")
    if not np.allclose(p.sum(axis=axis), 1.0, atol=1e-8):
        raise ValueError(f"{name} must sum to 1 along axis {axis}")
    return p


def entropy(p, unit: str = "nats", axis=-1):
    """H(p) = -sum p ln p (0 ln 0 = 0), in nats or bits."""
    p = _as_prob(p, "p", axis)
    return -special.xlogy(p, p).sum(axis=axis) * _unit_factor(unit)


def cross_entropy(p, q, unit: str = "nats", axis=-1):
    """H(p, q) = -sum p ln q, in nats or bits; infinite where q = 0 but p > 0."""
    p = _as_prob(p, "p", axis)
    q = _as_prob(q, "q", axis)
    with np.errstate(divide="ignore"):
        return -special.xlogy(p, q).sum(axis=axis) * _unit_factor(unit)


def kl_divergence(p, q, unit: str = "nats", axis=-1):
    """KL(p || q) = sum p ln(p / q) = H(p, q) - H(p) >= 0, in nats or bits."""
    p = _as_prob(p, "p", axis)
    q = _as_prob(q, "q", axis)
    with np.errstate(divide="ignore"):
        return special.rel_entr(p, q).sum(axis=axis) * _unit_factor(unit)


def categorical_nll(y, probs, unit: str = "nats", mean: bool = True):
    """Negative log-likelihood of integer labels ``y`` under predicted class probabilities.

    ``-sum_i ln probs[i, y_i]``; with ``mean=True`` it is divided by N, which equals the mean
    cross-entropy between one-hot labels and ``probs`` (tested).
    """
    probs = _as_prob(probs, "probs")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != probs.shape[0]:
        raise ValueError(f"y must be 1-D with {probs.shape[0]} labels, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= probs.shape[1]:
        raise ValueError(f"y must hold integer class indices in [0, {probs.shape[1] - 1}]")
    with np.errstate(divide="ignore"):
        nll = -np.log(probs[np.arange(y.shape[0]), y])
    total = nll.mean() if mean else nll.sum()
    return float(total * _unit_factor(unit))


def one_hot(y, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    out = np.zeros((y.shape[0], n_classes))
    out[np.arange(y.shape[0]), y] = 1.0
    return out


# ------------------------------------------------- Gaussian class-conditional classifier
@dataclass
class GaussianClassifier:
    """Gaussian class-conditional (generative) classifier: p(x | k) = N(mu_k, Sigma_k).

    Decision: argmax_k  ln pi_k + ln N(x | mu_k, Sigma_k). The term -d/2 ln(2 pi) is the same for
    every class and, with a shared covariance (``shared_cov=True``, i.e. LDA), so is
    -1/2 ln det Sigma and the quadratic x^T Sigma^{-1} x; dropping them changes no decision,
    and what remains is linear in x, so the boundary between two classes is a hyperplane
    w^T x + b = 0 (:meth:`linear_boundary`). Parameters are the maximum-likelihood ones
    (class means, covariances with divisor N_k, or the pooled divisor N for the shared one).
    """

    shared_cov: bool = False
    classes_: np.ndarray | None = None
    means_: np.ndarray | None = None
    covs_: np.ndarray | None = None
    log_priors_: np.ndarray | None = None

    def fit(self, X, y) -> GaussianClassifier:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        K, d = len(self.classes_), X.shape[1]
        self.means_ = np.stack([X[y == k].mean(axis=0) for k in self.classes_])
        covs = [np.cov(X[y == k].T, bias=True).reshape(d, d) for k in self.classes_]
        counts = np.array([(y == k).sum() for k in self.classes_])
        if self.shared_cov:
            pooled = sum(c * n for c, n in zip(covs, counts)) / counts.sum()
            covs = [pooled] * K
        self.covs_ = np.stack(covs)
        self.log_priors_ = np.log(counts / counts.sum())
        return self

    def discriminants(self, X, drop_constants: bool = False) -> np.ndarray:
        """Per-class scores (N, K). With ``drop_constants`` the class-independent terms go."""
        X = np.asarray(X, dtype=float)
        scores = []
        for k in range(len(self.classes_)):
            if drop_constants:
                L = cholesky(self.covs_[k])
                z = linalg.solve_triangular(L, (X - self.means_[k]).T, lower=True)
                s = self.log_priors_[k] - 0.5 * (z**2).sum(axis=0)
                if not self.shared_cov:
                    s = s - np.log(np.diag(L)).sum()  # ln det differs between classes
                scores.append(s)
            else:
                scores.append(self.log_priors_[k] + mvn_logpdf(X, self.means_[k], self.covs_[k]))
        return np.stack(scores, axis=1)

    def predict(self, X, drop_constants: bool = False) -> np.ndarray:
        return self.classes_[np.argmax(self.discriminants(X, drop_constants), axis=1)]

    def linear_boundary(self, j: int = 0, k: int = 1) -> tuple[np.ndarray, float]:
        """(w, b) with class j preferred over k iff w^T x + b > 0; only for a shared covariance."""
        if not self.shared_cov:
            raise ValueError("the boundary is linear only with shared_cov=True (LDA)")
        prec = np.linalg.inv(self.covs_[0])
        mj, mk = self.means_[j], self.means_[k]
        w = prec @ (mj - mk)
        b = -0.5 * (mj @ prec @ mj - mk @ prec @ mk) + self.log_priors_[j] - self.log_priors_[k]
        return w, float(b)
