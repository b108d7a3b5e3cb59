"""Scores of predictions on held-out data, one implementation each: calibration (Brier, ECE,
reliability), predictive entropy (through the likelihood core's ``entropy``), AUROC, and the
RMSE / test log-likelihood of a regression predictive.

Hand-written because the formulas are two lines each and scikit-learn (which has
``brier_score_loss``, ``calibration_curve`` and ``roc_auc_score``) is only a test dependency
here; the tests check these against scikit-learn and scipy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

from models.base.likelihood import entropy


def brier_score(y, p) -> float:
    """Mean squared difference between the 0/1 outcome and the predicted probability."""
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def reliability_table(y, p, bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: count, mean predicted probability, observed frequency."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            rows.append({"bin": f"[{edges[b]:.1f}, {edges[b + 1]:.1f}{']' if b == bins - 1 else ')'}",
                         "n": int(mask.sum()), "mean_predicted": p[mask].mean(),
                         "observed_frequency": y[mask].mean()})
    return pd.DataFrame(rows).set_index("bin")


def expected_calibration_error(y, p, bins: int = 10) -> float:
    """ECE = sum over bins of (n_b / N) |observed frequency - mean predicted probability|."""
    t = reliability_table(y, p, bins)
    return float(np.sum(t["n"] / t["n"].sum() * np.abs(t["observed_frequency"] - t["mean_predicted"])))


def multiclass_brier(y_codes, probs) -> float:
    """Mean over observations of sum_k (p_k - 1[y = k])^2 (equals 2x the binary Brier for K=2)."""
    probs = np.asarray(probs, float)
    onehot = np.eye(probs.shape[1])[np.asarray(y_codes)]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def top_label_ece(y_codes, probs, bins: int = 10) -> float:
    """ECE of the top-label confidence: |accuracy - confidence| averaged over confidence bins."""
    probs = np.asarray(probs, float)
    correct = (np.argmax(probs, axis=1) == np.asarray(y_codes)).astype(float)
    return expected_calibration_error(correct, probs.max(axis=1), bins)


def predictive_regression_metrics(f, sigma, y_original, y_mean, y_sd, weights=None) -> dict:
    """RMSE and mean test log-likelihood (nats, bits) in the target's ORIGINAL units.

    ``f``: (S, N) network outputs in standardised units (S = 1 for a plug-in net), ``sigma``:
    (S,) noise sds. The predictive density is the mixture over S of normals, so for S = 1 it
    is the plug-in density and for posterior draws the posterior predictive. ``weights``: (S,)
    mixture weights summing to 1 (default 1/S each), e.g. stacking weights of chains.
    """
    f, sigma = np.atleast_2d(f), np.atleast_1d(sigma)
    w = np.full(f.shape[0], 1.0 / f.shape[0]) if weights is None else np.asarray(weights, float)
    mu = f * y_sd + y_mean
    logp = stats.norm.logpdf(y_original[None, :], mu, sigma[:, None] * y_sd)
    with np.errstate(divide="ignore"):  # a zero weight is log 0 = -inf: that draw drops out
        ll = special.logsumexp(logp + np.log(w)[:, None], axis=0)
    rmse = float(np.sqrt(np.mean((w @ mu - y_original) ** 2)))
    return {"rmse": rmse, "test_ll_nats": float(ll.mean()), "test_ll_bits": float(ll.mean() / np.log(2))}


def gaussian_predictive_metrics(mean, var, y_original, y_mean, y_sd) -> dict:
    """RMSE and mean test log-likelihood (nats, bits), in ORIGINAL units, of a normal
    predictive N(``mean``, ``var``) per test point given in standardised units (a Laplace or
    other Gaussian predictive, where the density is known in closed form). ``mean`` and
    ``var`` of shape (K, n): the equal-weight mixture of K normals per point (a Laplace
    approximation around each member of an ensemble), scored at the mixture's mean."""
    mu = np.atleast_2d(np.asarray(mean, float)) * y_sd + y_mean
    sd = np.sqrt(np.atleast_2d(np.asarray(var, float))) * y_sd
    ll = special.logsumexp(stats.norm.logpdf(y_original, mu, sd), axis=0) - np.log(len(mu))
    rmse = float(np.sqrt(np.mean((mu.mean(axis=0) - y_original) ** 2)))
    return {"rmse": rmse, "test_ll_nats": float(ll.mean()), "test_ll_bits": float(ll.mean() / np.log(2))}


def weighted_sd(f, w) -> np.ndarray:
    """sd over draws (axis 0) of ``f`` under draw weights ``w`` summing to 1."""
    mean = w @ f
    return np.sqrt(np.maximum(w @ (f - mean) ** 2, 0.0))


def auroc(scores_in, scores_out) -> float:
    """P(score_out > score_in): the Mann-Whitney U statistic over n_in x n_out (ties 1/2)."""
    u = stats.mannwhitneyu(scores_out, scores_in, alternative="two-sided").statistic
    return float(u / (len(scores_in) * len(scores_out)))


def predictive_entropy(probs) -> np.ndarray:
    """Entropy (nats) of each row of class probabilities (..., K): the likelihood core's
    :func:`models.base.likelihood.entropy` (0 ln 0 = 0)."""
    return entropy(probs)


def binary_entropy(p) -> np.ndarray:
    """Entropy (nats) of Bernoulli(p) for each p: :func:`predictive_entropy` of (1 - p, p)."""
    p = np.asarray(p, dtype=float)
    return predictive_entropy(np.stack([1 - p, p], axis=-1))
