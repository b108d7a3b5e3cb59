"""NUTS posteriors against conjugate closed forms; compare/diagnose/predictive against
independent computations (numpy quantiles, scipy log-densities)."""

from functools import partial

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import special, stats

from models import datasets, gaussian, hierarchical, logistic
from models.inference import (compare, diagnose, fit_mle, posterior_summary,
                              predictive_log_score, sample_posterior)
from models.validation import DataError


def _mcse_mean(idata, name):
    import arviz as az

    return float(az.mcse(idata, var_names=[name], method="mean").dataset[name])


def test_normal_mean_with_known_sigma_matches_conjugate_posterior(rng):
    sigma, m0, s0 = 2.0, 1.0, 3.0
    y = rng.normal(4.0, sigma, size=25)
    model = gaussian.build(y, priors={
        "mu": partial(pm.Normal, mu=m0, sigma=s0),
        # a known sigma: a fixed data value instead of a random variable
        "sigma": lambda name, dims=None: pm.Data(name, sigma),
    })
    idata = sample_posterior(model, draws=2000, tune=1000, chains=2, random_seed=11)
    precision = 1 / s0**2 + y.size / sigma**2
    exact_mean = (m0 / s0**2 + y.sum() / sigma**2) / precision
    exact_sd = precision**-0.5
    draws = idata["posterior"]["mu"].values.ravel()
    assert abs(draws.mean() - exact_mean) < 4 * _mcse_mean(idata, "mu")
    assert draws.std() == pytest.approx(exact_sd, rel=0.06)


def test_beta_binomial_matches_conjugate_posterior():
    a, b, k, n = 2.0, 3.0, 7, 30
    with pm.Model() as model:
        theta = pm.Beta("theta", a, b)
        pm.Binomial("y_obs", n=n, p=theta, observed=k)
    idata = sample_posterior(model, draws=2000, tune=1000, chains=2, random_seed=5)
    exact = stats.beta(a + k, b + n - k)
    draws = idata["posterior"]["theta"].values.ravel()
    assert abs(draws.mean() - exact.mean()) < 4 * _mcse_mean(idata, "theta")
    assert draws.std() == pytest.approx(exact.std(), rel=0.06)
    ks = stats.kstest(draws[::5], exact.cdf)  # thinned: near-independent draws
    assert ks.pvalue > 1e-3


@pytest.fixture(scope="module")
def wells_fit():
    X, y = datasets.wells()
    idx = np.random.default_rng(0).permutation(len(y))
    train, test = idx[:2000], idx[2000:]
    model = logistic.build(X.iloc[train], y.iloc[train])
    mle = fit_mle(model)
    idata = sample_posterior(model, draws=1000, tune=1000, chains=2, random_seed=3)
    return model, mle, idata, X.iloc[test].to_numpy(), y.iloc[test].to_numpy()


def test_sample_posterior_groups_and_diagnostics_pass(wells_fit):
    model, mle, idata, *_ = wells_fit
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in idata.children
    assert list(idata["posterior"]["beta"].coords["predictor"].values) == ["dist100", "arsenic"]
    d = diagnose(idata)
    assert d.passed, d.to_frame()
    assert set(d.to_frame().index) == {"r_hat_max", "ess_bulk_min", "ess_tail_min",
                                       "divergences", "e_bfmi_min"}


def test_compare_table_against_numpy(wells_fit):
    _, mle, idata, *_ = wells_fit
    table = compare(mle, idata)
    assert {"intercept", "intercept_centered", "beta[dist100]", "beta[arsenic]"} <= set(table.index)
    draws = idata["posterior"]["beta"].sel(predictor="arsenic").values.ravel()
    row = table.loc["beta[arsenic]"]
    assert row["post_mean"] == pytest.approx(draws.mean(), rel=1e-12)
    assert row["post_sd"] == pytest.approx(draws.std(ddof=1), rel=1e-3)
    assert row["eti_lb"] == pytest.approx(np.quantile(draws, 0.025), rel=1e-2)
    assert row["eti_ub"] == pytest.approx(np.quantile(draws, 0.975), rel=1e-2)
    z = stats.norm.ppf(0.975)
    assert row["wald_lb"] == pytest.approx(row["mle"] - z * row["se"], rel=1e-12)
    assert row["shift_in_se"] == pytest.approx((draws.mean() - row["mle"]) / row["se"], rel=1e-9)
    # 3000 observations, weak priors: Bernstein-von Mises says the two nearly agree.
    assert (table["shift_in_se"].abs() < 0.5).all()
    assert ((table["width_ratio"] > 0.85) & (table["width_ratio"] < 1.15)).all()


def test_predictive_log_score_against_scipy(wells_fit):
    model, mle, idata, X_test, y_test = wells_fit
    score = predictive_log_score(model, mle, idata, X=X_test, y=y_test)
    eta = float(mle.params["intercept"]) + X_test @ mle.params["beta"]
    plugin = stats.bernoulli.logpmf(y_test, special.expit(eta))
    post = idata["posterior"]
    a = post["intercept"].values.reshape(-1)
    B = post["beta"].values.reshape(-1, 2)
    ll = stats.bernoulli.logpmf(y_test[None, :], special.expit(a[:, None] + B @ X_test.T))
    lppd = special.logsumexp(ll, axis=0) - np.log(ll.shape[0])
    assert score.loc["mle_plugin", "log_score_nats"] == pytest.approx(plugin.sum(), rel=1e-9)
    assert score.loc["posterior_predictive", "log_score_nats"] == pytest.approx(lppd.sum(), rel=1e-9)
    assert score.loc["posterior_predictive", "per_obs_bits"] == pytest.approx(
        lppd.mean() / np.log(2), rel=1e-9)
    d = lppd - plugin  # the paired gain and its standard error, from scipy's pointwise values
    assert score.loc["posterior_predictive", "gain_vs_plugin_nats"] == pytest.approx(d.mean(), rel=1e-9)
    assert score.loc["posterior_predictive", "gain_se_nats"] == pytest.approx(
        d.std(ddof=1) / np.sqrt(d.size), rel=1e-9)
    assert model["X"].get_value().shape == (2000, 2)  # training data restored


def test_same_seed_same_draws_different_seed_different_draws():
    y = datasets.newcomb().to_numpy()[:20]
    model = gaussian.build(y)
    a = sample_posterior(model, draws=100, tune=100, chains=2, random_seed=7)
    b = sample_posterior(model, draws=100, tune=100, chains=2, random_seed=7)
    c = sample_posterior(model, draws=100, tune=100, chains=2, random_seed=8)
    np.testing.assert_array_equal(a["posterior"]["mu"].values, b["posterior"]["mu"].values)
    assert not np.array_equal(a["posterior"]["mu"].values, c["posterior"]["mu"].values)


def test_centered_eight_schools_diverges_where_the_non_centered_does_not():
    """The funnel, not a short run: with the same sampler settings the centered model has
    divergent transitions and the non-centered one none (an ESS shortfall alone would not
    pass this test)."""
    es = datasets.eight_schools()
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=1, target_accept=0.95)
    centered = diagnose(sample_posterior(
        hierarchical.build(es.y, es.sigma, groups=es.school, centered=True), **kw))
    non_centered = diagnose(sample_posterior(
        hierarchical.build(es.y, es.sigma, groups=es.school, centered=False), **kw))
    assert centered.divergences > 0 and not centered.checks["divergences"]
    assert non_centered.divergences == 0


def test_chain_stacking_weights_match_exact_loo_stacking():
    """Two 'chains' drawn from the exact posteriors of a normal mean under two priors (one at
    each of the data's two clusters). Independent reference: the closed-form leave-one-out
    predictive densities of both, and the stacking weight that maximises the log score of
    their mixture (scipy). stack_chains gets there through PyMC's pointwise log-likelihood,
    PSIS-LOO per chain and ArviZ's stacking."""
    from scipy import optimize

    from models.inference import stack_chains

    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(0, 0.3, 50), rng.normal(2, 0.3, 50)])

    def posterior(m0, yy, t0=0.05):  # y_i ~ N(mu, 1), mu ~ N(m0, t0^2)
        precision = 1 / t0**2 + len(yy)
        return (m0 / t0**2 + yy.sum()) / precision, 1 / precision

    draws, loo = [], []
    for m0 in (0.0, 2.0):
        m, v = posterior(m0, y)
        draws.append(rng.normal(m, np.sqrt(v), 4000))
        loo.append(np.array([stats.norm.pdf(y[i], mi, np.sqrt(vi + 1)) for i in range(len(y))
                             for mi, vi in [posterior(m0, np.delete(y, i))]]))
    exact = optimize.minimize_scalar(lambda w: -np.sum(np.log(w * loo[0] + (1 - w) * loo[1])),
                                     bounds=(0, 1), method="bounded", options={"xatol": 1e-8}).x
    assert 0.3 < exact < 0.7  # an interior optimum: both chains matter
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 1)
        pm.Normal("y", mu, 1, observed=y)
    import xarray as xr
    idata = xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), np.array(draws))})})
    s = stack_chains(idata, model)
    assert s.weights == pytest.approx([exact, 1 - exact], abs=0.01)
    assert s.elpd_loo == pytest.approx([np.log(loo[0]).sum(), np.log(loo[1]).sum()], abs=0.3)
    assert (s.pareto_k_max < 0.7).all() and s.reliable
    assert s.stacking_weights == pytest.approx(s.weights)
    with pytest.raises(ValueError, match="at least 2 chains"):
        stack_chains(idata.isel(chain=[0]), model)


def test_chain_stacking_falls_back_to_equal_weights_when_psis_loo_is_unreliable():
    """One parameter per observation (y_i ~ N(theta_i, 0.1), theta_i ~ N(0, 1)): leaving y_i
    out moves theta_i's posterior from near y_i back to the prior, so importance sampling
    from the full posterior fails at every point (Pareto k > 0.7), and stacking must not be
    trusted. Draws: the exact conjugate posterior, with a different offset per chain."""
    import xarray as xr

    from models.inference import stack_chains

    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 40)
    post_var = 1 / (1 + 1 / 0.01)
    post_mean = y / 0.01 * post_var
    with pm.Model(coords={"obs": range(40)}) as model:
        theta = pm.Normal("theta", 0, 1, dims="obs")
        pm.Normal("y", theta, 0.1, observed=y, dims="obs")
    draws = np.stack([post_mean + shift + np.sqrt(post_var) * rng.normal(size=(2000, 40))
                      for shift in (0.0, 0.05)])
    idata = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"theta": (("chain", "draw", "obs"), draws)}, coords={"obs": range(40)})})
    s = stack_chains(idata, model)
    assert (s.pareto_k_bad > 0.5).all() and not s.reliable
    assert s.weights == pytest.approx([0.5, 0.5])
    assert s.stacking_weights.sum() == pytest.approx(1.0, abs=1e-6)


def test_chain_stacking_of_a_chain_that_repeats_one_state_keeps_equal_weights():
    """A stuck chain (the same draw 400 times: seen on a 5-tanh energy split) has no PSIS-LOO
    (ArviZ cannot fit a Pareto tail to identical values): no stacking, equal weights, the
    stuck chain's LOO missing and all its observations unreliable; the moving chain's elpd
    is its PSIS-LOO computed alone."""
    import arviz as az
    import xarray as xr

    from models.inference import stack_chains

    rng = np.random.default_rng(0)
    ll = rng.normal(-1, 0.3, size=(2, 400, 30))
    ll[1] = ll[1, 0]
    mu = rng.normal(size=(2, 400))
    mu[1] = mu[1, 0]
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"mu": (("chain", "draw"), mu)}),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)})})
    s = stack_chains(tree, None)
    assert not s.reliable and s.weights == pytest.approx([0.5, 0.5])
    assert np.isnan(s.stacking_weights).all() and np.isnan(s.elpd_loo[1])
    assert s.pareto_k_bad[1] == 1.0 and s.pareto_k_max[1] == np.inf
    alone = az.loo(tree.isel(chain=[0]))
    assert s.elpd_loo[0] == pytest.approx(float(alone.elpd), rel=1e-12)


def test_posterior_summary_labels_rows_from_each_variables_own_coords():
    """The ArviZ 1.3 trap: `intercept_centered` (class) summarised before `beta` (predictor,
    class) in ONE az.summary call puts beta's values in the wrong rows. Every row here is
    checked against xarray's .sel on the variable itself, so summarising with az.summary over
    several variables (removing the guard) fails this test."""
    import xarray as xr

    rng = np.random.default_rng(0)
    post = xr.Dataset({
        "intercept_centered": (("chain", "draw", "class"), rng.normal(size=(2, 50, 3)) + np.arange(3)),
        "beta": (("chain", "draw", "predictor", "class"),
                 rng.normal(size=(2, 50, 2, 3)) + 10 * np.arange(6).reshape(2, 3)),
    }, coords={"chain": [0, 1], "draw": np.arange(50), "class": ["b", "c", "d"],
               "predictor": ["p", "q"]})
    tree = xr.DataTree.from_dict({"posterior": post})
    table = posterior_summary(tree, prob=0.9)
    assert len(table) == 9
    for p_ in ("p", "q"):
        for k in ("b", "c", "d"):
            d = post["beta"].sel(predictor=p_, **{"class": k}).values.ravel()
            row = table.loc[f"beta[{p_}, {k}]"]
            assert row["mean"] == pytest.approx(d.mean(), rel=1e-12)
            assert row["sd"] == pytest.approx(d.std(ddof=1), rel=1e-12)
            assert row["eti90_lb"] == pytest.approx(np.quantile(d, 0.05), rel=1e-12)
            assert row["eti90_ub"] == pytest.approx(np.quantile(d, 0.95), rel=1e-12)


def test_one_chain_is_diagnosed_with_split_halves_not_nan():
    """ArviZ's R-hat is NaN for one chain; diagnose compares the chain's two halves instead
    (reference: R-hat of the same draws reshaped by hand into 2 chains)."""
    import arviz as az
    import xarray as xr

    y = datasets.newcomb().to_numpy()[:30]
    idata = sample_posterior(gaussian.build(y), draws=400, tune=300, chains=1, random_seed=2)
    d = diagnose(idata)
    mu = idata["posterior"]["mu"].values.reshape(2, 200)
    ref = az.rhat(xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"mu": (("chain", "draw"), mu)})})).dataset["mu"].item()
    assert np.isfinite(d.r_hat_max) and d.r_hat_max >= ref
    assert "one chain" in d.to_frame().loc["r_hat_max", "threshold"]


def test_held_out_data_outside_the_support_or_not_finite_is_refused(wells_fit):
    model, mle, idata, X_test, y_test = wells_fit
    with pytest.raises(DataError, match=r"row\(s\) \[3\] lie outside the likelihood's support"):
        predictive_log_score(model, mle, idata, X=X_test[:5], y=np.array([0, 1, 0, 2, 1]))
    X_bad = X_test[:5].copy()
    X_bad[2, 1] = np.inf
    with pytest.raises(DataError, match=r"'X' has NaN or inf in row\(s\) \[2\]"):
        predictive_log_score(model, mle, idata, X=X_bad, y=y_test[:5])
    assert model["X"].get_value().shape == (2000, 2)  # training data restored


def test_nutpie_c_backend_gives_nutpies_own_draws_and_leaves_the_models_data_alone(rng):
    """compile_nutpie(backend="c") hands nutpie PyTensor's C functions instead of numba's: the
    same graph and seed must give nutpie's own (numba) draws, for one report fit and for a
    compiled sampler with swapped data, and swapping data must not touch the model's own."""
    from models import linear
    from models.inference import CompiledSampler, SamplerConfig

    X = rng.normal(size=(40, 2))
    y = X @ np.array([1.0, -0.5]) + rng.normal(size=40)
    model = linear.build(X, y)
    kw = dict(draws=200, tune=200, chains=2, random_seed=3)
    a = sample_posterior(model, backend="numba", **kw)
    b = sample_posterior(model, backend="c", **kw)
    np.testing.assert_allclose(b["posterior"]["beta"].values, a["posterior"]["beta"].values,
                               rtol=1e-9)
    np.testing.assert_array_equal(b["observed_data"]["y_obs"].values, y)
    assert b["log_likelihood"]["y_obs"].shape == (2, 200, 40)

    X2, y2 = X[:25] * 2.0, y[:25] + 1.0
    config = SamplerConfig(draws=150, tune=150, chains=2, seed=5)
    numba = CompiledSampler(model, config).sample(X=X2, y=y2)
    c = CompiledSampler(model, config.replace(backend="c")).sample(X=X2, y=y2)
    np.testing.assert_allclose(c["posterior"]["beta"].values, numba["posterior"]["beta"].values,
                               rtol=1e-9)
    np.testing.assert_array_equal(model["X"].get_value(), X)
    np.testing.assert_array_equal(model["y"].get_value(), y)
    # and the swapped data mattered: the fit on the original data differs
    same = CompiledSampler(model, config.replace(backend="c")).sample()
    assert not np.allclose(same["posterior"]["beta"].values, c["posterior"]["beta"].values)
