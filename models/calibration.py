"""Calibration metrics for probabilistic classifiers.

Hand-written because the formulas are two lines each and scikit-learn (which has
``brier_score_loss`` and ``calibration_curve``) is only a test dependency here; the tests
check these against scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
