"""Loaders for the bundled data sets in ``data/`` (see data/README.md for provenance).

Each returns ready-to-model pandas objects: a predictor DataFrame ``X`` (named columns become
the ``predictor`` coordinate) and an outcome Series ``y``, or a DataFrame for the
hierarchical and Gaussian examples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.base.splits import DataSplit

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def read(name: str) -> pd.DataFrame:
    path = DATA_DIR / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"bundled data set {name!r} not found at {path}")
    return pd.read_csv(path)


def wells(predictors=("dist100", "arsenic")) -> tuple[pd.DataFrame, pd.Series]:
    """Arsenic wells: did the household switch wells (1/0)? Default predictors as in
    Gelman & Hill (2007): distance to the nearest safe well (100 m) and arsenic level."""
    df = read("wells")
    return df[list(predictors)], df["switch"]


def kidiq(predictors=("mom_hs", "mom_iq")) -> tuple[pd.DataFrame, pd.Series]:
    """Child test scores on mother's high-school completion and IQ (linear regression)."""
    df = read("kidiq")
    return df[list(predictors)], df["kid_score"]


def warpbreaks() -> tuple[pd.DataFrame, pd.Series]:
    """Warp-break counts on wool type and tension, dummy-coded with wool A and tension L as
    baselines (Poisson regression)."""
    df = read("warpbreaks")
    X = pd.DataFrame({
        "woolB": (df["wool"] == "B").astype(float),
        "tensionM": (df["tension"] == "M").astype(float),
        "tensionH": (df["tension"] == "H").astype(float),
    })
    return X, df["breaks"]


def iris(predictors=("sepal_length", "sepal_width")) -> tuple[pd.DataFrame, pd.Series]:
    """Iris species on flower measurements (softmax regression). With all four measurements
    setosa is perfectly separable; the default two sepal measurements keep a finite MLE."""
    df = read("iris")
    return df[list(predictors)], df["species"]


def anes96() -> tuple[pd.DataFrame, pd.Series]:
    """1996 US party identification (7 classes) on five predictors: statsmodels' MNLogit example."""
    df = read("anes96")
    return df[["logpopul", "selfLR", "age", "educ", "income"]], df["PID"].astype(int)


def eight_schools() -> pd.DataFrame:
    """Eight schools: columns ``school``, ``y`` (effect estimate), ``sigma`` (its SE)."""
    return read("eight_schools")


def radon() -> pd.DataFrame:
    """Minnesota radon: ``log_radon``, ``floor``, ``uranium``, ``county`` (85 counties)."""
    return read("radon")


def newcomb() -> pd.Series:
    """Newcomb's 66 measurements of the passage time of light (deviations, ns)."""
    return read("newcomb")["deviation"].astype(float)


UCI = ("yacht", "energy", "concrete", "wine-quality-red")


def uci(name: str, split: int = 0) -> DataSplit:
    """A UCI regression benchmark split (Hernandez-Lobato & Adams 2015; Gal & Ghahramani 2016).

    Returns a :class:`DataSplit`: standardised training/test arrays (inputs and target standardised with the
    TRAINING split's mean and sd, the published protocol) and the target's mean and sd, to
    report metrics in original units. ``split`` in 0..19.
    """
    if name not in UCI:
        raise ValueError(f"name must be one of {UCI}, got {name!r}")
    folder = DATA_DIR / "uci" / name
    n_splits = int(np.loadtxt(folder / "n_splits.txt"))
    if not 0 <= split < n_splits:
        raise ValueError(f"split must be in 0..{n_splits - 1}, got {split}")
    data = np.loadtxt(folder / "data.txt")
    features = np.loadtxt(folder / "index_features.txt", dtype=int)
    target = int(np.loadtxt(folder / "index_target.txt"))
    train = np.loadtxt(folder / f"index_train_{split}.txt", dtype=int)
    test = np.loadtxt(folder / f"index_test_{split}.txt", dtype=int)
    X_train, X_test = data[train][:, features], data[test][:, features]
    y_train, y_test = data[train][:, target], data[test][:, target]
    return DataSplit.standardised(X_train, y_train, X_test, y_test, n_splits)
