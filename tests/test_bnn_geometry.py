"""benchmarks/bnn_geometry.py: the curvature summary of a posterior whose Hessian is known in
closed form (Bayesian linear regression), and its one-line refusals."""


import numpy as np
import pymc as pm
import pytest

import benchmark_scripts

geometry = benchmark_scripts.load("bnn_geometry")


def test_curvature_of_a_linear_regression_matches_its_closed_form():
    """w ~ N(0, tau^2 I), y ~ N(X w, sigma^2), sigma held: minus the log density's Hessian in w
    is H = X'X / sigma^2 + I / tau^2. Two strongly correlated columns give, after scaling by
    the diagonal, [[1, c], [c, 1]] with condition number (1 + |c|) / (1 - |c|)."""
    rng = np.random.default_rng(0)
    n, tau, sigma = 200, 2.0, 0.3
    x1 = rng.normal(size=n)
    X = np.column_stack([x1, 3.0 * (x1 + 0.05 * rng.normal(size=n))])  # scales 3x apart
    y = X @ np.array([0.5, -0.2]) + sigma * rng.normal(size=n)
    with pm.Model() as model:
        w = pm.Normal("w", 0.0, tau, shape=2)
        s = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", X @ w, s, observed=y)
    point = geometry.member_point(model, {"w": np.array([0.4, -0.1]), "sigma": sigma})
    assert np.isclose(point["sigma_log__"], np.log(sigma))
    got = geometry.curvature(model, point)

    H = X.T @ X / sigma ** 2 + np.eye(2) / tau ** 2
    lam = np.linalg.eigvalsh(H)
    c = H[0, 1] / np.sqrt(H[0, 0] * H[1, 1])
    assert got["coordinates"] == 2 and got["negative"] == 0
    assert got["kappa"] == pytest.approx(lam[-1] / lam[0], rel=1e-6)
    assert got["kappa_diag"] == pytest.approx((1 + abs(c)) / (1 - abs(c)), rel=1e-6)
    assert got["kappa_diag"] < got["kappa"]  # the columns' 3x scale is what scaling removes
    assert got["ridges"] == int((1 - abs(c)) < geometry.RIDGE)


@pytest.mark.parametrize("args, words", [
    (["boston"], "'boston' is not one of"),
    (["yacht", "--split", "20"], "--split must be 0..19"),
    (["yacht", "--chain-steps", "10"], "--chain-steps must be 0 or at least 2000"),
])
def test_bad_arguments_are_refused_in_one_line(args, words, capsys):
    with pytest.raises(SystemExit) as e:
        geometry.main(args)
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_an_existing_output_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "g.json"
    out.write_text("mine")
    with pytest.raises(SystemExit):
        geometry.main(["yacht", "--out", str(out)])
    assert "exists" in capsys.readouterr().err and out.read_text() == "mine"


def test_whitened_chains_sample_a_correlated_gaussian_and_a_log_transformed_prior():
    """The --dense chains, run in coordinates whitened by the start's Hessian, map back to the
    posterior: a correlated 2-D Gaussian (y ~ N(X w, 0.3^2), known: N(m, H^-1)) and an
    unobserved HalfNormal(1) (mean sqrt(2/pi), sd sqrt(1 - 2/pi)), to 10% of each sd."""
    pytest.importorskip("jax")
    pytest.importorskip("blackjax")
    rng = np.random.default_rng(1)
    n, tau, sigma = 100, 2.0, 0.3
    x1 = rng.normal(size=n)
    X = np.column_stack([x1, 3.0 * (x1 + 0.1 * rng.normal(size=n))])
    y = X @ np.array([0.5, -0.2]) + sigma * rng.normal(size=n)
    with pm.Model() as model:
        w = pm.Normal("w", 0.0, tau, shape=2)
        pm.HalfNormal("s", 1.0)
        pm.Normal("y", X @ w, sigma, observed=y)
    H = X.T @ X / sigma ** 2 + np.eye(2) / tau ** 2
    cov = np.linalg.inv(H)
    mean = cov @ X.T @ y / sigma ** 2
    starts = [{"w": mean + 0.01, "s": 0.5}, {"w": mean - 0.01, "s": 1.5}]
    chains = geometry.whitened_chains(model, starts, steps=40000, keep=4000, seed=3)
    w_draws = chains.draws["w"].reshape(-1, 2)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(w_draws.mean(0) - mean) < 0.1 * sd)
    assert np.allclose(w_draws.std(0), sd, rtol=0.1)
    assert np.corrcoef(w_draws.T)[0, 1] == pytest.approx(cov[0, 1] / sd.prod(), abs=0.02)
    s_draws = chains.draws["s"].reshape(-1)
    s_sd = np.sqrt(1 - 2 / np.pi)
    assert abs(s_draws.mean() - np.sqrt(2 / np.pi)) < 0.1 * s_sd
    assert s_draws.std() == pytest.approx(s_sd, rel=0.1)


def test_a_transform_it_cannot_map_back_is_refused():
    with pm.Model() as model:
        pm.Uniform("p", 0.0, 1.0)
    with pytest.raises(ValueError, match="p_interval__: only untransformed or log-transformed"):
        geometry.member_point(model, {"p": 0.5})
