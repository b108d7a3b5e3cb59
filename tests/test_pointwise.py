"""Large data sets: pointwise quantities in memory that does not grow with rows x draws
(models.inference.pointwise). Checked against scipy densities on the saved draws and, for the
subsampled LOO, against the closed-form leave-one-out of a conjugate model."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import special, stats

from models.inference import compare_loo, fit_laplace, sample_posterior
from models.inference import pointwise
from models.inference.fitcheck import check_fit
from models.inference.sensitivity import sensitivity_data


def _conjugate(n: int, seed: int):
    """y ~ N(X beta, 1), beta ~ N(0, I) on n rows, data in containers with an obs_id dim;
    returns the model, X, y and the exact LOO log predictive density of every row."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = X @ np.array([0.8, -0.4]) + rng.normal(0, 1, n)
    with pm.Model(coords={"obs_id": np.arange(n), "p": [0, 1]}) as model:
        Xd = pm.Data("X", X, dims=("obs_id", "p"))
        yd = pm.Data("y", y, dims="obs_id")
        beta = pm.Normal("beta", 0.0, 1.0, dims="p")
        pm.Normal("y_obs", mu=pm.math.dot(Xd, beta), sigma=1.0, observed=yd, dims="obs_id")
    A = X.T @ X + np.eye(2)
    b = X.T @ y
    A_i = A[None] - X[:, :, None] * X[:, None, :]  # the posterior precision without row i
    b_i = b[None] - X * y[:, None]
    V_i = np.linalg.inv(A_i)
    m_i = np.einsum("nij,nj->ni", V_i, b_i)
    sd_i = np.sqrt(1 + np.einsum("ni,nij,nj->n", X, V_i, X))
    exact = stats.norm.logpdf(y, np.einsum("ni,ni->n", X, m_i), sd_i)
    return model, X, y, exact


def _loglik(idata, X, y):
    """log p(y_i | beta_s) from scipy, (chain, draw, row)."""
    beta = idata["posterior"]["beta"].values
    return stats.norm.logpdf(y, np.einsum("cdp,np->cdn", beta, X), 1.0)


def test_streamed_scores_equal_the_full_pointwise_arrays():
    model, X, y, _ = _conjugate(300, 1)
    idata = sample_posterior(model, draws=300, tune=300, chains=2, random_seed=2)
    ll = _loglik(idata, X, y)
    flat = ll.reshape(-1, ll.shape[-1])
    np.testing.assert_allclose(pointwise.lppd(model, idata),
                               special.logsumexp(flat, axis=0) - np.log(len(flat)), rtol=1e-10)
    np.testing.assert_allclose(pointwise.mean_likelihood(model, idata), np.exp(flat).mean(0),
                               rtol=1e-10)
    np.testing.assert_allclose(pointwise.total_log_likelihood(model, idata)["y_obs"].values[..., 0],
                               ll.sum(-1), rtol=1e-10)


def test_above_the_row_limit_pointwise_checks_use_a_labelled_subsample(monkeypatch):
    """3000 rows with the limit lowered to 1000: the log_likelihood holds 600 labelled rows
    (scipy's values at those rows), the LOO totals estimate the closed-form LOO of all 3000
    rows within their standard errors, psense sees every row's total, and the fit check's
    observed data are the same 600 rows."""
    monkeypatch.setattr(pointwise, "POINTWISE_MAX_ROWS", 1000)
    monkeypatch.setattr(pointwise, "POINTWISE_SUBSAMPLE", 600)
    model, X, y, exact = _conjugate(3000, 3)
    idata = sample_posterior(model, draws=1000, tune=500, chains=2, random_seed=4)
    ll = idata["log_likelihood"]
    rows = ll["obs_id"].values
    assert ll.attrs[pointwise.ATTR_ROWS] == 3000 and ll["y_obs"].shape == (2, 1000, 600)
    assert len(np.unique(rows)) == 600 and rows.min() >= 0 and rows.max() < 3000
    np.testing.assert_allclose(ll["y_obs"].values, _loglik(idata, X, y)[..., rows], rtol=1e-10)

    table = compare_loo(idata, fit_laplace(model, draws=4000, random_seed=5), model)
    truth = exact.sum()
    for name in ("NUTS", "Laplace"):
        row = table.loc[name]
        assert row["rows_used"] == 600
        # the difference estimator's error is the subsampling error (its SE) plus Monte Carlo
        assert abs(row["elpd_loo"] - truth) < 4 * row["subsampling_se"] + 0.5
        assert row["se"] == pytest.approx(np.sqrt(3000) * exact.std(), rel=0.1)
    assert table.loc["NUTS", "p_loo"] == pytest.approx(2.0, abs=0.5)
    assert abs(table.loc["Laplace", "elpd_diff"]) < 4 * table.loc["Laplace", "se_diff"]

    tree = sensitivity_data(idata, model)
    np.testing.assert_allclose(tree["log_likelihood"]["y_obs"].values[..., 0],
                               _loglik(idata, X, y).sum(-1), rtol=1e-10)

    view = pointwise.pointwise_view(idata)
    np.testing.assert_array_equal(view["observed_data"]["y_obs"].values, y[rows])
    idata["posterior_predictive"] = pointwise.posterior_predictive_rows(idata, model, rows, 6)
    fit = check_fit(idata, "continuous")
    assert fit.loo_pit_p > 0.01 and fit.pareto_k_share == 0 and fit.passed  # well specified


def test_psis_loo_is_computed_once_per_posterior_and_follows_a_new_log_likelihood():
    """The fit checks and the LOO table share one PSIS-LOO per posterior: the cached one and
    the LOO-PIT from its weights equal ArviZ's own fresh computations, and a tree whose
    log_likelihood is replaced gets a new LOO, not the stale one."""
    import arviz as az

    model = _conjugate(60, seed=11)[0]
    idata = sample_posterior(model, draws=300, tune=300, chains=2, random_seed=4)
    pm.sample_posterior_predictive(idata, model=model, extend_inferencedata=True,
                                   random_seed=1, progressbar=False)
    first = pointwise.psis_loo(idata, "y_obs")
    assert pointwise.psis_loo(idata, "y_obs") is first
    assert float(first.elpd) == pytest.approx(float(az.loo(idata, var_name="y_obs").elpd), abs=1e-9)
    pit = pointwise.loo_pit_from(idata, "y_obs", first)["y_obs"].values
    ref = az.loo_pit(idata, var_names=["y_obs"], random_state=0)["y_obs"].values
    np.testing.assert_allclose(pit, ref, atol=1e-12)
    # a new log_likelihood (here: half of it) is a new LOO
    idata["log_likelihood"] = idata["log_likelihood"].to_dataset() * 0.5
    again = pointwise.psis_loo(idata, "y_obs")
    assert float(again.elpd) == pytest.approx(float(az.loo(idata, var_name="y_obs").elpd), abs=1e-9)
    assert abs(float(again.elpd) - float(first.elpd)) > 1.0
