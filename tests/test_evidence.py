"""Evidence (closed forms vs scipy densities and numerical integration, SMC vs closed forms)
and sequential updating (conjugate: exact; MVN-approximate logistic: within a stated
tolerance of the full-data posterior)."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from models.base import datasets
from models.inference import evidence as ev, sequential as sq


@pytest.fixture
def regression_data(rng):
    X = np.column_stack([np.ones(40), rng.normal(size=(40, 2))])
    y = X @ [1.0, 2.0, 0.0] + rng.normal(size=40)
    return X, y, ev.NIG(np.array([0.5, 0.0, 0.0]), np.diag([10.0, 1.0, 2.0]), 2.0, 3.0)


def test_normal_mean_evidence_matches_scipy_mvn(rng):
    y = rng.normal(1.0, 2.0, size=25)
    n = y.size
    cov = 2.0**2 * np.eye(n) + 3.0**2 * np.ones((n, n))
    ref = stats.multivariate_normal(np.full(n, 0.5), cov).logpdf(y)
    assert ev.normal_mean_log_evidence(y, 2.0, 0.5, 3.0) == pytest.approx(ref, rel=1e-10, abs=1e-8)


@pytest.mark.parametrize("k,n,a,b", [(0, 5, 1.0, 1.0), (7, 20, 2.0, 3.0), (150, 200, 0.5, 0.5)])
def test_beta_binomial_evidence_matches_scipy_and_quadrature(k, n, a, b):
    count = ev.beta_binomial_log_evidence(k, n, a, b, ordered=False)
    assert count == pytest.approx(stats.betabinom(n, a, b).logpmf(k), abs=1e-8)
    # the ordered sequence: integrate p^k (1-p)^(n-k) Beta(p | a, b) numerically (log-space
    # shift by the mode's value so that quad sees numbers of order 1)
    f = lambda p: np.exp(k * np.log(p) + (n - k) * np.log1p(-p) + stats.beta(a, b).logpdf(p) - shift)
    mode = np.clip((k + a - 1) / (n + a + b - 2), 1e-3, 1 - 1e-3)
    shift = k * np.log(mode) + (n - k) * np.log1p(-mode) + stats.beta(a, b).logpdf(mode)
    val, _ = integrate.quad(f, 0, 1, points=[mode], epsabs=0, epsrel=1e-12, limit=200)
    assert ev.beta_binomial_log_evidence(k, n, a, b) == pytest.approx(np.log(val) + shift, abs=1e-8)


def test_nig_evidence_matches_scipy_multivariate_t(regression_data):
    X, y, prior = regression_data
    shape = prior.b / prior.a * (np.eye(len(y)) + X @ prior.V @ X.T)
    ref = stats.multivariate_t(X @ prior.m, shape, df=2 * prior.a).logpdf(y)
    assert ev.nig_log_evidence(X, y, prior) == pytest.approx(ref, abs=1e-8)


def test_evidence_chain_rule_links_update_and_evidence(regression_data):
    """log p(y1, y2) = log p(y1) + log p(y2 | y1), with p(y2 | y1) the evidence of batch 2
    under the batch-1 posterior."""
    X, y, prior = regression_data
    post1 = ev.nig_update(X[:15], y[:15], prior)
    two_step = ev.nig_log_evidence(X[:15], y[:15], prior) + ev.nig_log_evidence(X[15:], y[15:], post1)
    assert two_step == pytest.approx(ev.nig_log_evidence(X, y, prior), abs=1e-8)


def test_nig_exact_loo_is_the_evidence_ratio_and_what_psis_loo_estimates(regression_data):
    """log p(y_i | y_-i) = log p(y) - log p(y_-i), both marginal likelihoods from scipy's
    multivariate t (nothing of the module's own); and ArviZ's PSIS-LOO on 4000 exact posterior
    draws estimates the same sum."""
    import arviz as az

    X, y, prior = regression_data

    def logp(rows):
        shape = prior.b / prior.a * (np.eye(rows.sum()) + X[rows] @ prior.V @ X[rows].T)
        return stats.multivariate_t(X[rows] @ prior.m, shape, df=2 * prior.a).logpdf(y[rows])

    every = np.ones(len(y), bool)
    ref = np.array([logp(every) - logp(np.arange(len(y)) != i) for i in range(len(y))])
    loo = ev.nig_loo_pointwise(X, y, prior)
    np.testing.assert_allclose(loo, ref, rtol=0, atol=1e-8)
    beta, s2 = ev.nig_update(X, y, prior).draws(4000, 3)
    ll = ev.nig_pointwise_loglik(X, y, beta, s2).reshape(4, 1000, -1)
    psis = az.loo(az.from_dict({"posterior": {"s2": s2.reshape(4, -1)},
                                "log_likelihood": {"y": ll}}))
    assert abs(psis.elpd - loo.sum()) < 0.1, (psis.elpd, loo.sum())


def test_nig_posterior_matches_ols_when_prior_is_flat(regression_data):
    X, y, _ = regression_data
    post = ev.nig_update(X, y, ev.NIG(np.zeros(3), 1e12 * np.eye(3), 1e-6, 1e-6))
    np.testing.assert_allclose(post.m, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-8)


def test_nig_draws_have_the_closed_form_moments(regression_data):
    X, y, prior = regression_data
    post = ev.nig_update(X, y, prior)
    beta, s2 = post.draws(200_000, 1)
    assert np.all(np.abs(beta.mean(axis=0) - post.m) < 4 * post.beta_sd() / np.sqrt(2e5))
    np.testing.assert_allclose(beta.std(axis=0), post.beta_sd(), rtol=0.01)
    assert s2.mean() == pytest.approx(post.b / (post.a - 1), rel=0.01)


@pytest.mark.parametrize("case", ["normal_mean", "beta_bernoulli", "nig"])
def test_smc_evidence_within_its_monte_carlo_error(case, rng, regression_data):
    """pm.sample_smc's log marginal likelihood: within 4 Monte-Carlo standard errors (sd over
    independent runs / sqrt(runs)) of the closed form."""
    if case == "normal_mean":
        y = rng.normal(1.0, 2.0, size=30)
        exact = ev.normal_mean_log_evidence(y, 2.0, 0.0, 3.0)
        model = ev.normal_mean_model(y, 2.0, 0.0, 3.0)
    elif case == "beta_bernoulli":
        y = (rng.random(40) < 0.3).astype(float)
        exact = ev.beta_binomial_log_evidence(int(y.sum()), y.size, 2.0, 3.0)
        model = ev.beta_bernoulli_model(y, 2.0, 3.0)
    else:
        X, y, prior = regression_data
        exact = ev.nig_log_evidence(X, y, prior)
        model = ev.nig_model(X, y, prior)
    est = ev.smc_log_evidence(model, draws=1000, chains=6, random_seed=3)
    assert 0 < est.mc_se < 0.2
    assert abs(est.log_evidence - exact) < 4 * est.mc_se, (est, exact)


def test_smc_refuses_improper_priors():
    import pymc as pm

    with pm.Model() as model:
        mu = pm.Flat("mu")
        pm.Normal("y", mu, 1, observed=[0.1, 0.2])
    with pytest.raises(ValueError, match="proper priors.*mu"):
        ev.smc_log_evidence(model)


def test_conjugate_sequential_equals_full_data_posterior(regression_data):
    X, y, prior = regression_data
    steps = sq.nig_sequential(X, y, prior, n_batches=4)
    full = ev.nig_update(X, y, prior)
    last = steps[-1]
    np.testing.assert_allclose(last.m, full.m, rtol=1e-10)
    np.testing.assert_allclose(last.V, full.V, rtol=1e-10, atol=1e-14)
    assert last.a == pytest.approx(full.a, rel=1e-12) and last.b == pytest.approx(full.b, rel=1e-10)
    assert [len(s) for s in sq.batch_slices(40, 4)] == [10, 10, 10, 10]


def test_approximate_sequential_logistic_within_stated_tolerance():
    """Stated tolerance for the MVN approximation on the wells logistic regression in 3
    batches: |Δmean| < 0.5 posterior sd, sd ratio in [0.8, 1.25], 1-Wasserstein < 0.5 sd
    against the full-data posterior under the same initial prior; the MLE on all data equals
    statsmodels' Logit."""
    import statsmodels.api as sm

    X, y = datasets.wells()
    run = sq.SequentialGLM(X, y, "logistic", n_batches=3).run(draws=500, tune=500, chains=2,
                                                              random_seed=11)
    final = run.final_comparison()
    assert (final["Δmean / sd"].abs() < 0.5).all(), final
    assert final["sd ratio"].between(0.8, 1.25).all(), final
    assert (final["W1 / sd"] < 0.5).all(), final
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    mle = run.mle[-1]
    np.testing.assert_allclose(mle.params["theta"][1:], ref.params.values[1:], rtol=1e-5)
    np.testing.assert_allclose(mle.se["theta"][1:], ref.bse.values[1:], rtol=1e-3)
    table = run.by_batch()
    assert list(table["n"].unique()) == [1007, 2014, 3020]


def test_w1_standardised_against_scipy(rng):
    a, b = rng.normal(0.3, 1, size=(5000, 1)), rng.normal(0, 2, size=(5000, 1))
    assert sq.w1_standardised(a, b)[0] == pytest.approx(
        stats.wasserstein_distance(a[:, 0], b[:, 0]) / b[:, 0].std(ddof=1))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="k <= n"):
        ev.beta_binomial_log_evidence(5, 3)
    with pytest.raises(ValueError, match="sigma and tau0"):
        ev.normal_mean_log_evidence([1.0], -1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="n_batches"):
        sq.batch_slices(3, 5)
    with pytest.raises(ValueError, match="family"):
        sq.mvn_prior_glm(pd.DataFrame({"x": [0.0, 1.0]}), [0, 1], family="probit")
