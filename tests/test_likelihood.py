"""The numpy/scipy likelihood core against scipy.stats and closed forms."""

import numpy as np
import pytest
from scipy import stats

from models.base import likelihood as lk


def test_product_of_million_densities_underflows_but_sum_of_logs_is_exact():
    demo = lk.product_vs_sum_of_logs(n=1_000_000, seed=3)
    assert demo.product_of_densities == 0.0
    assert demo.log_of_product == -np.inf
    x = np.random.default_rng(3).normal(0.0, 1.0, size=1_000_000)
    closed = -0.5 * x.size * np.log(2 * np.pi) - 0.5 * np.sum(x**2)
    assert np.isfinite(demo.sum_of_log_densities)
    assert demo.sum_of_log_densities == pytest.approx(closed, rel=1e-12)
    assert demo.sum_of_log_densities == pytest.approx(stats.norm.logpdf(x).sum(), rel=1e-12)


def test_univariate_gaussian_logpdf_matches_scipy(rng):
    x = rng.normal(3, 2, size=50)
    np.testing.assert_allclose(lk.gaussian_logpdf(x, 1.5, 0.7), stats.norm.logpdf(x, 1.5, 0.7),
                               rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="sigma"):
        lk.gaussian_logpdf(x, 0, -1)


def test_mvn_logpdf_matches_scipy(rng):
    A = rng.normal(size=(4, 4))
    cov = A @ A.T + 0.5 * np.eye(4)
    mean = rng.normal(size=4)
    x = rng.multivariate_normal(mean, cov, size=20)
    np.testing.assert_allclose(lk.mvn_logpdf(x, mean, cov),
                               stats.multivariate_normal(mean, cov).logpdf(x), rtol=0, atol=1e-10)


def test_mvn_rejects_non_positive_definite_covariance():
    with pytest.raises(ValueError, match="not positive definite"):
        lk.mvn_logpdf(np.zeros((1, 2)), np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        lk.mvn_logpdf(np.zeros((1, 2)), np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))


def test_log_preserves_argmax(rng):
    x = rng.normal(2.0, 1.0, size=30)
    grid = np.linspace(0, 4, 401)
    with np.errstate(under="ignore"):
        lik = np.array([np.prod(stats.norm.pdf(x, m, 1.0)) for m in grid])
    loglik = np.array([lk.iid_loglik(lk.gaussian_logpdf(x, m, 1.0)) for m in grid])
    assert np.argmax(lik) == np.argmax(loglik)


@pytest.mark.parametrize("shared", [True, False])
def test_classifier_decisions_unchanged_without_constants(rng, shared):
    X = np.vstack([rng.normal(m, 1.0, size=(40, 3)) for m in (0.0, 1.0, 2.5)])
    y = np.repeat([0, 1, 2], 40)
    clf = lk.GaussianClassifier(shared_cov=shared).fit(X, y)
    Xt = rng.normal(1.0, 2.0, size=(500, 3))
    np.testing.assert_array_equal(clf.predict(Xt), clf.predict(Xt, drop_constants=True))


def test_shared_covariance_gives_linear_boundary(rng):
    X = np.vstack([rng.normal(m, 1.0, size=(60, 2)) for m in (0.0, 2.0)])
    y = np.repeat([0, 1], 60)
    clf = lk.GaussianClassifier(shared_cov=True).fit(X, y)
    w, b = clf.linear_boundary(0, 1)
    Xt = rng.normal(1.0, 3.0, size=(300, 2))
    scores = clf.discriminants(Xt)
    np.testing.assert_allclose(scores[:, 0] - scores[:, 1], Xt @ w + b, atol=1e-10)
    # Independent reference: the same parameters through scipy's densities.
    pooled = ((X[y == 0] - X[y == 0].mean(0)).T @ (X[y == 0] - X[y == 0].mean(0))
              + (X[y == 1] - X[y == 1].mean(0)).T @ (X[y == 1] - X[y == 1].mean(0))) / len(y)
    ref = (stats.multivariate_normal(X[y == 0].mean(0), pooled).logpdf(Xt)
           - stats.multivariate_normal(X[y == 1].mean(0), pooled).logpdf(Xt))
    np.testing.assert_allclose(Xt @ w + b, ref, atol=1e-9)  # equal priors (60/60)
    with pytest.raises(ValueError, match="shared_cov"):
        lk.GaussianClassifier(shared_cov=False).fit(X, y).linear_boundary()


def test_nll_per_observation_equals_cross_entropy_in_nats_and_bits(rng):
    probs = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, size=200)
    ce = lk.cross_entropy(lk.one_hot(y, 4), probs).mean()
    manual = -np.mean(np.log(probs[np.arange(200), y]))
    assert lk.categorical_nll(y, probs) == pytest.approx(manual, rel=1e-12)
    assert lk.categorical_nll(y, probs) == pytest.approx(ce, rel=1e-12)
    assert lk.categorical_nll(y, probs, unit="bits") == pytest.approx(manual / np.log(2), rel=1e-12)


def test_entropy_kl_cross_entropy_identities(rng):
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    assert lk.entropy(p) == pytest.approx(stats.entropy(p), rel=1e-12)
    assert lk.entropy(p, unit="bits") == pytest.approx(stats.entropy(p, base=2), rel=1e-12)
    assert lk.kl_divergence(p, q) == pytest.approx(stats.entropy(p, q), rel=1e-12)
    assert lk.cross_entropy(p, q) == pytest.approx(lk.entropy(p) + lk.kl_divergence(p, q), rel=1e-12)
    assert lk.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    assert lk.cross_entropy(p, q) >= lk.entropy(p)  # the entropy is the floor
    with pytest.raises(ValueError, match="unit"):
        lk.entropy(p, unit="hartleys")
