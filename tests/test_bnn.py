"""BNN priors, signal propagation and function-space diagnostics."""

import numpy as np
import pymc as pm
import pytest

from models import bnn, signal

N_IN, N_HIDDEN = 7, 13


@pytest.mark.parametrize("prior, variance, kurtosis", [
    ("he_normal", 2 / N_IN, 3.0), ("he_uniform", 2 / N_IN, 1.8),
    ("xavier_normal", 2 / (N_IN + N_HIDDEN), 3.0), ("xavier_uniform", 2 / (N_IN + N_HIDDEN), 1.8),
    ("lecun_normal", 1 / N_IN, 3.0), ("standard_normal", 1.0, 3.0),
])
def test_prior_draws_have_the_stated_variance(rng, prior, variance, kurtosis):
    X = rng.normal(size=(20, N_IN))
    model = bnn.build(X, rng.normal(size=20), hidden=(N_HIDDEN,), prior=prior)
    w = pm.draw(model["w1"], draws=400, random_seed=1).ravel()
    n = w.size
    # sd of the sample variance: sigma^2 sqrt((kurtosis - 1) / n)
    assert abs(w.var() - variance) < 5 * variance * np.sqrt((kurtosis - 1) / n)
    assert abs(w.mean()) < 5 * np.sqrt(variance / n)
    if prior.endswith("uniform"):
        assert np.abs(w).max() <= np.sqrt(3 * variance) + 1e-12  # U(-a, a), a = sqrt(6/fan)
    out = pm.draw(model["w_out"], draws=400, random_seed=2).ravel()
    expected_out = {"he_normal": 2 / N_HIDDEN, "he_uniform": 2 / N_HIDDEN,
                    "xavier_normal": 2 / (N_HIDDEN + 1), "xavier_uniform": 2 / (N_HIDDEN + 1),
                    "lecun_normal": 1 / N_HIDDEN, "standard_normal": 1.0}[prior]
    assert abs(out.var() - expected_out) < 5 * expected_out * np.sqrt((kurtosis - 1) / out.size)


@pytest.mark.parametrize("prior, activation", [("he_normal", "relu"), ("he_normal", "tanh"),
                                               ("xavier_uniform", "tanh"), ("xavier_normal", "sigmoid")])
def test_mean_field_recursion_matches_simulation_at_large_width(prior, activation):
    mf = signal.mean_field(prior, activation, depth=8, width=1024)
    sim = signal.simulate(prior, activation, depth=8, width=1024, networks=6, seed=3)
    np.testing.assert_allclose(sim["q"], mf["q"], rtol=0.08)
    np.testing.assert_allclose(sim["c"], mf["c"], atol=0.06)
    np.testing.assert_allclose(sim["chi_1"], mf["chi_1"], rtol=0.08)


def test_known_fixed_points():
    # He + ReLU: sigma_w^2 E[relu(z)^2] = q exactly, so q stays at its layer-1 value 2.
    assert np.allclose(signal.mean_field("he_normal", "relu", 20)["q"], 2.0)
    # Xavier + ReLU at equal widths halves q each layer.
    q = signal.mean_field("xavier_normal", "relu", 5)["q"].to_numpy()
    np.testing.assert_allclose(q[1:] / q[:-1], 0.5)
    # He + tanh: the fixed point of q = 2 E[tanh(sqrt(q) z)^2], solved here by scipy.
    from scipy import integrate, optimize, stats

    def g(q):
        return 2 * integrate.quad(lambda z: np.tanh(np.sqrt(q) * z) ** 2 * stats.norm.pdf(z),
                                  -12, 12, limit=200)[0] - q

    q_star = optimize.brentq(g, 0.1, 2.0)
    assert signal.mean_field("he_normal", "tanh", 60)["q"].iloc[-1] == pytest.approx(q_star, rel=1e-4)
    assert q_star == pytest.approx(0.62, abs=0.01)


def test_canonical_order_removes_permutation_and_sign_symmetry(rng):
    w1, b1, wo = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=(5, 1))
    perm = rng.permutation(5)
    sign = np.array([1, -1, 1, -1, -1.0])
    w1b, b1b, wob = w1[:, perm] * sign, b1[perm] * sign, wo[perm] * sign[:, None]
    X = rng.normal(size=(10, 3))
    f_a = bnn.forward({"w1": w1, "b1": b1, "w_out": wo, "b_out": np.zeros(1)}, X, "tanh", 1)
    f_b = bnn.forward({"w1": w1b, "b1": b1b, "w_out": wob, "b_out": np.zeros(1)}, X, "tanh", 1)
    np.testing.assert_allclose(f_a, f_b, atol=1e-12)  # the same function
    for got, want in zip(bnn.canonical_hidden_order(w1b, b1b, wob, odd=True),
                         bnn.canonical_hidden_order(w1, b1, wo, odd=True)):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_auroc_matches_scikit_learn(rng):
    from sklearn.metrics import roc_auc_score

    a, b = rng.normal(size=40), rng.normal(0.7, 1, size=30)
    assert bnn.auroc(a, b) == pytest.approx(
        roc_auc_score(np.r_[np.zeros(40), np.ones(30)], np.r_[a, b]), rel=1e-12)


def _toy(rng, n):
    X = rng.uniform(-2, 2, size=(n, 2))
    y = np.sin(2 * X[:, 0]) + 0.3 * X[:, 1] + 0.1 * rng.normal(size=n)
    return X, y


def _protocol(hidden, activation, prior, **sampler):
    """A BNN protocol with 2 chains and the given draws/tune/seed."""
    from models.inference import SamplerConfig

    return bnn.BNNProtocol(bnn.NetworkSpec(hidden, activation, prior),
                           SamplerConfig(chains=2, init="prior", **sampler))


def test_tiny_bnn_samples_mle_net_beats_constant_and_diagnostics_computed(rng):
    X, y = _toy(rng, 80)
    Xt, yt = _toy(rng, 40)
    d = {"X_train": X, "y_train": y, "X_test": Xt, "y_test_original": yt, "y_mean": 0.0, "y_sd": 1.0}
    r = bnn.evaluate(d, _protocol((4,), "tanh", "xavier_normal", draws=150, tune=150, seed=1))
    m = r["metrics"]
    const_rmse = np.sqrt(np.mean(yt**2))  # independent: the constant-0 predictor
    assert m["constant (training mean)"]["rmse"] == pytest.approx(const_rmse, rel=1e-12)
    assert m["MLE net"]["rmse"] < 0.7 * const_rmse
    assert m["NUTS posterior"]["rmse"] < 0.7 * const_rmse
    fs = r["function_space"]
    for key in ("f_rhat_max", "f_ess_bulk_min", "f_ess_tail_min", "weight_rhat_max_raw",
                "weight_rhat_max_canonical"):
        assert np.isfinite(fs[key])
    stacking = fs["chain_stacking"]
    assert sum(stacking["stacking weight"]) == pytest.approx(1.0, abs=1e-6)
    assert m["NUTS, chains stacked"]["rmse"] < 0.7 * const_rmse
    # divergences: the count in the saved sample_stats, not just a non-negative number
    assert fs["divergences"] == int(r["idata"]["sample_stats"]["diverging"].values.sum())
    assert set(r["diagnostics"].checks) == {
        "r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "e_bfmi_min"}


def test_weighted_predictive_metrics_against_a_hand_mixture(rng):
    # Independent: the mixture density sum_s w_s N(y | mu_s, sd_s) evaluated with scipy pdfs.
    f = rng.normal(size=(3, 7))
    sigma = np.array([0.5, 1.0, 2.0])
    y = rng.normal(size=7) * 3 + 10
    w = np.array([0.2, 0.0, 0.8])
    got = bnn.predictive_regression_metrics(f, sigma, y, 10.0, 3.0, weights=w)
    from scipy import stats
    dens = sum(w[s] * stats.norm.pdf(y, f[s] * 3 + 10, sigma[s] * 3) for s in range(3))
    assert got["test_ll_nats"] == pytest.approx(np.mean(np.log(dens)), rel=1e-12)
    mean = 0.2 * (f[0] * 3 + 10) + 0.8 * (f[2] * 3 + 10)
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((mean - y) ** 2)), rel=1e-12)
    # equal weights are the default
    assert bnn.predictive_regression_metrics(f, sigma, y, 10.0, 3.0, weights=np.full(3, 1 / 3)) \
        == pytest.approx(bnn.predictive_regression_metrics(f, sigma, y, 10.0, 3.0), rel=1e-12)


def test_bad_network_arguments():
    X, y = np.zeros((5, 2)), np.zeros(5)
    with pytest.raises(ValueError, match="prior must be one of"):
        bnn.build(X, y, prior="glorot")
    with pytest.raises(ValueError, match="activation must be one of"):
        bnn.build(X, y, activation="gelu")
    with pytest.raises(ValueError, match="hidden must list"):
        bnn.build(X, y, hidden=())


def test_bnn_classification_against_independent_metrics(rng):
    from scipy import special

    X = rng.normal(size=(120, 2))
    y = (rng.random(120) < special.expit(2 * X[:, 0] - X[:, 1] ** 2)).astype(int)
    r = bnn.evaluate_classification(X[:80], y[:80], X[80:], y[80:],
                                    _protocol((3,), "tanh", "xavier_normal", draws=150, tune=150,
                                              seed=2))
    m = r["metrics"]
    # Independent recomputation of the posterior's NLL from its draws.
    post = r["idata"]["posterior"]
    params = {n: post[n].values.reshape(-1, *post[n].shape[2:]) for n in ("w1", "b1", "w_out", "b_out")}
    p = special.expit(bnn.forward(params, X[80:], "tanh", 1)[..., 0]).mean(0)
    nll = -np.mean(y[80:] * np.log(p) + (1 - y[80:]) * np.log(1 - p))
    assert m["NUTS posterior"]["nll_nats"] == pytest.approx(nll, rel=1e-9)
    base = -np.mean(y[80:] * np.log(y[:80].mean()) + (1 - y[80:]) * np.log(1 - y[:80].mean()))
    assert m["NUTS posterior"]["nll_nats"] < base  # beats the constant (training rate) predictor
    # Brier and ECE of the posterior predictive recomputed with scikit-learn's own functions
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    yt = y[80:]
    assert m["NUTS posterior"]["brier"] == pytest.approx(brier_score_loss(yt, p), rel=1e-9)
    frac, mean_p = calibration_curve(yt, p, n_bins=10, strategy="uniform")
    counts = np.histogram(p, bins=np.linspace(0, 1, 11))[0]
    ece = np.sum(counts[counts > 0] / len(p) * np.abs(frac - mean_p))
    assert m["NUTS posterior"]["ece_10_bins"] == pytest.approx(ece, rel=1e-9)


def test_predictive_entropy_matches_scipy(rng):
    from scipy import stats

    p = rng.dirichlet(np.ones(3), size=20)
    p[0] = [1.0, 0.0, 0.0]  # a certain prediction: entropy 0, not NaN
    np.testing.assert_allclose(bnn.predictive_entropy(p), stats.entropy(p, axis=1), atol=1e-12)


def test_held_out_class_is_flagged_by_the_posterior():
    """Iris without versicolor: the split sizes follow from the data (25% of the 100
    setosa/virginica flowers held back, all 50 versicolor are OOD); accuracy on the two
    linearly separable species is high for every predictor; the posterior's predictive
    entropy is higher on the unseen species than on the test flowers; the function-space
    diagnostics are computed on the class probabilities (identified, unlike softmax logits)."""
    from models import datasets

    X, y = datasets.iris(("sepal_length", "sepal_width", "petal_length", "petal_width"))
    r = bnn.evaluate_held_out_class(X, y, "versicolor", _protocol((4,), "tanh", "xavier_normal",
                                                                  draws=200, tune=300, seed=3))
    assert (r["n_train"], r["n_test"], r["n_ood"]) == (75, 25, 50)
    assert r["classes"] == ["setosa", "virginica"]
    m = r["metrics"]
    for label in ("MLE net", "MAP net", "NUTS posterior"):
        assert m[label]["accuracy"] >= 0.96
        assert m[label]["nll_bits"] == pytest.approx(m[label]["nll_nats"] / np.log(2))
    post = m["NUTS posterior"]
    assert post["entropy_ood_bits"] > post["entropy_in_bits"]
    assert post["ood_auroc_entropy"] > 0.8
    assert np.isfinite(r["function_space"]["f_rhat_max"])
    assert r["idata"]["posterior"]["w_out"].shape[-1] == 2


def test_held_out_class_checks_its_arguments():
    from models import datasets

    X, y = datasets.iris()
    with pytest.raises(ValueError, match="held_out: 'rose' is not a class"):
        bnn.evaluate_held_out_class(X, y, "rose")
    keep = y != "setosa"
    with pytest.raises(ValueError, match="at least 3 classes"):
        bnn.evaluate_held_out_class(X[keep], y[keep], "virginica")
    with pytest.raises(ValueError, match="test_fraction"):
        bnn.evaluate_held_out_class(X, y, "setosa", test_fraction=1.5)


def test_advi_recovers_the_mean_field_optimum_of_a_gaussian_posterior(rng):
    """For a Gaussian posterior N(m, inv(L)), the mean-field KL(q||p) optimum is known in closed
    form: q's means are m and q's variances are 1/diag(L) (Bishop 2006, sec. 10.1.2)."""
    n, sigma, tau = 40, 0.5, 2.0
    X = rng.normal(size=(n, 2))
    X[:, 1] += 0.8 * X[:, 0]  # correlated predictors: a correlated posterior, so 1/L_ii < Sigma_ii
    y = X @ np.array([1.0, -0.5]) + sigma * rng.normal(size=n)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, tau, shape=2)
        pm.Normal("y", X @ beta, sigma, observed=y)
    precision = X.T @ X / sigma**2 + np.eye(2) / tau**2
    m = np.linalg.solve(precision, X.T @ y / sigma**2)
    q = bnn.fit_advi(model, {"beta": np.zeros(2)}, iterations=6000, draws=4000, seed=3)
    assert q["beta"].shape == (4000, 2)
    sd_exact = np.sqrt(np.diag(np.linalg.inv(precision)))
    # Adam (step 0.01) keeps jittering around the optimum by about its step size, in the
    # parameters' units; plus the Monte-Carlo error of 4000 draws
    q_sd = 1 / np.sqrt(np.diag(precision))
    assert np.all(np.abs(q["beta"].mean(0) - m) < 2 * 0.01 + 4 * q_sd / np.sqrt(4000))
    np.testing.assert_allclose(q["beta"].std(0), q_sd, rtol=0.1)
    assert np.all(q["beta"].std(0) < 0.9 * sd_exact)  # mean field under-states the marginal sd


def test_bnn_evaluate_adds_advi(rng):
    X, y = _toy(rng, 60)
    Xt, yt = _toy(rng, 30)
    d = {"X_train": X, "y_train": y, "X_test": Xt, "y_test_original": yt, "y_mean": 0.0, "y_sd": 1.0}
    r = bnn.evaluate(d, _protocol((3,), "tanh", "xavier_normal", draws=100, tune=100, seed=1)
                     .replace(advi_iterations=10000))
    a = r["metrics"]["ADVI (mean-field)"]
    assert a["rmse"] < 0.7 * np.sqrt(np.mean(yt**2))  # beats the constant-0 predictor
    assert np.isfinite(a["test_ll_nats"]) and 0 <= a["shift_auroc"] <= 1
    assert r["advi"]["w1"].shape == (1000, 2, 3) and r["advi"]["sigma"].shape == (1000,)
    # its PSIS check is recorded, and its seconds are the checks' phase, not ADVI's fit
    fs = r["function_space"]
    assert fs["advi_posterior_check"] == r["advi"]["_meta"]["posterior_check"]
    assert fs["phase_seconds"]["posterior_checks"] >= r["advi"]["_meta"]["posterior_check_seconds"]
    assert fs["method_seconds"]["ADVI (mean-field)"] == fs["phase_seconds"]["advi"]
    assert "posterior_checks" not in fs["method_seconds"]


def test_prior_starts_with_one_chain(rng):
    X, y = _toy(rng, 10)
    model = bnn.build(X, y, hidden=(3,), activation="tanh", prior="xavier_normal")
    (start,) = bnn.prior_starts(model, 1, seed=0)
    assert start["w1"].shape == (2, 3) and start["sigma"].shape == ()


def _fake_posterior(b_out):
    """A posterior of a 1-input, 1-unit net whose output is b_out alone (all weights zero)."""
    import xarray as xr

    C, D = b_out.shape
    z = np.zeros
    post = xr.Dataset({"w1": (("chain", "draw", "feature", "hidden_1"), z((C, D, 1, 1))),
                       "b1": (("chain", "draw", "hidden_1"), z((C, D, 1))),
                       "w_out": (("chain", "draw", "hidden_1", "output"), z((C, D, 1, 1))),
                       "b_out": (("chain", "draw", "output"), b_out[..., None])})
    stats = xr.Dataset({"diverging": (("chain", "draw"), z((C, D), dtype=bool))})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def test_within_chain_rhat_separates_modes_from_non_stationary_chains(rng):
    X = np.ones((3, 1))
    # four iid chains around different centres: each stationary, the chains disagree
    modes = np.arange(4)[:, None] + 0.1 * rng.normal(size=(4, 1000))
    fs = bnn.function_space_diagnostics(_fake_posterior(modes), X, "tanh", 1)
    assert fs["f_rhat_max"] > 2 and fs["f_rhat_within_chain_max"] < 1.01
    # one chain drifting (a linear trend): its own halves disagree
    drift = 0.1 * rng.normal(size=(4, 1000))
    drift[2] += np.linspace(0, 3, 1000)
    fs = bnn.function_space_diagnostics(_fake_posterior(drift), X, "tanh", 1)
    assert fs["f_rhat_within_chain_max"] > 1.5


def _nested_rhat_by_hand(x):
    """Margossian et al. (2024), eqs. 4-8, with each chain its own superchain, on rank-normalised
    split chains (Vehtari et al. 2021): both halves of a chain stay in its superchain; the
    larger of the bulk and the folded (tail) value. Written from the papers, not from ArviZ."""
    from scipy import stats

    def z(a):
        r = stats.rankdata(a).reshape(a.shape)
        return stats.norm.ppf((r - 3 / 8) / (a.size + 1 / 4))

    def nested(halves):  # halves: (chains, 2, draws)
        chain_mean, chain_var = halves.mean(-1), halves.var(-1, ddof=1)
        between_super = halves.mean((1, 2)).var(ddof=1)
        within_super = (chain_var.mean(1) + chain_mean.var(1, ddof=1)).mean()
        return np.sqrt(1 + between_super / within_super)

    half = x.shape[1] // 2
    halves = np.stack([x[:, :half], x[:, -half:]], axis=1)
    folded = np.abs(halves - np.median(halves))
    return max(nested(z(halves)), nested(z(folded)))


def test_nested_rhat_of_f_matches_the_papers_formula(rng):
    """The page's nested R-hat of f: each member's chain its own superchain."""
    X = np.ones((3, 1))
    b_out = np.arange(4)[:, None] * 0.05 + rng.normal(size=(4, 1001))
    b_out[1] += np.linspace(0, 1, 1001)  # one chain drifting: its halves disagree
    fs = bnn.function_space_diagnostics(_fake_posterior(b_out), X, "tanh", 1)
    expected = _nested_rhat_by_hand(b_out)
    assert fs["f_rhat_nested_max"] == pytest.approx(expected, rel=1e-9)
    # and it is not the between-chain R-hat the page shows beside it
    assert abs(fs["f_rhat_nested_max"] - fs["f_rhat_max"]) > 1e-3
