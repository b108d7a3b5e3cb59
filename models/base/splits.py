"""Train/test splits and standardisation by the training rows, written once.

:func:`random_split` (a seeded random hold-out), :class:`Standardizer` (mean and sd of the
training rows, a zero sd left as 1) and :class:`DataSplit` (standardised training and test
arrays with the target's scale: what the BNN protocols score on; ``datasets.uci`` returns one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def random_split(rows, seed: int, test_fraction: float = 0.25,
                 sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices: a seeded permutation of ``rows`` (an int n for 0..n-1,
    or an array of row indices), the first ``max(1, round(test_fraction * n))`` for test.
    ``sort``: each part in row order (default) or in the permutation's order."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(rows)
    n_test = max(1, int(round(test_fraction * len(perm))))
    train, test = perm[n_test:], perm[:n_test]
    return (np.sort(train), np.sort(test)) if sort else (train, test)


@dataclass(frozen=True)
class Standardizer:
    """Column means and sds (ddof 0) of the training rows; a constant column keeps sd 1."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, X_train) -> Standardizer:
        X_train = np.asarray(X_train, dtype=float)
        sd = X_train.std(0)
        return cls(X_train.mean(0), np.where(sd > 0, sd, 1.0))

    def __call__(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=float) - self.mean) / self.sd


@dataclass(frozen=True)
class DataSplit:
    """A regression split, inputs and target standardised by the training rows: ``X_train``,
    ``y_train`` (standardised), ``X_test``, ``y_test_original`` (original units) and the
    target's ``y_mean``/``y_sd`` to report metrics in original units. ``split["X_train"]``
    works as ``split.X_train`` (the earlier dict form)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test_original: np.ndarray
    y_mean: float
    y_sd: float
    n_splits: int = 1

    @classmethod
    def standardised(cls, X_train, y_train, X_test, y_test, n_splits: int = 1) -> DataSplit:
        x = Standardizer.fit(X_train)
        y_train = np.asarray(y_train, dtype=float)
        y_mean, y_sd = y_train.mean(), y_train.std()
        return cls(x(X_train), (y_train - y_mean) / y_sd, x(X_test), np.asarray(y_test),
                   y_mean, y_sd, n_splits)

    def __getitem__(self, key: str):
        return getattr(self, key)
