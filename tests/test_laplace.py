"""The Laplace approximation: with a flat prior it is the MLE with its Wald standard errors
(checked against statsmodels, independently of fit_mle); with a conjugate normal prior on a
linear regression with known sigma it is the exact posterior (closed form)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import statsmodels.api as sm
from scipy import stats

from models.base import datasets
from models.families import linear, logistic, poisson, softmax
from models.inference.laplace import fit_laplace

RTOL = 1e-6


def _flat(fit, name):
    return np.ravel(fit.mode[name]), np.ravel(fit.sd[name])


def test_flat_prior_laplace_is_ols_mle_with_wald_ses():
    X, y = datasets.kidiq()
    fit = fit_laplace(linear.build(X, y), prior=False, draws=10)
    ref = sm.OLS(y, sm.add_constant(X)).fit()
    n, k = len(y), X.shape[1] + 1
    est = np.r_[fit.mode["intercept"], fit.mode["beta"]]
    se = np.r_[fit.sd["intercept"], fit.sd["beta"]]
    np.testing.assert_allclose(est, ref.params.values, rtol=RTOL)
    # the MLE's sigma^2 divides by n, statsmodels' by n - k
    np.testing.assert_allclose(se, ref.bse.values * np.sqrt((n - k) / n), rtol=RTOL)
    assert fit.mode["sigma"] == pytest.approx(np.sqrt(ref.ssr / n), rel=RTOL)


@pytest.mark.parametrize("family", ["logistic", "poisson"])
def test_flat_prior_laplace_is_the_glm_mle_with_wald_ses(family):
    if family == "logistic":
        X, y = datasets.wells()
        model, ref = logistic.build(X, y), sm.Logit(y, sm.add_constant(X)).fit(disp=0, tol=1e-12)
    else:
        X, y = datasets.warpbreaks()
        model = poisson.build(X, y)
        ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson()).fit(tol=1e-12)
    fit = fit_laplace(model, prior=False, draws=10)
    np.testing.assert_allclose(np.r_[fit.mode["intercept"], fit.mode["beta"]], ref.params.values,
                               rtol=RTOL)
    np.testing.assert_allclose(np.r_[fit.sd["intercept"], fit.sd["beta"]], ref.bse.values,
                               rtol=RTOL)


def test_flat_prior_laplace_optimises_once_where_the_mle_converged(monkeypatch):
    """The flat-prior mode is fit_mle's optimum: no second optimisation, and still
    statsmodels' MLE (the separated-data test below checks that it refuses where no MLE
    exists)."""
    import models.inference.laplace as laplace_module

    def no_second_optimisation(*args, **kwargs):
        raise AssertionError("fit_laplace(prior=False) optimised again after fit_mle")

    monkeypatch.setattr(laplace_module, "maximise", no_second_optimisation)
    X, y = datasets.wells()
    fit = fit_laplace(logistic.build(X, y), prior=False, draws=10)
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(np.r_[fit.mode["intercept"], fit.mode["beta"]], ref.params.values,
                               rtol=RTOL)


def test_flat_prior_laplace_is_the_mnlogit_mle_with_wald_ses():
    X, y = datasets.anes96()
    fit = fit_laplace(softmax.build(X, y), prior=False, draws=10)
    ref = sm.MNLogit(y, sm.add_constant(X)).fit(disp=0, method="newton", maxiter=100, tol=1e-12)
    np.testing.assert_allclose(fit.mode["intercept"], ref.params.values[0], rtol=RTOL)
    np.testing.assert_allclose(fit.mode["beta"], ref.params.values[1:], rtol=RTOL)
    np.testing.assert_allclose(fit.sd["intercept"], ref.bse.values[0], rtol=RTOL)
    np.testing.assert_allclose(fit.sd["beta"], ref.bse.values[1:], rtol=RTOL)


def test_laplace_with_a_conjugate_prior_is_the_exact_posterior():
    """beta ~ N(0, tau^2 I), y ~ N(X beta, sigma^2) with sigma known: the posterior is normal,
    N(V X'y / sigma^2, V) with V = (X'X / sigma^2 + I / tau^2)^-1, so Laplace is exact."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    sigma, tau = 1.5, 2.0
    y = X @ np.array([1.0, -0.5, 0.2]) + rng.normal(0, sigma, 40)
    with pm.Model(coords={"predictor": ["a", "b", "c"]}) as model:
        beta = pm.Normal("beta", 0.0, tau, dims="predictor")
        pm.Normal("y_obs", mu=pm.math.dot(X, beta), sigma=sigma, observed=y)
    V = np.linalg.inv(X.T @ X / sigma**2 + np.eye(3) / tau**2)
    m = V @ X.T @ y / sigma**2
    fit = fit_laplace(model, draws=4000, random_seed=1)
    np.testing.assert_allclose(fit.mode["beta"], m, rtol=1e-6)
    np.testing.assert_allclose(fit.sd["beta"], np.sqrt(np.diag(V)), rtol=1e-6)
    draws = fit.idata["posterior"]["beta"]
    assert draws.dims == ("chain", "draw", "predictor") and draws.shape == (1, 4000, 3)
    se = np.sqrt(np.diag(V) / 4000)  # Monte-Carlo error of the draws' mean
    assert np.all(np.abs(draws.mean(("chain", "draw")).values - m) < 4 * se)
    # every draw's marginal: a normal with the exact posterior's mean and sd (KS test)
    assert stats.kstest(draws.values[0, :, 0], stats.norm(m[0], np.sqrt(V[0, 0])).cdf).pvalue > 1e-3


def test_laplace_draws_map_back_through_the_transforms():
    """sigma's draws are exp of normal draws of log sigma: all positive, and their median is
    the mode on the constrained scale (the median is invariant under a monotone map)."""
    X, y = datasets.kidiq()
    fit = fit_laplace(linear.build(X, y), draws=4000, random_seed=2)
    s = fit.idata["posterior"]["sigma"].values.ravel()
    assert s.min() > 0
    assert np.median(s) == pytest.approx(float(fit.mode["sigma"]), rel=0.01)
    import arviz as az

    assert float(az.ess(fit.idata, var_names=["sigma"]).dataset["sigma"]) > 3000  # iid draws


def test_no_laplace_where_the_likelihood_is_unbounded():
    X, y = datasets.iris(("sepal_length", "sepal_width"))
    keep = y != "virginica"
    Xs, ys = X[keep], (y[keep] == "versicolor").astype(int)
    with pytest.raises(ValueError, match="not positive definite|flat or unbounded"):
        fit_laplace(logistic.build(Xs, ys), prior=False, draws=10)
    fit = fit_laplace(logistic.build(Xs, ys), prior=True, draws=100)  # the prior bounds it
    assert np.all(np.isfinite(fit.sd["beta"]))


def test_compare_laplace_says_the_shift_is_the_priors_when_the_posterior_is_normal():
    """Conjugate normal prior, sigma known: the posterior IS the Laplace normal, so the prior
    explains the whole MLE-to-posterior shift (share 1 up to NUTS's Monte-Carlo error) and
    NUTS sits on Laplace (|difference| within Monte-Carlo error)."""
    from models.inference import compare, fit_mle, sample_posterior
    from models.inference.summary import compare_laplace

    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 2))
    sigma, tau = 2.0, 0.3  # a tight prior: the posterior mean is pulled well away from OLS
    y = X @ np.array([1.5, -1.0]) + rng.normal(0, sigma, 30)
    with pm.Model(coords={"predictor": ["a", "b"]}) as model:
        beta = pm.Normal("beta", 0.0, tau, dims="predictor")
        pm.Normal("y_obs", mu=pm.math.dot(X, beta), sigma=sigma, observed=y)
    V = np.linalg.inv(X.T @ X / sigma**2 + np.eye(2) / tau**2)
    m = V @ X.T @ y / sigma**2
    ols = np.linalg.solve(X.T @ X, X.T @ y)
    idata = sample_posterior(model, draws=2000, tune=1000, chains=2, random_seed=3)
    table = compare_laplace(compare(fit_mle(model), idata), fit_laplace(model, random_seed=4))
    np.testing.assert_allclose(table["mle"], ols, rtol=1e-6)
    np.testing.assert_allclose(table["laplace_mean"], m, atol=4 * np.sqrt(np.diag(V).max() / 4000))
    assert ((table["post_mean"] - table["mle"]).abs() / table["se"]).min() > 1  # a real shift
    np.testing.assert_allclose(table["prior_share"], 1.0, atol=0.1)
    assert (table["nuts_vs_laplace_sd"].abs() < 0.15).all(), table


def _conjugate_with_exact_loo(seed: int):
    """y ~ N(X beta, 1), beta ~ N(0, I), 40 rows: the model and its closed-form LOO, where
    p(y_i | y_-i) = N(x_i' m_-i, sigma^2 + x_i' V_-i x_i) (the posterior without row i)."""
    rng = np.random.default_rng(seed)
    n, sigma, tau = 40, 1.0, 1.0
    X = rng.normal(size=(n, 2))
    y = X @ np.array([0.8, -0.4]) + rng.normal(0, sigma, n)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, tau, shape=2)
        pm.Normal("y_obs", mu=pm.math.dot(X, beta), sigma=sigma, observed=y)
    exact = 0.0
    for i in range(n):
        keep = np.arange(n) != i
        V = np.linalg.inv(X[keep].T @ X[keep] / sigma**2 + np.eye(2) / tau**2)
        m = V @ X[keep].T @ y[keep] / sigma**2
        exact += stats.norm.logpdf(y[i], X[i] @ m, np.sqrt(sigma**2 + X[i] @ V @ X[i]))
    return model, exact


def test_laplace_loo_matches_the_exact_leave_one_out_of_a_conjugate_model():
    """With sigma known and a normal prior, p(y_i | y_-i) is normal in closed form:
    N(x_i' m_-i, sigma^2 + x_i' V_-i x_i), the posterior refitted without row i."""
    from models.inference.laplace import laplace_loo

    model, exact = _conjugate_with_exact_loo(11)
    loo = laplace_loo(fit_laplace(model, draws=4000, random_seed=6), model)
    assert float(loo.elpd) == pytest.approx(exact, abs=0.05)


def test_centered_funnel_neck_log_density_is_the_closed_form():
    """The centered eight-schools log density (unconstrained, log Jacobian included) along
    the neck theta_j = mu, from scipy term by term; it rises like 7 log(1/tau) as tau -> 0."""
    from models import hierarchical

    es = datasets.eight_schools()
    y, sd = es["y"].to_numpy(float), es["sigma"].to_numpy(float)
    model = hierarchical.build(es.y, es.sigma, groups=es.school, centered=True)
    taus = np.array([1.0, 1e-2, 1e-4])
    got = hierarchical.neck_logp(model, taus)
    sy = np.std(y)  # the family's documented priors: mu ~ N(ybar, 5 s_y), tau ~ HalfCauchy(s_y)
    mu = y.mean()
    expect = [stats.norm.logpdf(mu, y.mean(), 5 * sy) + stats.halfcauchy.logpdf(t, scale=sy)
              + np.log(t) + 8 * stats.norm.logpdf(0.0, 0.0, t)
              + stats.norm.logpdf(y, mu, sd).sum() for t in taus]
    np.testing.assert_allclose(got, expect, rtol=1e-9)
    assert got[2] - got[1] == pytest.approx(7 * np.log(100), rel=1e-3)


def test_compare_loo_of_nuts_and_laplace_is_the_exact_loo_of_a_conjugate_model():
    """sigma known, normal prior: both PSIS-LOO estimates are the closed-form LOO, so their
    paired difference is ~0 and no Pareto k is high."""
    from models.inference import compare_loo, sample_posterior

    model, exact = _conjugate_with_exact_loo(12)
    idata = sample_posterior(model, draws=2000, tune=500, chains=2, random_seed=5)
    table = compare_loo(idata, fit_laplace(model, draws=4000, random_seed=6), model)
    assert list(table.index) == ["NUTS", "Laplace"]
    assert table.loc["NUTS", "elpd_loo"] == pytest.approx(exact, abs=0.1)
    assert table.loc["Laplace", "elpd_loo"] == pytest.approx(exact, abs=0.05)
    assert abs(table.loc["Laplace", "elpd_diff"]) < 0.1
    assert table.loc["Laplace", "elpd_diff"] == pytest.approx(
        table.loc["Laplace", "elpd_loo"] - table.loc["NUTS", "elpd_loo"], rel=1e-9)
    assert (table["share_k_high"] == 0).all()
    assert table.loc["Laplace", "se_diff_bits"] == pytest.approx(
        table.loc["Laplace", "se_diff"] / np.log(2), rel=1e-12)


def test_fit_many_laplace_is_each_data_sets_exact_posterior():
    """One compiled model, three data sets swapped in: each Laplace summary is THAT data
    set's conjugate posterior (mean and 95% interval, up to the draws' Monte-Carlo error)."""
    from models.inference import SamplerConfig
    from models.inference.fits import FitPlan, fit_many

    rng = np.random.default_rng(21)
    sigma, tau = 1.0, 0.5
    with pm.Model() as model:
        Xd = pm.Data("X", rng.normal(size=(5, 2)))
        yd = pm.Data("y", rng.normal(size=5))
        beta = pm.Normal("beta", 0.0, tau, shape=2)
        pm.Normal("y_obs", mu=pm.math.dot(Xd, beta), sigma=sigma, observed=yd,
                  shape=Xd.shape[0])
    data = []
    for n in (8, 30, 200):
        X = rng.normal(size=(n, 2))
        data.append({"X": X, "y": X @ np.array([1.0, -1.0]) + rng.normal(0, sigma, n)})
    plan = FitPlan(("beta",), SamplerConfig(draws=100, tune=100, chains=1), laplace=True,
                   laplace_draws=4000)
    fits, failures = fit_many(model, data, [1, 2, 3], plan)
    assert failures == []
    for d, f in zip(data, fits):
        V = np.linalg.inv(d["X"].T @ d["X"] / sigma**2 + np.eye(2) / tau**2)
        m = V @ d["X"].T @ d["y"] / sigma**2
        s = np.sqrt(np.diag(V))
        lap = f.laplace["beta"]
        np.testing.assert_allclose(lap["mean"], m, atol=4 * s.max() / np.sqrt(4000))
        np.testing.assert_allclose(lap["lo"], m - 1.959964 * s, atol=0.1 * s.max())
        np.testing.assert_allclose(lap["hi"], m + 1.959964 * s, atol=0.1 * s.max())
