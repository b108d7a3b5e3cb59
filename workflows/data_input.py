"""Reading a user's CSV with errors that name the file and the column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.validation import DataError


def load_csv(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read ``path`` once and return the named columns (all when ``None``); exits with a clear
    message on bad input."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: --data {path}: no such file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise SystemExit(f"error: --data {path}: the file is empty (expected a CSV with a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SystemExit(f"error: --data {path}: not a readable CSV file ({exc})") from None
    if frame.empty:
        raise SystemExit(f"error: --data {path}: the CSV has a header but no rows")
    if columns is None:
        return frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SystemExit(f"error: --data {path}: column(s) {missing} not found; the file has "
                         f"{list(frame.columns)}")
    return frame[columns]


def split_target(frame: pd.DataFrame, target: str, predictors: list[str] | None):
    X = frame[predictors] if predictors else frame.drop(columns=[target])
    return X, frame[target]


__all__ = ["DataError", "load_csv", "split_target"]
