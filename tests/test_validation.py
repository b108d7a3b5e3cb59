"""Bad input: a clear error naming the argument or column, before any model is compiled."""

import numpy as np
import pandas as pd
import pytest

from models.families import gaussian, hierarchical, linear, logistic, poisson, softmax
from models.inference import sample_posterior
from models.base.checks import DataError

X = pd.DataFrame({"a": [0.1, 0.5, 0.9, 1.3, 2.0, 2.2], "b": [1.0, 0.0, 2.0, 1.0, 3.0, 0.5]})
Y = pd.Series([0, 1, 0, 1, 1, 0])


@pytest.mark.parametrize("build, Xbad, ybad, match", [
    (linear.build, X.assign(a=[0.1, np.nan, 1, 2, 3, 4]), Y, r"column 'a' has NaN"),
    (linear.build, X.assign(b=[0.1, np.inf, 1, 2, 3, 4]), Y, r"column 'b' has inf"),
    (linear.build, X, Y.astype(float).where(Y > 0), r"y has NaN"),
    (linear.build, X.assign(a=["1", "x", "2", "3", "4", "5"]), Y, r"column 'a' must be numeric"),
    (linear.build, X, Y.iloc[:4], r"y has 4 values but X has 6"),
    (linear.build, X.iloc[:0], Y.iloc[:0], r"X is empty"),
    (linear.build, X.assign(c=1.0), Y, r"column 'c' is constant"),
    (linear.build, X.assign(c=X["a"]), Y, r"column 'c' duplicates column 'a'"),
    (linear.build, X.assign(c=X["a"] + 2 * X["b"]), Y, r"perfectly collinear"),
    (logistic.build, X, pd.Series([0, 1, 2, 1, 0, 1]), r"y must be binary"),
    (poisson.build, X, pd.Series([0, 1, -2, 1, 0, 1]), r"counts >= 0"),
    (poisson.build, X, pd.Series([0, 1, 2.5, 1, 0, 1]), r"integer counts"),
    # y shuffled, X not: numpy would pair them by position and fit the wrong rows
    (logistic.build, X, Y.sample(frac=1, random_state=1), r"same row labels in a different order"),
    (linear.build, X, Y.set_axis([10, 11, 12, 13, 14, 15]), r"different row labels"),
    (softmax.build, X, Y.iloc[::-1], r"different order"),
    (linear.build, X.assign(a=[0.1, 1e300, 1, 2, 3, 4]), Y, r"column 'a' has magnitudes above"),
    (linear.build, X, Y.astype(float).where(Y > 0, 1e300), r"y has magnitudes above"),
])
def test_bad_input_raises_named_error(build, Xbad, ybad, match):
    with pytest.raises(DataError, match=match):
        build(Xbad, ybad)


def test_softmax_class_absent_from_data():
    with pytest.raises(DataError, match=r"class\(es\) \['c'\] have no observations"):
        softmax.build(X, pd.Series(list("ababab")), classes=["a", "b", "c"])
    with pytest.raises(DataError, match="at least 2 classes"):
        softmax.build(X, pd.Series(list("aaaaaa")))


def test_hierarchical_and_gaussian_inputs():
    with pytest.raises(DataError, match="sigma must be > 0"):
        hierarchical.build([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(DataError, match="sigma has 1 values but y has 2"):
        hierarchical.build([1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="y has NaN"):
        gaussian.build([1.0, np.nan, 3.0])
    with pytest.raises(DataError, match="group has missing labels in row"):
        hierarchical.build_varying_intercept(None, [1.0, 2.0, 3.0], ["a", None, "b"])


@pytest.mark.parametrize("kwargs, match", [
    ({"draws": 0}, "draws must be between"), ({"draws": -5}, "draws must be between"),
    ({"chains": 10**6}, "chains must be between"), ({"tune": 1.5}, "tune must be an integer"),
    ({"sampler": "gibbs"}, "sampler must be one of"),
])
def test_sampler_arguments_checked_before_sampling(kwargs, match):
    model = gaussian.build([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=match):
        sample_posterior(model, **kwargs)
