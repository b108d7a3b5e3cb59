r"""The evidence (marginal likelihood) :math:`p(X) = \int p(X\mid\theta)\,p(\theta)\,d\theta`.

Closed forms for the three conjugate models where it exists, a general estimate for any PyMC
model from sequential Monte Carlo (``pm.sample_smc``), and the quantities a model comparison
puts beside it: Bayes factors, the likelihood-ratio test, AIC and BIC from the MLE engine, and
PSIS-LOO from ArviZ.

All log evidences are in nats; :func:`to_bits` converts (divide by ln 2).

Closed forms (written out here because no well-kept library exposes them as evidences; each is
tested against an independent density in scipy):

* :func:`normal_mean_log_evidence` -- :math:`y_i\sim\mathcal N(\mu,\sigma^2)`, σ known,
  :math:`\mu\sim\mathcal N(m_0,\tau_0^2)`; marginally
  :math:`y\sim\mathcal N(m_0\mathbf 1,\ \sigma^2 I+\tau_0^2\mathbf 1\mathbf 1^\top)`.
* :func:`beta_binomial_log_evidence` -- :math:`k` successes in :math:`n` Bernoulli trials,
  :math:`p\sim\text{Beta}(a,b)`: :math:`\log B(a+k,b+n-k)-\log B(a,b)` (+ log C(n,k) for a count).
* :func:`nig_log_evidence` -- linear regression with the normal-inverse-gamma prior
  :math:`\beta\mid\sigma^2\sim\mathcal N(m_0,\sigma^2V_0)`, :math:`\sigma^2\sim\text{IG}(a_0,b_0)`;
  marginally :math:`y\sim t_{2a_0}(Xm_0,\ (b_0/a_0)(I+XV_0X^\top))`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
from scipy import linalg, special, stats

from models.base import stopwatch
from models.base.checks import check_positive_int

LN2 = float(np.log(2.0))


def to_bits(nats):
    """Nats -> bits (log base 2)."""
    return np.asarray(nats) / LN2 if np.ndim(nats) else float(nats) / LN2


# ------------------------------------------------------------------------------ closed forms
def normal_mean_log_evidence(y, sigma: float, mu0: float, tau0: float) -> float:
    """log p(y) for y_i ~ N(mu, sigma^2) with sigma known and mu ~ N(mu0, tau0^2)."""
    y = np.asarray(y, dtype=float).ravel()
    if not (sigma > 0 and tau0 > 0):
        raise ValueError(f"sigma and tau0 must be positive, got sigma={sigma}, tau0={tau0}")
    n = y.size
    s2, t2 = sigma**2, tau0**2
    ybar = y.mean()
    ss = np.sum((y - ybar) ** 2)
    return float(-0.5 * n * np.log(2 * np.pi * s2) - 0.5 * np.log1p(n * t2 / s2)
                 - ss / (2 * s2) - n * (ybar - mu0) ** 2 / (2 * (s2 + n * t2)))


def beta_binomial_log_evidence(k: int, n: int, a: float = 1.0, b: float = 1.0,
                               ordered: bool = True) -> float:
    """log p(data) for k successes in n trials with p ~ Beta(a, b).

    ``ordered=True``: the evidence of the observed 0/1 sequence; ``False``: of the count k
    (adds log C(n, k), the beta-binomial pmf).
    """
    if not (0 <= k <= n):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not (a > 0 and b > 0):
        raise ValueError(f"a and b must be positive, got a={a}, b={b}")
    out = special.betaln(a + k, b + n - k) - special.betaln(a, b)
    if not ordered:
        out += special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    return float(out)


@dataclass
class NIG:
    """Normal-inverse-gamma: beta | s2 ~ N(m, s2 V), s2 ~ InvGamma(a, b)."""

    m: np.ndarray
    V: np.ndarray
    a: float
    b: float

    def beta_sd(self) -> np.ndarray:
        """Marginal sd of each beta_j (Student-t with 2a dof; finite for a > 1)."""
        return np.sqrt(self.b / (self.a - 1) * np.diag(self.V)) if self.a > 1 else \
            np.full(len(self.m), np.inf)

    def sigma2_mean(self) -> float:
        return self.b / (self.a - 1) if self.a > 1 else np.inf

    def draws(self, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """Exact posterior draws: (beta (n, p), sigma2 (n,))."""
        rng = np.random.default_rng(rng)
        s2 = self.b / rng.gamma(self.a, 1.0, size=n)
        L = np.linalg.cholesky(self.V)
        z = rng.standard_normal((n, len(self.m)))
        return self.m + np.sqrt(s2)[:, None] * z @ L.T, s2


def _check_nig(X, y, prior: NIG):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    if X.ndim != 2 or X.shape[0] != y.size:
        raise ValueError(f"X must be (n, p) with n = len(y) = {y.size}, got shape {X.shape}")
    if prior.V.shape != (X.shape[1], X.shape[1]) or np.shape(prior.m) != (X.shape[1],):
        raise ValueError(f"prior m and V must have {X.shape[1]} entries (columns of X), got "
                         f"m {np.shape(prior.m)}, V {prior.V.shape}")
    if not (prior.a > 0 and prior.b > 0):
        raise ValueError(f"prior a and b must be positive, got a={prior.a}, b={prior.b}")
    return X, y


def nig_update(X, y, prior: NIG) -> NIG:
    """Posterior NIG after observing (X, y) (precision form, Cholesky solves)."""
    X, y = _check_nig(X, y, prior)
    P0 = np.linalg.inv(prior.V)
    Pn = P0 + X.T @ X
    cn = linalg.cho_factor(Pn)
    mn = linalg.cho_solve(cn, P0 @ prior.m + X.T @ y)
    r = y - X @ mn
    d = mn - prior.m
    bn = prior.b + 0.5 * (r @ r + d @ P0 @ d)
    Vn = linalg.cho_solve(cn, np.eye(len(mn)))
    return NIG(mn, 0.5 * (Vn + Vn.T), prior.a + 0.5 * y.size, float(bn))


def nig_log_evidence(X, y, prior: NIG) -> float:
    """log p(y | X) for the conjugate normal-inverse-gamma linear regression."""
    X, y = _check_nig(X, y, prior)
    post = nig_update(X, y, prior)
    logdet_n = np.linalg.slogdet(post.V)[1]
    logdet_0 = np.linalg.slogdet(prior.V)[1]
    return float(-0.5 * y.size * np.log(2 * np.pi) + 0.5 * (logdet_n - logdet_0)
                 + prior.a * np.log(prior.b) - post.a * np.log(post.b)
                 + special.gammaln(post.a) - special.gammaln(prior.a))


def nig_loo_pointwise(X, y, prior: NIG) -> np.ndarray:
    """Exact leave-one-out log predictive densities log p(y_i | y_-i), one per row.

    The posterior without row i is NIG with precision P_n - x_i x_i', and the predictive of
    y_i under it is Student-t with 2 a_-i dof, location x_i' m_-i and squared scale
    (b_-i / a_-i)(1 + x_i' V_-i x_i). Closed form, so no Monte-Carlo error and no PSIS: for
    this conjugate model it is what PSIS-LOO estimates from posterior draws (written out
    because ArviZ has no conjugate LOO; ``az.loo`` on 4000 draws x 434 rows takes 1-2 s,
    this a few ms)."""
    X, y = _check_nig(X, y, prior)
    P0 = np.linalg.inv(prior.V)
    r0 = P0 @ prior.m
    Pn, rn = P0 + X.T @ X, r0 + X.T @ y
    # every row's downdated precision and right-hand side at once: (n, p, p) and (n, p)
    P = Pn[None] - X[:, :, None] * X[:, None, :]
    r = rn[None] - X * y[:, None]
    sol = np.linalg.solve(P, np.stack([r, X], axis=-1))  # P_-i^-1 [r_-i, x_i]
    m, Vx = sol[..., 0], sol[..., 1]
    a = prior.a + 0.5 * (y.size - 1)
    b = prior.b + 0.5 * (y @ y - y**2 + prior.m @ r0 - np.einsum("ij,ij->i", m, r))
    scale2 = b / a * (1.0 + np.einsum("ij,ij->i", X, Vx))
    return stats.t.logpdf(y, 2 * a, loc=np.einsum("ij,ij->i", X, m), scale=np.sqrt(scale2))


def nig_pointwise_loglik(X, y, beta: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    """(draws, n) matrix of log N(y_i | x_i beta, sigma2) for posterior draws."""
    X = np.asarray(X, dtype=float)
    mu = beta @ X.T
    return -0.5 * (np.log(2 * np.pi * sigma2)[:, None] + (y[None, :] - mu) ** 2 / sigma2[:, None])


# ------------------------------------------------------------------------------ PyMC versions
def normal_mean_model(y, sigma: float, mu0: float, tau0: float) -> pm.Model:
    """The conjugate normal-mean model as a PyMC model (for SMC and checks)."""
    with pm.Model() as model:
        mu = pm.Normal("mu", mu0, tau0)
        pm.Normal("y_obs", mu, sigma, observed=np.asarray(y, dtype=float))
    return model


def beta_bernoulli_model(y, a: float = 1.0, b: float = 1.0) -> pm.Model:
    """Bernoulli trials with a Beta(a, b) prior as a PyMC model."""
    with pm.Model() as model:
        p = pm.Beta("p", a, b)
        pm.Bernoulli("y_obs", p, observed=np.asarray(y, dtype=float))
    return model


def nig_model(X, y, prior: NIG) -> pm.Model:
    """The normal-inverse-gamma linear regression as a PyMC model."""
    X, y = _check_nig(X, y, prior)
    L0 = np.linalg.cholesky(prior.V)
    with pm.Model(coords={"coef": np.arange(X.shape[1])}) as model:
        sigma2 = pm.InverseGamma("sigma2", alpha=prior.a, beta=prior.b)
        beta = pm.MvNormal("beta", mu=prior.m, chol=pm.math.sqrt(sigma2) * L0, dims="coef")
        pm.Normal("y_obs", X @ beta, pm.math.sqrt(sigma2), observed=y)
    return model


# ------------------------------------------------------------------------------ SMC estimate
@dataclass
class EvidenceEstimate:
    """An SMC estimate of log p(data) (nats): the mean over independent SMC runs (chains) and
    its Monte-Carlo standard error (sd over runs / sqrt(runs))."""

    log_evidence: float
    mc_se: float
    per_chain: np.ndarray = field(repr=False)
    seconds: float = 0.0
    stages: int = 0

    @property
    def bits(self) -> float:
        return to_bits(self.log_evidence)


def smc_log_evidence(model: pm.Model, draws: int = 2000, chains: int = 4,
                     random_seed: int | None = 0, cores: int | None = None) -> EvidenceEstimate:
    """log marginal likelihood of any PyMC model with proper priors, by PyMC's sequential Monte
    Carlo (``pm.sample_smc``; likelihood tempering from the prior to the posterior).

    Each chain is an independent SMC run whose product of mean incremental weights is an
    unbiased estimate of p(data); we average their logs and take sd/sqrt(chains) as the
    Monte-Carlo error (the spread between runs is what PyMC reports to judge the estimate).
    Improper priors (Flat, HalfFlat) have no evidence and are refused.
    """
    draws = check_positive_int(draws, "draws", minimum=50)
    chains = check_positive_int(chains, "chains", minimum=2, maximum=64)
    improper = [rv.name for rv in model.free_RVs
                if type(rv.owner.op).__name__ in ("FlatRV", "HalfFlatRV")]
    if improper:
        raise ValueError(f"the evidence needs proper priors; {improper} are improper (Flat/HalfFlat)")
    start = time.perf_counter()
    with stopwatch.stage("SMC (compile + sampling)"):
        idata = pm.sample_smc(draws=draws, chains=chains, random_seed=random_seed, cores=cores,
                              progressbar=False, model=model, compute_convergence_checks=False)
    seconds = time.perf_counter() - start
    raw = idata.sample_stats["log_marginal_likelihood"].values
    per_chain = []
    for row in raw:  # object array: one array of per-stage values per chain
        vals = np.asarray([v for v in np.ravel(np.asarray(row, dtype=object))], dtype=float)
        vals = vals[np.isfinite(vals)]
        per_chain.append(vals[-1])
    per_chain = np.asarray(per_chain)
    beta = idata.sample_stats["beta"].values
    stages = int(max(np.isfinite(np.asarray(row, dtype=float)).sum() for row in beta))
    return EvidenceEstimate(float(per_chain.mean()),
                            float(per_chain.std(ddof=1) / np.sqrt(chains)),
                            per_chain, seconds, stages)


# ------------------------------------------------------------------------------ comparison
def lrt(loglik_big: float, loglik_small: float, df: int) -> tuple[float, float]:
    """Likelihood-ratio statistic 2(l1 - l0) and its chi-square(df) p-value (Wilks)."""
    from scipy import stats

    stat = 2.0 * (loglik_big - loglik_small)
    return float(stat), float(stats.chi2.sf(max(stat, 0.0), df))
