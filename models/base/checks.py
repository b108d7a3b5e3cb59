"""Input checks that run before any PyMC model is built, compiled or sampled.

PyMC is permissive where this project must not be: a NaN in ``observed=`` becomes a silently
imputed free variable, a string column fails deep inside pytensor, a constant predictor makes
the information matrix singular only after minutes of sampling. Every check here raises
:class:`DataError` (a ``ValueError``) naming the argument or column and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Bad input data: the message names the argument/column and what was expected."""


# Magnitudes above this are refused: the models square and exponentiate data (a 1e300
# predictor overflows a linear predictor or a data-scaled prior to inf, and the rank test
# then calls the column "collinear").
MAX_ABS = 1e100


def _rows_with(mask: np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:limit])
    return f"{idx.size} row(s), e.g. row {shown}" if idx.size > limit else f"row(s) {shown}"


def check_aligned(*named) -> None:
    """Pandas objects passed together (e.g. ``("X", X), ("y", y)``) must carry the same row
    labels in the same order: numpy arrays are matched by position, so ``y.sample(frac=1)``
    beside an unshuffled ``X`` would silently fit the wrong pairs (statsmodels refuses too)."""
    indexed = [(name, obj.index) for name, obj in named if isinstance(obj, pd.Series | pd.DataFrame)]
    for (name_a, a), (name_b, b) in zip(indexed, indexed[1:]):
        if len(a) != len(b) or a.equals(b):
            continue  # different lengths are reported by the length check, with the counts
        pos = int(np.flatnonzero(a.to_numpy() != b.to_numpy())[0])
        how = ("the same row labels in a different order" if set(a) == set(b)
               else "different row labels")
        raise DataError(f"{name_a} and {name_b} have {how} (pandas index; first difference at "
                        f"position {pos}: {a[pos]} vs {b[pos]}); align them, e.g. "
                        f"{name_b} = {name_b}.loc[{name_a}.index], or pass numpy arrays")


def as_design_matrix(X, name: str = "X", check_columns: bool = True) -> tuple[np.ndarray, list[str]]:
    """Return (float matrix N x P, column names) from a DataFrame or a 2-D array.

    Checks: 2-D, not empty, numeric, finite, and (``check_columns``) no constant, duplicated
    or perfectly collinear column (an intercept is always added by the models, so a constant
    column is collinear with it and its coefficient is not identified).
    """
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        if len(set(names)) != len(names):
            raise DataError(f"{name}: column names must be unique, got {names}")
        for col in X.columns:
            if not (pd.api.types.is_numeric_dtype(X[col]) or pd.api.types.is_bool_dtype(X[col])):
                bad = X[col][pd.to_numeric(X[col], errors="coerce").isna() & X[col].notna()]
                example = repr(bad.iloc[0]) if len(bad) else "non-numeric values"
                raise DataError(
                    f"{name}: column {col!r} must be numeric, found {example} "
                    f"(dtype {X[col].dtype}); encode categories as 0/1 columns first"
                )
        values = X.to_numpy(dtype=float)
    else:
        try:
            values = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name} must be numeric: {exc}") from None
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise DataError(f"{name} must be 2-D (observations x predictors), got {values.ndim}-D")
        names = [f"x{j}" for j in range(values.shape[1])]
    if values.shape[0] == 0:
        raise DataError(f"{name} is empty: it has no rows (observations)")
    if values.shape[1] == 0:
        raise DataError(f"{name} has no columns (predictors)")
    for j, col in enumerate(names):
        bad = ~np.isfinite(values[:, j])
        if bad.any():
            kind = "NaN" if np.isnan(values[bad, j]).any() else "inf"
            raise DataError(f"{name}: column {col!r} has {kind} in {_rows_with(bad)}; "
                            "remove or impute them before fitting")
        huge = np.abs(values[:, j]) > MAX_ABS
        if huge.any():
            raise DataError(f"{name}: column {col!r} has magnitudes above {MAX_ABS:g} in "
                            f"{_rows_with(huge)}; rescale it")
    if check_columns and values.shape[0] > 1:
        for j, col in enumerate(names):
            if np.ptp(values[:, j]) == 0:
                raise DataError(f"{name}: column {col!r} is constant ({values[0, j]:g}); its "
                                "coefficient is not identified next to the intercept")
        for j in range(len(names)):
            for k in range(j):
                if np.array_equal(values[:, j], values[:, k]):
                    raise DataError(f"{name}: column {names[j]!r} duplicates column {names[k]!r}")
        design = np.column_stack([np.ones(values.shape[0]), values])
        rank = np.linalg.matrix_rank(design)
        if rank < design.shape[1]:
            raise DataError(
                f"{name}: columns {names} (with the intercept) are perfectly collinear "
                f"(rank {rank} < {design.shape[1]}); drop a redundant column"
            )
    return values, names


def as_outcome(y, n: int | None = None, name: str = "y", kind: str = "real",
               against: str = "X") -> np.ndarray:
    """Validate a 1-D outcome. ``kind``: "real", "binary" (0/1), "count" (integers >= 0).

    ``n``: the required length, that of the argument named ``against``.
    """
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise DataError(f"{name} must be one column, got {y.shape[1]}")
        y = y.iloc[:, 0]
    if isinstance(y, pd.Series) and not (pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)):
        raise DataError(f"{name} must be numeric, got dtype {y.dtype} (e.g. {y.iloc[0]!r})")
    try:
        arr = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numeric") from None
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty: it has no observations")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{name} has {arr.shape[0]} values but {against} has {n}; lengths must match")
    bad = ~np.isfinite(arr)
    if bad.any():
        what = "NaN (missing)" if np.isnan(arr[bad]).any() else "inf"
        raise DataError(f"{name} has {what} values in {_rows_with(bad)}; PyMC would silently "
                        "impute missing outcomes, so remove them before fitting")
    if (np.abs(arr) > MAX_ABS).any():
        raise DataError(f"{name} has magnitudes above {MAX_ABS:g} in "
                        f"{_rows_with(np.abs(arr) > MAX_ABS)}; rescale it")
    if kind == "binary":
        levels = np.unique(arr)
        if not np.isin(levels, [0.0, 1.0]).all():
            raise DataError(f"{name} must be binary (0/1) for logistic regression, found values "
                            f"{levels[:6].tolist()}")
        return arr.astype("int64")
    if kind == "count":
        if (arr < 0).any():
            raise DataError(f"{name} must hold counts >= 0 for Poisson regression; negative in "
                            f"{_rows_with(arr < 0)}")
        if (arr != np.round(arr)).any():
            raise DataError(f"{name} must hold integer counts for Poisson regression; fractional "
                            f"in {_rows_with(arr != np.round(arr))}")
        return arr.astype("int64")
    if kind != "real":
        raise ValueError(f"kind must be 'real', 'binary' or 'count', got {kind!r}")
    return arr


def as_labels(y, n: int | None = None, name: str = "y", classes: Sequence | None = None,
              against: str = "X"):
    """Validate class labels; return (integer codes, class labels in order).

    ``classes`` fixes the order (the first is the reference class); every one must occur in
    ``y`` (a class with no observations has no likelihood information) and every label of
    ``y`` must be among them.
    """
    arr = np.asarray(y.to_numpy() if isinstance(y, pd.Series) else y, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty: it has no observations")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{name} has {arr.shape[0]} values but {against} has {n}; lengths must match")
    missing = pd.isna(pd.Series(arr)).to_numpy()
    if missing.any():
        raise DataError(f"{name} has missing labels in {_rows_with(missing)}")
    observed = list(pd.unique(pd.Series(arr)))
    if classes is None:
        try:
            classes = sorted(observed)
        except TypeError:
            classes = observed
    classes = list(classes)
    if len(classes) < 2:
        raise DataError(f"{name} must have at least 2 classes, found {classes}")
    absent = [c for c in classes if c not in set(observed)]
    if absent:
        raise DataError(f"{name}: class(es) {absent} have no observations in the data")
    unknown = [c for c in observed if c not in set(classes)]
    if unknown:
        raise DataError(f"{name}: label(s) {unknown} are not among classes {classes}")
    lookup = {c: i for i, c in enumerate(classes)}
    codes = np.array([lookup[v] for v in arr], dtype="int64")
    return codes, classes


def check_positive_int(value, name: str, maximum: int = 1_000_000, minimum: int = 1) -> int:
    """A count-like option (draws, tune, chains): an integer in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum or value > maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum:,}, got {value}")
    return int(value)
