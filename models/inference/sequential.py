r"""Sequential updating: yesterday's posterior is today's prior.

* Conjugate (exact): the normal-inverse-gamma linear regression of :mod:`models.inference.evidence`;
  updating batch by batch gives the full-data posterior to rounding error
  (:func:`nig_sequential`).
* Non-conjugate (approximate): a GLM whose coefficients are all unconstrained (logistic,
  Poisson). After each batch a multivariate normal is fitted to the NUTS draws (mean and
  sample covariance of the coefficients, which ARE the unconstrained space here) and used as
  the next batch's prior (:class:`SequentialGLM`). This is a Laplace-like approximation: it
  drops the posterior's skewness and tails, and its error accumulates over batches, so we
  measure it against the full-data posterior (same initial prior, same parametrisation)
  instead of assuming it away.

One PyMC model is compiled once (nutpie); each batch and each comparison fit swaps the data
and the prior's mean and Cholesky factor (``pm.Data``), so no fit recompiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
from scipy import stats

from models.inference.evidence import NIG, nig_update
from models.base.checks import as_design_matrix, as_outcome, check_positive_int
from models.inference.config import SamplerConfig
from models.inference.diagnostics import diagnose
from models.inference.mle import fit_mle
from models.inference.sampling import CompiledSampler, set_data


def batch_slices(n: int, n_batches: int) -> list[np.ndarray]:
    """Contiguous, nearly equal batches of row indices 0..n-1 (in the data's order)."""
    n_batches = check_positive_int(n_batches, "n_batches")
    if n_batches > n:
        raise ValueError(f"n_batches ({n_batches}) must not exceed the number of rows ({n})")
    return np.array_split(np.arange(n), n_batches)


def nig_sequential(X, y, prior: NIG, n_batches: int) -> list[NIG]:
    """The NIG posterior after each batch; the last one equals ``nig_update(X, y, prior)``."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    out, current = [], prior
    for idx in batch_slices(len(y), n_batches):
        current = nig_update(X[idx], y[idx], current)
        out.append(current)
    return out


def w1_standardised(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1-Wasserstein distance between the columns of two draw matrices, in units of b's sd."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return np.array([stats.wasserstein_distance(a[:, j], b[:, j]) / b[:, j].std(ddof=1)
                     for j in range(b.shape[1])])


def compare_draws(approx: np.ndarray, reference: np.ndarray, labels) -> pd.DataFrame:
    """Per parameter: means, sds, (mean difference)/sd_ref, sd ratio and standardised W1."""
    ref_sd = reference.std(axis=0, ddof=1)
    return pd.DataFrame({
        "mean (sequential)": approx.mean(axis=0), "mean (full data)": reference.mean(axis=0),
        "sd (sequential)": approx.std(axis=0, ddof=1), "sd (full data)": ref_sd,
        "Δmean / sd": (approx.mean(axis=0) - reference.mean(axis=0)) / ref_sd,
        "sd ratio": approx.std(axis=0, ddof=1) / ref_sd,
        "W1 / sd": w1_standardised(approx, reference),
    }, index=pd.Index(list(labels), name="parameter"))


def mvn_prior_glm(X, y, family: str = "logistic", prior_mu=None, prior_cov=None,
                  center=None) -> pm.Model:
    """GLM with a joint multivariate-normal prior on theta = (intercept at ``center``, beta).

    The linear predictor is theta_0 + (X - center) @ theta_1:; ``center`` defaults to the
    column means of X and is a constant (use the first batch's means in sequential work, so
    the parametrisation does not change as data arrive). ``intercept`` (at x = 0) is a
    Deterministic. Data containers: ``X``, ``y``, ``prior_mu``, ``prior_chol``.
    """
    families = ("logistic", "poisson")
    if family not in families:
        raise ValueError(f"family must be one of {families}, got {family!r}")
    X_values, names = as_design_matrix(X, "X")
    y_values = as_outcome(y, X_values.shape[0], "y",
                          kind="binary" if family == "logistic" else "count")
    p = X_values.shape[1] + 1
    center = X_values.mean(axis=0) if center is None else np.asarray(center, dtype=float)
    mu = np.zeros(p) if prior_mu is None else np.asarray(prior_mu, dtype=float)
    cov = np.diag(np.r_[2.5, 2.5 / X_values.std(axis=0)] ** 2) if prior_cov is None \
        else np.asarray(prior_cov, dtype=float)
    if mu.shape != (p,) or cov.shape != (p, p):
        raise ValueError(f"prior_mu must have {p} entries and prior_cov be {p}x{p}, got "
                         f"{mu.shape} and {cov.shape}")
    with pm.Model(coords={"coef": ["intercept_centered", *names], "predictor": names}) as model:
        X_data = pm.Data("X", X_values)
        y_data = pm.Data("y", y_values)
        mu_data = pm.Data("prior_mu", mu)
        chol_data = pm.Data("prior_chol", np.linalg.cholesky(cov))
        theta = pm.MvNormal("theta", mu=mu_data, chol=chol_data, dims="coef")
        eta = theta[0] + (X_data - center) @ theta[1:]
        pm.Deterministic("intercept", theta[0] - center @ theta[1:])
        if family == "logistic":
            pm.Bernoulli("y_obs", logit_p=eta, observed=y_data, shape=X_data.shape[0])
        else:
            pm.Poisson("y_obs", mu=pm.math.exp(eta), observed=y_data, shape=X_data.shape[0])
    return model


@dataclass
class SequentialResult:
    labels: list[str]
    batch_sizes: list[int]
    sequential: list[np.ndarray] = field(repr=False)   # draws after each batch (approximate)
    cumulative: list[np.ndarray] = field(repr=False)   # exact-target draws on data so far
    full_repeat: np.ndarray = field(repr=False)        # a second full-data run (noise floor)
    mle: list = field(repr=False)                      # MLEResult on the data so far
    diagnostics: list = field(default_factory=list, repr=False)  # (label, Diagnostics)

    @property
    def full(self) -> np.ndarray:
        return self.cumulative[-1]

    def final_comparison(self) -> pd.DataFrame:
        """Sequential (last batch) vs full-data posterior, per parameter."""
        return compare_draws(self.sequential[-1], self.full, self.labels)

    def noise_floor(self) -> pd.DataFrame:
        """The same comparison between two independent full-data runs: what Monte-Carlo error
        alone gives; approximation error is what exceeds it."""
        return compare_draws(self.full_repeat, self.full, self.labels)

    def by_batch(self) -> pd.DataFrame:
        """Per batch and parameter: sequential and cumulative posterior mean/sd, MLE ± SE on the
        data so far, and the standardised W1 between sequential and cumulative."""
        rows = []
        n = 0
        for k, (seq, cum, mle) in enumerate(zip(self.sequential, self.cumulative, self.mle)):
            n += self.batch_sizes[k]
            w1 = w1_standardised(seq, cum)
            for j, label in enumerate(self.labels):
                rows.append({"batch": k + 1, "n": n, "parameter": label,
                             "seq mean": seq[:, j].mean(), "seq sd": seq[:, j].std(ddof=1),
                             "full mean": cum[:, j].mean(), "full sd": cum[:, j].std(ddof=1),
                             "MLE": mle.params["theta"][j], "SE": mle.se["theta"][j],
                             "W1 / sd": w1[j]})
        return pd.DataFrame(rows)


RUN_DEFAULT = SamplerConfig(draws=1000, tune=1000, chains=2, seed=0)


class SequentialGLM:
    """Approximate sequential updating of a logistic or Poisson regression (see module doc).

    ``SequentialGLM(X, y, family, n_batches).run(config)`` (a :class:`SamplerConfig`, or its
    fields as keywords; ``random_seed`` is the base seed) compiles the
    model once, then for each batch samples with the previous posterior's MVN as prior; for
    comparison it also samples the exact target on the data so far (initial prior, cumulative
    data) and fits the MLE (``fit_mle`` on the same model: priors ignored) on the data so far.
    """

    def __init__(self, X, y, family: str = "logistic", n_batches: int = 5, prior_cov=None):
        X_values, self.names = as_design_matrix(X, "X")
        self.X = X_values
        self.y = as_outcome(y, X_values.shape[0], "y",
                            kind="binary" if family == "logistic" else "count")
        self.slices = batch_slices(len(self.y), n_batches)
        first = self.slices[0]
        # Centre at the FIRST batch's means: known before the rest arrives, fixed afterwards.
        self.center = self.X[first].mean(axis=0)
        self.model = mvn_prior_glm(self.X[first], self.y[first], family, center=self.center,
                                   prior_cov=prior_cov)
        self.prior_mu = self.model["prior_mu"].get_value()
        self.prior_chol = self.model["prior_chol"].get_value()
        self.labels = ["intercept_centered", *self.names]
        self.sampler = CompiledSampler(self.model, RUN_DEFAULT)

    def _draws(self, sampler, idx, mu, chol, seed, label=None) -> np.ndarray:
        tree = sampler.sample(seed, X=self.X[idx], y=self.y[idx], prior_mu=mu, prior_chol=chol)
        if label is not None:
            self._diagnostics.append((label, diagnose(tree, var_names=["theta"])))
        th = tree.posterior["theta"].values
        return th.reshape(-1, th.shape[-1])

    def run(self, config: SamplerConfig | None = None, **options) -> SequentialResult:
        config = SamplerConfig.from_options(config or RUN_DEFAULT, **options)
        sampler = self.sampler.with_config(config)
        random_seed = config.seed or 0
        mu, chol = self.prior_mu, self.prior_chol
        seq, cum, mles = [], [], []
        self._diagnostics = []
        last = len(self.slices) - 1
        for k, idx in enumerate(self.slices):
            d = self._draws(sampler, idx, mu, chol, random_seed + k,
                            label=f"sequential batch {k + 1}" if k == last else None)
            seq.append(d)
            # the approximation: an MVN fitted to this posterior becomes the next prior
            mu = d.mean(axis=0)
            chol = np.linalg.cholesky(np.cov(d, rowvar=False))
            so_far = np.concatenate(self.slices[: k + 1])
            cum.append(self._draws(sampler, so_far, self.prior_mu, self.prior_chol,
                                   random_seed + 1000 + k, label="full data" if k == last else None))
            set_data(self.model, X=self.X[so_far], y=self.y[so_far])
            mles.append(fit_mle(self.model, n_starts=2, random_seed=random_seed, warn=False))
        repeat = self._draws(sampler, np.arange(len(self.y)), self.prior_mu, self.prior_chol,
                             random_seed + 2000)
        return SequentialResult(self.labels, [len(s) for s in self.slices], seq, cum, repeat, mles,
                                self._diagnostics)
