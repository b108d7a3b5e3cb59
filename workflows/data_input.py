"""Reading a user's CSV, and checking ALL of it before anything is split, built or compiled.

Every error is one line naming the file, the column and the row as a user counts rows in the
file (the header is row 1, so the first data row is row 2), and what was expected.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from models.base.checks import MAX_ABS, DataError  # one magnitude limit, CLI and library

FAMILY_TARGET = {"linear": "real", "logistic": "binary", "poisson": "count", "softmax": "labels"}


def _fail(path: Path, text: str):
    raise SystemExit(f"error: --data {path}: {text}")


def _rows(index, limit: int = 5) -> str:
    """File row numbers (header = row 1) of 0-based data rows."""
    rows = [int(i) + 2 for i in index]
    shown = ", ".join(str(r) for r in rows[:limit])
    return f"row {shown}" if len(rows) == 1 else (
        f"rows {shown}" + (f" and {len(rows) - limit} more" if len(rows) > limit else ""))


def load_csv(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read ``path`` once and return the named columns (all when ``None``); exits with a clear
    message on bad input. Blank lines are kept as (empty) rows so that row numbers in errors
    are the file's own."""
    path = Path(path)
    if not path.is_file():
        _fail(path, "no such file")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:
        _fail(path, "not UTF-8 text (save the CSV as UTF-8)")
    except (OSError, csv.Error) as exc:
        _fail(path, f"not a readable CSV file ({exc})")
    if not header or not any(h.strip() for h in header):
        _fail(path, "the file is empty (expected a CSV with a header row)")
    names = [h.strip() for h in header]
    if any(not n for n in names):
        _fail(path, f"the header has an empty column name (column {names.index('') + 1})")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        _fail(path, f"column name(s) {dup} appear more than once in the header; names must be "
                    "unique")
    try:
        frame = pd.read_csv(path, skip_blank_lines=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        _fail(path, "the file is empty (expected a CSV with a header row)")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        _fail(path, f"not a readable CSV file ({' '.join(str(exc).split())})")
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        _fail(path, "the CSV has a header but no rows")
    if columns is None:
        return frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        _fail(path, f"column(s) {missing} not found; the file has {list(frame.columns)}")
    return frame[columns]


def _numeric(path: Path, frame: pd.DataFrame, col: str) -> np.ndarray:
    """A column as floats; refuses missing, non-numeric, non-finite and huge cells."""
    raw = frame[col]
    empty = raw.isna() | raw.astype(str).str.strip().eq("")
    if empty.any():
        _fail(path, f"column {col!r} has empty or NA cells in {_rows(np.flatnonzero(empty))}; "
                    "remove or impute them first")
    if pd.api.types.is_bool_dtype(raw):
        return raw.to_numpy(dtype=float)
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna()
    if bad.any():
        i = np.flatnonzero(bad)
        _fail(path, f"column {col!r} must be numeric; {raw.iloc[i[0]]!r} in {_rows(i)}")
    arr = values.to_numpy(dtype=float)
    inf = ~np.isfinite(arr)
    if inf.any():
        _fail(path, f"column {col!r} has inf in {_rows(np.flatnonzero(inf))}")
    huge = np.abs(arr) > MAX_ABS
    if huge.any():
        i = np.flatnonzero(huge)
        _fail(path, f"column {col!r} has {arr[i[0]]:g} in {_rows(i)}: magnitudes above "
                    f"{MAX_ABS:g} overflow the model; rescale the column")
    return arr


def numeric_column(path: Path, frame: pd.DataFrame, col: str) -> np.ndarray:
    """One numeric column of the file, every row checked (see :func:`check_table`)."""
    return _numeric(Path(path), frame, col)


def check_table(path: Path, frame: pd.DataFrame, target: str, predictors: list[str],
                family: str, test_fraction: float = 0.25) -> tuple[pd.DataFrame, pd.Series]:
    """Validate every row of the file (training and test rows alike) for ``family``, then
    return (X, y) with numeric predictors. Exits with a one-line message on the first problem."""
    path = Path(path)
    if target in predictors:
        _fail(path, f"--target {target!r} is also among --predictors")
    X = pd.DataFrame({c: _numeric(path, frame, c) for c in predictors}, index=frame.index)
    kind = FAMILY_TARGET[family]
    raw = frame[target]
    if kind == "labels":
        empty = raw.isna() | raw.astype(str).str.strip().eq("")
        if empty.any():
            _fail(path, f"column {target!r} (the target) has empty or NA cells in "
                        f"{_rows(np.flatnonzero(empty))}")
        y = raw
    else:
        y_arr = _numeric(path, frame, target)
        if kind == "binary" and not np.isin(y_arr, [0.0, 1.0]).all():
            i = np.flatnonzero(~np.isin(y_arr, [0.0, 1.0]))
            _fail(path, f"column {target!r} (the target) must be 0 or 1 for logistic "
                        f"regression; {y_arr[i[0]]:g} in {_rows(i)}")
        if kind == "count" and ((y_arr < 0) | (y_arr != np.round(y_arr)) | (y_arr > 1e9)).any():
            i = np.flatnonzero((y_arr < 0) | (y_arr != np.round(y_arr)) | (y_arr > 1e9))
            _fail(path, f"column {target!r} (the target) must hold counts (integers 0 to 1e9) "
                        f"for Poisson regression; {y_arr[i[0]]:g} in {_rows(i)}")
        y = pd.Series(y_arr.astype("int64") if kind in ("binary", "count") else y_arr,
                      index=frame.index, name=target)
    n = len(frame)
    n_test = max(1, int(round(test_fraction * n)))
    need = len(predictors) + 3  # intercept + slopes + a scale or one spare row, plus a test row
    if n - n_test < len(predictors) + 2 or n < need:
        _fail(path, f"{n} data row(s) are too few for {len(predictors)} predictor(s): the "
                    f"model needs at least {len(predictors) + 2} training rows after holding out "
                    f"{test_fraction:.0%} for testing")
    return X, y


def split_target(frame: pd.DataFrame, target: str, predictors: list[str] | None):
    X = frame[predictors] if predictors else frame.drop(columns=[target])
    return X, frame[target]


__all__ = ["DataError", "check_table", "load_csv", "numeric_column", "split_target"]
