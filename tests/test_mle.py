"""fit_mle against statsmodels (OLS, Logit, MNLogit, Poisson GLM) and closed forms.

Tolerances from the issue: estimates to 1e-5 relative, standard errors to 1e-3 relative.
"""

import warnings
from functools import partial

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import statsmodels.api as sm

from models import datasets, gaussian, hierarchical, linear, logistic, poisson, softmax
from models.inference import MLEWarning, fit_mle

EST_RTOL, SE_RTOL = 1e-5, 1e-3


def _params(mle):
    return np.concatenate([np.atleast_1d(mle.params["intercept"]).ravel(),
                           np.ravel(mle.params["beta"])])


def _ses(mle):
    return np.concatenate([np.atleast_1d(mle.se["intercept"]).ravel(), np.ravel(mle.se["beta"])])


def test_linear_matches_statsmodels_ols():
    X, y = datasets.kidiq()
    mle = fit_mle(linear.build(X, y))
    ols = sm.OLS(y, sm.add_constant(X)).fit()
    assert mle.status == "ok" and mle.converged
    np.testing.assert_allclose(_params(mle), ols.params.values, rtol=EST_RTOL)
    # The observed information uses the MLE of sigma^2 (RSS/N), not statsmodels' RSS/(N-p).
    se_ref = np.sqrt(np.diag(ols.cov_params(scale=ols.ssr / ols.nobs)))
    np.testing.assert_allclose(_ses(mle), se_ref, rtol=SE_RTOL)
    assert float(mle.params["sigma"]) == pytest.approx(np.sqrt(ols.ssr / ols.nobs), rel=EST_RTOL)
    # sigma's SE in closed form: sigma / sqrt(2N) (information of a normal scale).
    assert float(mle.se["sigma"]) == pytest.approx(np.sqrt(ols.ssr / ols.nobs / (2 * ols.nobs)),
                                                   rel=SE_RTOL)
    assert mle.loglik == pytest.approx(ols.llf, rel=1e-9)
    assert mle.aic == pytest.approx(2 * 4 - 2 * ols.llf, rel=1e-9)  # 3 coefficients + sigma
    assert mle.bic == pytest.approx(4 * np.log(ols.nobs) - 2 * ols.llf, rel=1e-9)


def test_logistic_matches_statsmodels_logit():
    X, y = datasets.wells()
    mle = fit_mle(logistic.build(X, y))
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    np.testing.assert_allclose(_params(mle), ref.params.values, rtol=EST_RTOL)
    np.testing.assert_allclose(_ses(mle), ref.bse.values, rtol=SE_RTOL)
    assert mle.loglik == pytest.approx(ref.llf, rel=1e-9)
    assert mle.aic == pytest.approx(ref.aic, rel=1e-9)
    assert mle.bic == pytest.approx(ref.bic, rel=1e-9)
    assert mle.labels["beta"] == ["beta[dist100]", "beta[arsenic]"]


def test_softmax_matches_statsmodels_mnlogit():
    X, y = datasets.anes96()
    mle = fit_mle(softmax.build(X, y))
    ref = sm.MNLogit(y, sm.add_constant(X)).fit(disp=0, method="newton", maxiter=100)
    # statsmodels: params rows = const + predictors, columns = non-reference classes 1..6.
    np.testing.assert_allclose(mle.params["intercept"], ref.params.values[0], rtol=EST_RTOL)
    np.testing.assert_allclose(mle.params["beta"], ref.params.values[1:], rtol=EST_RTOL)
    np.testing.assert_allclose(mle.se["intercept"], ref.bse.values[0], rtol=SE_RTOL)
    np.testing.assert_allclose(mle.se["beta"], ref.bse.values[1:], rtol=SE_RTOL)
    assert mle.loglik == pytest.approx(ref.llf, rel=1e-9)


def test_poisson_matches_statsmodels_glm():
    X, y = datasets.warpbreaks()
    mle = fit_mle(poisson.build(X, y))
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson()).fit()
    np.testing.assert_allclose(_params(mle), ref.params.values, rtol=EST_RTOL)
    np.testing.assert_allclose(_ses(mle), ref.bse.values, rtol=SE_RTOL)
    assert mle.loglik == pytest.approx(ref.llf, rel=1e-9)


def test_gaussian_mle_is_the_closed_form_with_divisor_n():
    y = datasets.newcomb().to_numpy()
    mle = fit_mle(gaussian.build(y))
    n = y.size
    assert float(mle.params["mu"]) == pytest.approx(y.sum() / n, rel=1e-8)
    assert float(mle.params["sigma"]) ** 2 == pytest.approx(((y - y.mean()) ** 2).sum() / n, rel=1e-8)
    # SEs in closed form: sigma/sqrt(n) and sigma/sqrt(2n).
    s = np.sqrt(((y - y.mean()) ** 2).mean())
    assert float(mle.se["mu"]) == pytest.approx(s / np.sqrt(n), rel=SE_RTOL)
    assert float(mle.se["sigma"]) == pytest.approx(s / np.sqrt(2 * n), rel=SE_RTOL)


def test_mvn_mle_is_sample_mean_and_biased_covariance(rng):
    L = np.array([[1.0, 0, 0], [0.5, 1.0, 0], [0.0, 0.3, 2.0]])
    Y = rng.normal(size=(150, 3)) @ L.T + np.array([1.0, -2.0, 0.5])
    mle = fit_mle(gaussian.build_mvn(Y))
    np.testing.assert_allclose(mle.params["mu"], Y.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(mle.params["cov"], np.cov(Y.T, bias=True), rtol=1e-6)
    # SE of a mean component: sqrt(Sigma_dd / n).
    np.testing.assert_allclose(mle.se["mu"], np.sqrt(np.diag(np.cov(Y.T, bias=True)) / 150),
                               rtol=SE_RTOL)


def test_separation_is_detected_and_reported(rng):
    X = pd.DataFrame({"x": rng.normal(size=60), "z": rng.normal(size=60)})
    y = (X["x"] > 0).astype(int)
    with pytest.warns(MLEWarning, match="does not exist"):
        mle = fit_mle(logistic.build(X, y))
    assert mle.status == "does_not_exist" and not mle.exists and not mle.converged
    assert "beta[x]" in mle.message
    assert np.isnan(mle.se["beta"]).all()


def test_a_saturated_log_likelihood_of_discrete_outcomes_means_no_mle(rng, monkeypatch):
    """The bnn held-out-class page (iris setosa vs virginica, a 5-tanh softmax net) reported
    its MLE net as 'singular': the optimiser ended with weights near 1e13, a log-likelihood of
    -2.8e-11 and an overflowing Hessian, and no direction was flat one way only (the net's sign
    symmetry separates both ways). A log-likelihood of discrete outcomes is at most 0, reached
    only by probabilities of exactly 1: within 1e-6 nats of 0 it is that supremum approached at
    infinity, so no MLE, whether or not a direction shows it. Here: separated logistic data
    with the direction search switched off."""
    from models.inference import mle as mle_module

    X = pd.DataFrame({"x": rng.normal(size=60), "z": rng.normal(size=60)})
    y = (X["x"] > 0).astype(int)
    monkeypatch.setattr(mle_module, "_unbounded_direction", lambda *a: (None, None))
    fit = fit_mle(logistic.build(X, y), warn=False)
    assert -1e-6 < fit.loglik <= 0
    assert fit.status == "does_not_exist" and not fit.exists
    assert "saturated" in fit.message and "supremum 0" in fit.message
    # only discrete outcomes are bounded above by 0
    assert mle_module.compiled_mle(logistic.build(X, y)).discrete_outcome
    Xg = pd.DataFrame({"x": np.linspace(-1, 1, 30)})
    assert not mle_module.compiled_mle(linear.build(Xg, 2 * Xg["x"])).discrete_outcome


def test_hierarchical_joint_mle_is_degenerate_and_says_so():
    es = datasets.eight_schools()
    with pytest.warns(MLEWarning, match="do not enter the likelihood"):
        centered = fit_mle(hierarchical.build(es.y, es.sigma, groups=es.school, centered=True))
    assert set(centered.not_in_likelihood) == {"mu", "tau"}
    assert np.isnan(centered.params["mu"]) and np.isnan(centered.params["tau"])
    np.testing.assert_allclose(centered.params["theta"], es.y, rtol=1e-7)  # no pooling
    np.testing.assert_allclose(centered.se["theta"], es.sigma, rtol=SE_RTOL)
    with pytest.warns(MLEWarning, match="singular"):
        noncentered = fit_mle(hierarchical.build(es.y, es.sigma, centered=False))
    assert noncentered.status == "singular"


def test_type2_mle_eight_schools_is_complete_pooling():
    es = datasets.eight_schools()
    fit = hierarchical.type2_mle(es.y, es.sigma)
    w = 1 / es.sigma.to_numpy() ** 2
    assert fit.at_boundary and fit.tau == 0.0
    assert fit.mu == pytest.approx(np.sum(w * es.y) / np.sum(w), rel=1e-9)
    assert fit.se_mu == pytest.approx(np.sqrt(1 / np.sum(w)), rel=1e-9)


def test_type2_mle_interior_matches_direct_optimisation():
    from scipy import optimize, stats

    y = np.array([-20.0, 15.0, 30.0, -5.0, 40.0, 2.0])
    s = np.array([5.0, 6.0, 4.0, 5.0, 7.0, 5.0])

    def neg(p):
        return -stats.norm.logpdf(y, p[0], np.sqrt(s**2 + np.exp(2 * p[1]))).sum()

    ref = optimize.minimize(neg, [0.0, np.log(10.0)], method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10_000})
    fit = hierarchical.type2_mle(y, s)
    assert not fit.at_boundary
    assert fit.mu == pytest.approx(ref.x[0], rel=1e-5)
    assert fit.tau == pytest.approx(np.exp(ref.x[1]), rel=1e-5)
    assert fit.loglik == pytest.approx(-ref.fun, rel=1e-9)


def test_priors_are_overridable_and_ignored_by_the_mle():
    X, y = datasets.kidiq()
    priors = {"beta": partial(pm.Normal, mu=0, sigma=10), "sigma": pm.HalfFlat, "intercept": pm.Flat}
    model = linear.build(X, y, priors=priors)
    assert type(model["intercept_centered"].owner.op).__name__ == "FlatRV"
    assert type(model["sigma"].owner.op).__name__ == "HalfFlatRV"
    ols = sm.OLS(y, sm.add_constant(X)).fit()
    np.testing.assert_allclose(_params(fit_mle(model)), ols.params.values, rtol=EST_RTOL)
    with pytest.raises(ValueError, match="unknown variable"):
        linear.build(X, y, priors={"slope": pm.Flat})


def test_compiled_model_is_reused_with_new_data():
    from models.inference import set_data
    from models.inference.mle import compiled_mle

    X, y = datasets.wells()
    model = logistic.build(X.iloc[:1500], y.iloc[:1500])
    first = fit_mle(model)
    compiled = compiled_mle(model)
    set_data(model, X=X.iloc[1500:].to_numpy(), y=y.iloc[1500:].to_numpy())
    second = fit_mle(model)
    ref = sm.Logit(y.iloc[1500:], sm.add_constant(X.iloc[1500:])).fit(disp=0)
    np.testing.assert_allclose(_params(second), ref.params.values, rtol=EST_RTOL)
    assert second.n_obs == 1520 and first.n_obs == 1500
    assert compiled_mle(model) is compiled  # the same compiled functions, new data


# ---------------------------------------------------------------- ill-conditioned, identified
def test_longley_ols_calendar_year_beside_gnp_gets_its_standard_errors():
    """Longley (statsmodels' certified OLS data): YEAR ~ 1950 beside GNP ~ 4e5 and the
    intercept ~ -3.5e6; the unscaled information has a condition number near 1e20, yet every
    coefficient is identified. Before the scale-free criterion: status 'singular', SEs NaN."""
    d = sm.datasets.longley.load_pandas()
    X, y = d.exog, d.endog
    mle = fit_mle(linear.build(X, y))
    ref = sm.OLS(y, sm.add_constant(X)).fit()
    assert mle.status == "ok", mle.message
    np.testing.assert_allclose(_params(mle), ref.params.values, rtol=EST_RTOL)
    se_ref = np.sqrt(np.diag(ref.cov_params(scale=ref.ssr / ref.nobs)))
    np.testing.assert_allclose(_ses(mle), se_ref, rtol=SE_RTOL)


def test_cpunish_poisson_income_in_dollars_beside_a_0_1_column_gets_its_standard_errors():
    """cpunish (statsmodels' Poisson GLM example): INCOME in dollars (mean 35,000) beside
    SOUTH (0/1) and DEGREE (a share ~0.2). Before: 'singular', every SE NaN."""
    d = sm.datasets.cpunish.load_pandas()
    X, y = d.exog, d.endog
    mle = fit_mle(poisson.build(X, y))
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson()).fit()
    assert mle.status == "ok", mle.message
    np.testing.assert_allclose(_params(mle), ref.params.values, rtol=EST_RTOL)
    np.testing.assert_allclose(_ses(mle), ref.bse.values, rtol=SE_RTOL)


def test_partly_unidentified_model_reports_the_identified_standard_errors():
    """y ~ N(a + b, 1) identifies a + b only; z ~ N(c, 1) identifies c: the MLE is 'singular'
    (naming a or b), SE(c) = 1/sqrt(n) in closed form, SE(a) = SE(b) = NaN."""
    rng = np.random.default_rng(3)
    y, z = rng.normal(1.0, 1.0, 50), rng.normal(-2.0, 1.0, 40)
    with pm.Model() as model:
        a = pm.Flat("a")
        b = pm.Flat("b")
        c = pm.Flat("c")
        pm.Normal("y", a + b, 1.0, observed=y)
        pm.Normal("z", c, 1.0, observed=z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MLEWarning)
        mle = fit_mle(model)
    assert mle.status == "singular"
    assert "a" in mle.message and "b" in mle.message
    assert float(mle.params["c"]) == pytest.approx(z.mean(), rel=1e-8)
    assert float(mle.se["c"]) == pytest.approx(1 / np.sqrt(z.size), rel=1e-6)
    assert np.isnan(mle.se["a"]) and np.isnan(mle.se["b"])
    assert float(mle.params["a"] + mle.params["b"]) == pytest.approx(y.mean(), rel=1e-8)


def test_singular_message_names_parameters_when_the_null_direction_is_spread_thin():
    """y_i ~ N(a_i - a_(i+1), 1), i < 101: only differences are identified, and the one
    unidentified direction is the common shift, (1, ..., 1) / sqrt(101), whose entries are all
    below 0.1. The message names where it lies instead of an empty list."""
    rng = np.random.default_rng(4)
    y = rng.normal(0.0, 1.0, 100)
    with pm.Model() as model:
        a = pm.Flat("a", shape=101)
        pm.Normal("y", a[:-1] - a[1:], 1.0, observed=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MLEWarning)
        mle = fit_mle(model, n_starts=1)
    assert mle.status == "singular"
    assert "[]" not in mle.message
    assert "a combination of parameters with no dominant one (largest entries: ['a[" in mle.message
    # the fit itself: every identified difference at its observation (closed form)
    np.testing.assert_allclose(np.diff(-np.asarray(mle.params["a"])), y, atol=1e-5)


# ---------------------------------------------------------------- GLMs: one start, Newton
def test_glm_fit_is_newton_from_one_start_and_agrees_with_statsmodels_before_and_after_the_symbolic_hessian():
    """GLM builders declare the likelihood unimodal: one start, Newton steps (finite-difference
    Hessian on the first fit, the compiled symbolic one from the second), the same estimates
    and SEs as statsmodels' own Newton fit every time; a model nobody declared keeps 4 starts."""
    from models.inference.mle import compiled_mle

    d = sm.datasets.cpunish.load_pandas()  # income in dollars beside 0/1 columns
    model = poisson.build(d.exog, d.endog)
    ref = sm.GLM(d.endog, sm.add_constant(d.exog), family=sm.families.Poisson()).fit()
    for fit in range(3):
        mle = fit_mle(model)
        assert mle.status == "ok" and len(mle.start_logliks) == 1, mle.message
        assert "Newton" in mle.message and "one start suffices" in mle.message
        assert (compiled_mle(model).f_exact_hess is not None) == (fit >= 1)
        np.testing.assert_allclose(_params(mle), ref.params.values, rtol=1e-8)
        np.testing.assert_allclose(_ses(mle), ref.bse.values, rtol=1e-6)
        assert mle.loglik == pytest.approx(ref.llf, rel=1e-12)
    X, y = datasets.wells()
    model = logistic.build(X, y)
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    for _ in range(2):
        mle = fit_mle(model)
        np.testing.assert_allclose(_params(mle), ref.params.values, rtol=1e-8)
        np.testing.assert_allclose(_ses(mle), ref.bse.values, rtol=1e-6)
    assert len(fit_mle(gaussian.build(datasets.newcomb())).start_logliks) == 4


def test_batched_constrained_map_is_the_transforms_closed_form(rng):
    """flat_batch (one vectorised call for many unconstrained points: the Laplace draws) maps
    each row exactly as the transforms do: sigma = exp(log sigma), tau = exp(log tau) and the
    non-centred theta = mu + tau * eta, computed here with numpy."""
    from models.inference.mle import CompiledMLE

    c = CompiledMLE(gaussian.build(rng.normal(size=30)), objective="logp")
    z = rng.normal(size=(7, 2))
    assert c.x_labels == ["mu", "sigma (unconstrained)"]
    np.testing.assert_allclose(c.flat_batch(z), np.c_[z[:, 0], np.exp(z[:, 1])], rtol=1e-14)

    c = CompiledMLE(hierarchical.build(rng.normal(size=4), np.ones(4)), objective="logp")
    z = rng.normal(size=(5, 6))  # mu, log tau, eta[4]
    mu, tau, eta = z[:, 0], np.exp(z[:, 1]), z[:, 2:]
    out = dict(zip(c.out_names, np.split(c.flat_batch(z), np.cumsum(
        [int(np.prod(s)) for s in c.out_shapes])[:-1], axis=1)))
    np.testing.assert_allclose(out["mu"][:, 0], mu, rtol=1e-14)
    np.testing.assert_allclose(out["tau"][:, 0], tau, rtol=1e-14)
    np.testing.assert_allclose(out["theta"], mu[:, None] + tau[:, None] * eta, rtol=1e-13)


def test_first_glm_fit_runs_on_the_python_linker_and_stays_stable_far_out(rng):
    """A declared GLM's first fit evaluates its log-likelihood and gradient on PyTensor's
    Python linker (no numba to import); with the stabilising rewrites that linker must still
    give the closed form where |eta| is 40 (sum y eta - log(1 + e^eta), and X^T (y - expit)),
    where the naive log(sigmoid) is -inf. From the second fit the numba function agrees."""
    from scipy import special

    from models.inference.mle import compiled_mle

    X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    y = (rng.uniform(size=60) < special.expit(X["a"] - X["b"])).astype(int)
    model = logistic.build(X, y)
    c = compiled_mle(model)
    assert not c.sweep_ready  # the Python-linker function, numba not compiled yet
    assert c.x_labels == ["intercept_centered", "beta[a]", "beta[b]"]
    Xc = X.to_numpy() - X.to_numpy().mean(axis=0)

    def closed_form(x):
        eta = x[0] + Xc @ x[1:]
        resid = y.to_numpy() - special.expit(eta)
        return np.sum(y * eta - np.logaddexp(0, eta)), np.r_[resid.sum(), Xc.T @ resid]

    points = [np.array([0.3, 1.0, -1.0]), np.array([2.0, 400.0, -400.0])]
    assert np.max(np.abs(2.0 + Xc @ points[1][1:])) > 1000  # exp(eta) overflows there
    for x in points:
        ll, grad = c.f_ll_grad(x)
        ref_ll, ref_grad = closed_form(x)
        assert float(ll) == pytest.approx(ref_ll, rel=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)
    fit_mle(model)
    fit_mle(model)  # the second fit compiles numba (and the symbolic Hessian)
    assert c.sweep_ready
    for x in points:
        ll, grad = c.f_ll_grad(x)
        ref_ll, ref_grad = closed_form(x)
        assert float(ll) == pytest.approx(ref_ll, rel=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)


def test_linear_model_far_from_its_start_takes_damped_newton_steps_to_the_ols_fit(rng):
    """y around 300 with sd 20, started at beta = 0 and log sigma = 0: there the normal
    log-likelihood in (beta, log sigma) is not concave (the Schur complement of the log-sigma
    entry, -2|r|^2 + 4|Pr|^2, is positive when the predictors explain most of y), so plain
    Newton has no ascent step; the damped steps still reach the OLS fit."""
    x = rng.normal(size=60)
    X = pd.DataFrame({"x": x})
    y = pd.Series(300 + 50 * x + rng.normal(scale=20, size=60), name="y")
    r = y.to_numpy()
    P = np.c_[np.ones(60), x]
    Pr = P @ np.linalg.lstsq(P, r, rcond=None)[0]
    assert 4 * Pr @ Pr - 2 * r @ r > 0  # not concave at the start
    mle = fit_mle(linear.build(X, y))
    ols = sm.OLS(y, sm.add_constant(X)).fit()
    assert mle.status == "ok" and "Newton" in mle.message, mle.message
    np.testing.assert_allclose(_params(mle), ols.params.values, rtol=1e-9)
