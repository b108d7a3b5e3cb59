"""The BNN methods beyond plain NUTS: last-layer Laplace (against scikit-learn's Bayesian linear
regression), chains started at deep-ensemble members (on a tiny net whose two members are the
same function in two weight-space modes), per-chain diagnostics and the running LPPD."""

import numpy as np
import pytest
from scipy import stats

from models import bnn
from models.evaluation.last_layer import fit_last_layer, hidden_features
from models.inference import SamplerConfig, sample_from_starts, within_chain_check


def _net(rng, d_in=3, hidden=6):
    return {"w1": rng.normal(size=(d_in, hidden)), "b1": 0.1 * rng.normal(size=hidden),
            "w_out": rng.normal(size=(hidden, 1)), "b_out": np.zeros(1), "sigma": np.array(0.3)}


def test_last_layer_laplace_is_bayesian_linear_regression_with_evidence_chosen_precisions(rng):
    # Independent: scikit-learn's BayesianRidge on the hidden features (plus a column of ones,
    # no separate intercept) maximises the same evidence over the weight precision (lambda_)
    # and the noise precision (alpha_) by MacKay's fixed-point updates; flat hyperpriors.
    from sklearn.linear_model import BayesianRidge

    params = _net(rng)
    X = rng.normal(size=(80, 3))
    phi = hidden_features(params, X, "tanh", 1)
    y = phi @ rng.normal(size=7) + 0.3 * rng.normal(size=80)
    fit = fit_last_layer(params, X, y, "tanh", 1)
    ref = BayesianRidge(fit_intercept=False, alpha_1=0, alpha_2=0, lambda_1=0, lambda_2=0,
                        tol=1e-12, max_iter=100_000, compute_score=True).fit(phi, y)
    assert fit.prior_precision == pytest.approx(ref.lambda_, rel=1e-5)
    assert fit.sigma == pytest.approx(ref.alpha_ ** -0.5, rel=1e-6)
    np.testing.assert_allclose(fit.mean, ref.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.cov, ref.sigma_, rtol=0, atol=1e-6)
    assert fit.log_evidence == pytest.approx(ref.scores_[-1], rel=1e-9)
    X_new = rng.normal(size=(6, 3))
    mean, var_f = fit.predict(X_new)
    ref_mean, ref_sd = ref.predict(hidden_features(params, X_new, "tanh", 1), return_std=True)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(var_f + fit.sigma ** 2), ref_sd, rtol=1e-6)


def test_gaussian_predictive_metrics_in_original_units(rng):
    mean, var = rng.normal(size=9), rng.uniform(0.2, 2, size=9)
    y = rng.normal(size=9) * 4 + 10
    got = bnn.gaussian_predictive_metrics(mean, var, y, 10.0, 4.0)
    ll = np.log(stats.norm.pdf(y, 10 + 4 * mean, 4 * np.sqrt(var)))  # density, then log
    assert got["test_ll_nats"] == pytest.approx(ll.mean(), rel=1e-12)
    assert got["test_ll_bits"] == pytest.approx(ll.mean() / np.log(2), rel=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((10 + 4 * mean - y) ** 2)), rel=1e-12)


def test_gaussian_mixture_predictive_metrics_against_the_density_by_hand(rng):
    """(K, n) means and variances: the equal-weight mixture of K normals per point (the
    Laplace ensemble), its density summed by hand, RMSE at the mixture mean."""
    mean, var = rng.normal(size=(3, 7)), rng.uniform(0.2, 2, size=(3, 7))
    y = rng.normal(size=7) * 4 + 10
    got = bnn.gaussian_predictive_metrics(mean, var, y, 10.0, 4.0)
    dens = sum(stats.norm.pdf(y, 10 + 4 * mean[k], 4 * np.sqrt(var[k])) for k in range(3)) / 3
    assert got["test_ll_nats"] == pytest.approx(np.log(dens).mean(), rel=1e-12)
    mix_mean = 10 + 4 * mean.mean(axis=0)
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((mix_mean - y) ** 2)), rel=1e-12)


def test_running_lppd_against_the_mixture_density_by_hand(rng):
    f = rng.normal(size=(2, 5, 4))
    sigma = rng.uniform(0.5, 1.5, size=(2, 5))
    y = rng.normal(size=4) * 2 + 1
    run = bnn.running_lppd(f, sigma, y, 1.0, 2.0)
    assert run.shape == (3, 5)
    for t in (1, 3, 5):
        dens = stats.norm.pdf(y, 1 + 2 * f[0, :t], 2 * sigma[0, :t, None]).mean(axis=0)
        assert run[0, t - 1] == pytest.approx(np.log(dens).mean(), rel=1e-12)
        both = stats.norm.pdf(y, 1 + 2 * f[:, :t], 2 * sigma[:, :t, None]).mean(axis=(0, 1))
        assert run[2, t - 1] == pytest.approx(np.log(both).mean(), rel=1e-12)


def test_within_chain_check_passes_modes_and_fails_a_drifting_chain(rng):
    import xarray as xr

    def tree(n_chains, n_draws, divergent=None):
        div = np.zeros((n_chains, n_draws), dtype=bool)
        if divergent is not None:
            div[divergent, 0] = True
        energy = rng.normal(size=(n_chains, n_draws))  # iid energy: E-BFMI about 2
        return xr.DataTree.from_dict({"sample_stats": xr.Dataset(
            {"diverging": (("chain", "draw"), div), "energy": (("chain", "draw"), energy)})})

    # four iid chains at four different centres: every chain passes on its own
    modes = np.arange(4)[:, None, None] * 5 + rng.normal(size=(4, 1000, 3))
    frame, diag = within_chain_check(modes, tree(4, 1000))
    assert diag.passed and frame["passed"].all()
    assert diag.ess_bulk_min > 500  # iid draws: ESS near the number of draws
    # chain 2 drifts: it alone fails, and so does the whole
    drift = rng.normal(size=(4, 1000, 3))
    drift[2] += np.linspace(0, 4, 1000)[:, None]
    frame, diag = within_chain_check(drift, tree(4, 1000))
    assert list(frame["passed"]) == [True, True, False, True] and not diag.passed
    assert not diag.checks["r_hat_max"]
    # one divergent transition in chain 1 fails chain 1
    frame, diag = within_chain_check(modes, tree(4, 1000, divergent=1))
    assert list(frame["passed"]) == [True, False, True, True] and diag.divergences == 1


def test_chains_start_at_their_ensemble_members_and_stay_in_their_modes(rng):
    # A tiny tanh net and its exact mirror image (every hidden unit's signs flipped): the same
    # function, two weight-space modes. Chains started at each must keep the sign of their
    # start's output weights (no chain crosses between the modes) and agree in function space.
    X = rng.uniform(-2, 2, size=(60, 1))
    y = np.tanh(1.5 * X[:, 0]) + 0.1 * rng.normal(size=60)
    model = bnn.build(X, y, hidden=(1,), activation="tanh", prior="xavier_normal")
    (start,) = bnn.deep_ensemble(model, bnn.prior_starts(model, 1, seed=3), 3000)
    mirror = dict(start, w1=-start["w1"], b1=-start["b1"], w_out=-start["w_out"])
    pattern = [1, -1, -1, 1, -1]  # which start each chain gets: no accident matches all five
    tree = sample_from_starts(model, [start if p > 0 else mirror for p in pattern],
                              SamplerConfig(draws=400, tune=300, seed=5))
    w_out = tree["posterior"]["w_out"].values[..., 0, 0]  # (chain, draw)
    s = np.sign(float(start["w_out"][0, 0]))
    assert abs(float(start["w_out"][0, 0])) > 0.5  # the MAP net uses its unit
    for chain, p in enumerate(pattern):
        assert np.all(np.sign(w_out[chain]) == p * s)
    Xt = np.linspace(-2, 2, 7)[:, None]
    f = bnn.forward({k: tree["posterior"][k].values for k in ("w1", "b1", "w_out", "b_out")},
                    Xt, "tanh", 1)[..., 0]
    # same function: the chains' mean predictions agree to Monte Carlo error
    se = np.sqrt(f.var(axis=1).sum(axis=0) / 100)  # at least 100 effective draws per chain
    assert np.all(np.abs(f[0].mean(0) - f[1].mean(0)) < 4 * se)
    frame, diag = within_chain_check(f, tree)
    assert len(frame) == 5 and np.isfinite(diag.r_hat_max)


def test_ensemble_chains_start_as_soon_as_a_core_is_free():
    """Chain starts are a queue, not batches of ``cores``: with 2 cores, chain 2 starts when
    chain 0 finishes although chain 1 is still running (a slow chain in a sharply curved mode
    used to hold back the next batch). Fake nutpie runs: nothing is compiled or sampled."""
    import dataclasses

    import pymc as pm
    import xarray as xr

    from models.inference import CompiledSampler

    with pm.Model() as model:
        pm.Normal("a", 0.0, 1.0)
    started = []

    class Inner:
        def __init__(self, k):
            self.k, self.polls = k, 0

        def is_finished(self):  # nutpie's Rust sampler: True, or TimeoutError while running
            self.polls += 1
            if self.k == 1 and 3 not in started:  # chain 1 runs until chain 3 has started
                raise TimeoutError("Timeout while waiting for sampler to finish")
            return True

    class Run:
        def __init__(self, k):
            self._sampler, self.k = Inner(k), k

        def wait(self):
            assert self.k != 1 or 3 in started, "waited for chain 1 before chain 3 could start"
            post = xr.Dataset({"a": (("chain", "draw"), np.full((1, 5), float(self.k)))})
            stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((1, 5), bool))})
            return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})

    class FakeNutpie:
        @staticmethod
        def sample(compiled, seed, **kw):
            k = [int(s) for s in seeds].index(seed)
            started.append(k)
            return Run(k)

    @dataclasses.dataclass
    class Compiled:
        initial_point_func: object = None

    seeds = np.random.SeedSequence(7).generate_state(4)
    sampler = CompiledSampler.__new__(CompiledSampler)
    sampler.model, sampler.compiled, sampler._nutpie = model, Compiled(), FakeNutpie()
    sampler.config = SamplerConfig(draws=5, tune=5, seed=7)
    tree = sampler.sample_from([{"a": 0.0}] * 4, cores=2)
    assert started == [0, 1, 2, 3]
    np.testing.assert_array_equal(tree["posterior"]["a"].values[:, 0], [0, 1, 2, 3])


@pytest.mark.parametrize("hidden, activation", [((4,), "relu"), ((3, 4), "tanh"), ((2,), "sigmoid")])
def test_ggn_jacobian_matches_finite_differences_of_the_forward_pass(rng, hidden, activation):
    from models.evaluation.ggn import jacobian, parameter_names

    widths = [3, *hidden, 1]
    params = {}
    for layer in range(1, len(hidden) + 1):
        params[f"w{layer}"] = rng.normal(size=(widths[layer - 1], widths[layer]))
        params[f"b{layer}"] = rng.normal(size=widths[layer])
    params["w_out"], params["b_out"] = rng.normal(size=(hidden[-1], 1)), rng.normal(size=1)
    X = rng.normal(size=(5, 3))
    J = jacobian(params, X, activation, len(hidden))
    cols, h = [], 1e-6
    for name in parameter_names(len(hidden)):
        for idx in np.ndindex(params[name].shape):
            up, down = dict(params), dict(params)
            up[name], down[name] = params[name].copy(), params[name].copy()
            up[name][idx] += h
            down[name][idx] -= h
            cols.append((bnn.forward(up, X, activation, len(hidden))[:, 0]
                         - bnn.forward(down, X, activation, len(hidden))[:, 0]) / (2 * h))
    np.testing.assert_allclose(J, np.column_stack(cols), rtol=1e-6, atol=1e-7)


def test_ggn_laplace_precision_and_evidence_by_direct_computation(rng):
    # Independent: the output layer's block of the GGN precision is the last layer's
    # Bayesian-linear-regression precision Phi'Phi / sigma^2 + alpha I (features from
    # last_layer.hidden_features), and the chosen alpha maximises the Laplace evidence
    # written with slogdet on a grid.
    from models.evaluation.ggn import fit_ggn_laplace, flat_parameters, jacobian

    params = _net(rng)
    X = rng.normal(size=(50, 3))
    y = bnn.forward(params, X, "tanh", 1)[:, 0] + 0.3 * rng.normal(size=50)
    fit = fit_ggn_laplace(params, X, y, "tanh", 1)
    precision = np.linalg.inv(fit.cov)
    phi = hidden_features(params, X, "tanh", 1)
    out = slice(3 * 6 + 6, 3 * 6 + 6 + 7)  # w_out (6) then b_out (1) after w1, b1
    np.testing.assert_allclose(precision[out, out],
                               phi.T @ phi / 0.3 ** 2 + fit.prior_precision * np.eye(7),
                               rtol=1e-6, atol=1e-6)
    J, theta = jacobian(params, X, "tanh", 1), flat_parameters(params, 1)
    resid = y - bnn.forward(params, X, "tanh", 1)[:, 0]

    def evidence(alpha):
        _, logdet = np.linalg.slogdet(J.T @ J / 0.09 + alpha * np.eye(len(theta)))
        return (stats.norm.logpdf(resid, 0, 0.3).sum() - alpha / 2 * theta @ theta
                + len(theta) / 2 * np.log(alpha) - logdet / 2)

    assert fit.log_evidence == pytest.approx(evidence(fit.prior_precision), rel=1e-10)
    for factor in (0.9, 1.1, 0.5, 2.0):
        assert evidence(fit.prior_precision * factor) < evidence(fit.prior_precision)
    mean, var = fit.predict(X[:4])
    np.testing.assert_allclose(mean, bnn.forward(params, X[:4], "tanh", 1)[:, 0])
    np.testing.assert_allclose(var, np.einsum("ij,jk,ik->i", J[:4], fit.cov, J[:4]))


def test_ggn_laplace_noise_by_evidence_is_mackays_fixed_point(rng):
    # Independent: the Laplace evidence over (alpha, sigma) written with slogdet of the P x P
    # precision (no eigenbasis), and MacKay's (1992) stationarity conditions derived by hand:
    # sigma^2 = RSS / (N - gamma), alpha = gamma / |theta|^2, gamma = P - alpha tr(A^-1).
    from models.evaluation.ggn import fit_ggn_laplace, flat_parameters, jacobian

    params = _net(rng)  # sigma 0.3, but the data's noise is 0.5: the evidence must say so
    X = rng.normal(size=(60, 3))
    y = bnn.forward(params, X, "tanh", 1)[:, 0] + 0.5 * rng.normal(size=60)
    fit = fit_ggn_laplace(params, X, y, "tanh", 1, noise="evidence")
    J, theta = jacobian(params, X, "tanh", 1), flat_parameters(params, 1)
    resid = y - bnn.forward(params, X, "tanh", 1)[:, 0]
    P, n = len(theta), len(y)

    def evidence(alpha, sigma):
        _, logdet = np.linalg.slogdet(J.T @ J / sigma ** 2 + alpha * np.eye(P))
        return (stats.norm.logpdf(resid, 0, sigma).sum() - alpha / 2 * theta @ theta
                + P / 2 * np.log(alpha) - logdet / 2)

    a, s = fit.prior_precision, fit.sigma
    A = J.T @ J / s ** 2 + a * np.eye(P)
    gamma = P - a * np.trace(np.linalg.inv(A))
    assert s ** 2 == pytest.approx(resid @ resid / (n - gamma), rel=1e-6)
    assert a == pytest.approx(gamma / (theta @ theta), rel=1e-6)
    assert fit.log_evidence == pytest.approx(evidence(a, s), rel=1e-10)
    for fa, fs in ((1, 0.9), (1, 1.1), (0.8, 1), (1.25, 1), (0.9, 1.05)):
        assert evidence(a * fa, s * fs) < evidence(a, s)
    np.testing.assert_allclose(np.linalg.inv(fit.cov), A, rtol=1e-6, atol=1e-6)
    assert s > 0.35  # moved from the MAP net's 0.3 towards the data's noise
    # the default keeps the MAP net's sigma; a fixed precision moves sigma alone
    assert fit_ggn_laplace(params, X, y, "tanh", 1).sigma == 0.3
    fixed = fit_ggn_laplace(params, X, y, "tanh", 1, prior_precision=2.0, noise="evidence")
    A2 = J.T @ J / fixed.sigma ** 2 + 2.0 * np.eye(P)
    assert fixed.prior_precision == 2.0
    assert fixed.sigma ** 2 == pytest.approx(
        resid @ resid / (n - P + 2.0 * np.trace(np.linalg.inv(A2))), rel=1e-6)
    with pytest.raises(ValueError, match="noise must be one of"):
        fit_ggn_laplace(params, X, y, "tanh", 1, noise="mle")


def test_ggn_ensemble_with_noise_by_evidence_recomputed_from_its_members():
    """The protocol's "GGN Laplace ensemble (mixture)" row under ggn_noise="evidence",
    recomputed from the members it returns: each member's (alpha, sigma) by MacKay's
    fixed-point iteration (not the package's optimiser), its linearised predictive with a
    dense inverse, and the equal-weight mixture density with scipy."""
    from models.base import datasets
    from models.evaluation.ggn import flat_parameters, jacobian

    d = datasets.uci("yacht", 0)
    proto = bnn.BNNProtocol(bnn.NetworkSpec((4,), "tanh", "xavier_normal"),
                            SamplerConfig(chains=2, seed=3, init="prior"), nuts=False,
                            mle_maxiter=500, ggn_noise="evidence")
    r = bnn.evaluate(d, proto, cores=1)
    dens = []
    for p in r["members"]:
        J, theta = jacobian(p, d["X_train"], "tanh", 1), flat_parameters(p, 1)
        resid = d["y_train"] - bnn.forward(p, d["X_train"], "tanh", 1)[:, 0]
        mu = np.linalg.eigvalsh(J.T @ J)
        a, s2 = 1.0, float(p["sigma"]) ** 2
        for _ in range(5000):  # MacKay's updates
            gamma = np.sum(mu / (mu + a * s2))
            a, s2 = gamma / (theta @ theta), resid @ resid / (len(resid) - gamma)
        cov = np.linalg.inv(J.T @ J / s2 + a * np.eye(len(theta)))
        Jt = jacobian(p, d["X_test"], "tanh", 1)
        f = bnn.forward(p, d["X_test"], "tanh", 1)[:, 0]
        var = np.einsum("ij,jk,ik->i", Jt, cov, Jt) + s2
        dens.append(stats.norm.pdf(d["y_test_original"], f * d["y_sd"] + d["y_mean"],
                                   np.sqrt(var) * d["y_sd"]))
    assert r.metrics[bnn.GGN_ENSEMBLE]["test_ll_nats"] == pytest.approx(
        np.log(np.mean(dens, axis=0)).mean(), rel=1e-6)
    assert r.function_space["ggn_laplace"]["noise"] == "evidence"
    assert r.function_space["ggn_laplace"]["sigma"] != float(r["members"][0]["sigma"])
    assert "ggn_noise='evidence'" in repr(proto) and "ggn_noise" not in repr(proto.replace(
        ggn_noise="map"))
    with pytest.raises(ValueError, match="ggn_noise must be one of"):
        proto.replace(ggn_noise="mle")


def test_method_seconds_charge_each_method_what_it_needs():
    """The documented definition: the MAP net is one member; both Laplace rows add their fit
    to one member; the Laplace ensemble pays for every member and every GGN fit; ensemble-started NUTS pays for every member and its sampling; stacking adds
    to that; prior-started NUTS pays for sampling only."""
    from models.evaluation import bnn

    phase = {"mle": 1.0, "members": 8.0, "nuts": 10.0, "last_layer": 0.5, "ggn": 0.25,
             "ggn_ensemble": 0.75, "stacking": 2.0, "advi": 3.0}
    got = bnn.method_seconds(phase, 4)
    assert got == {bnn.MLE_NET: 1.0, bnn.MAP_NET: 2.0, bnn.DEEP_ENSEMBLE: 8.0,
                   bnn.LAPLACE: 2.5, bnn.GGN_LAPLACE: 2.25, bnn.GGN_ENSEMBLE: 9.0, bnn.NUTS: 18.0,
                   bnn.NUTS_STACKED: 20.0, bnn.ADVI: 3.0}
    assert bnn.method_seconds(phase, 4, chains_from="prior")[bnn.NUTS] == 10.0


def test_divergence_locations_rank_the_divergent_draws_within_their_own_chain(rng):
    import xarray as xr

    from models.inference import divergence_locations

    n = 1000
    a = rng.normal(size=(2, n))
    b = rng.normal(size=(2, n, 3))
    div = np.zeros((2, n), dtype=bool)
    div[1, np.argsort(b[1, :, 1])[-20:]] = True  # chain 1 diverges at b[y]'s 20 largest draws
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"a": (("chain", "draw"), a),
                                 "b": (("chain", "draw", "k"), b)}, coords={"k": ["x", "y", "z"]}),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), div)})})
    got = divergence_locations(tree, {"-b[y]": -b[:, :, 1]}, top=2)
    # only chain 1 has rows; its top two are b[y] in its upper tail and -b[y] in its lower:
    # the 20 largest of n draws have midrank percentiles (n - 19.5 .. n - 0.5) / n * 100,
    # mean (n - 10) / n * 100 = 99.0
    assert list(got["chain"]) == [1, 1] and list(got["divergences"]) == [20, 20]
    assert set(got["quantity"]) == {"b[y]", "-b[y]"}
    pct = dict(zip(got["quantity"], got["percentile at divergences"]))
    assert pct["b[y]"] == pytest.approx((n - 10) / n * 100)
    assert pct["-b[y]"] == pytest.approx(10 / n * 100)
    row = got.set_index("quantity").loc["b[y]"]
    assert row["median at divergences"] == pytest.approx(np.median(np.sort(b[1, :, 1])[-20:]))
    assert row["median in chain"] == pytest.approx(np.median(b[1, :, 1]))
    calm = xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset(), "sample_stats":
                                  xr.Dataset({"diverging": (("chain", "draw"), div & False)})})
    assert divergence_locations(calm).empty


def test_unit_scales_are_each_hidden_units_output_and_input_weight_sizes():
    import xarray as xr

    w1 = np.zeros((1, 2, 2, 3))  # (chain, draw, feature, unit)
    w1[0, :, :, 2] = [3.0, 4.0]  # unit 2's input weights: norm 5
    w_out = np.zeros((1, 2, 3, 1))
    w_out[0, :, 2, 0] = -2.0
    post = xr.Dataset({"w1": (("chain", "draw", "feature", "hidden_1"), w1),
                       "w_out": (("chain", "draw", "hidden_1", "output"), w_out)})
    got = bnn.unit_scales(post, 1)
    assert set(got) == {f"|w_out[{j}]|" for j in range(3)} | {f"||w1[:, {j}]||" for j in range(3)}
    assert np.all(got["||w1[:, 2]||"] == 5.0) and np.all(got["|w_out[2]|"] == 2.0)
    assert np.all(got["||w1[:, 0]||"] == 0.0) and got["|w_out[1]|"].shape == (1, 2)


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_product_coordinates_are_the_same_posterior_written_with_the_jacobian(rng, power):
    """build_product's log density, at points mapped from (v, w, b), equals scipy's: the
    folded Xavier prior of (v, w, b) + log|J| of the map from a finite-difference Jacobian of
    an independently written map + the normal likelihood, up to one constant; for u = v (w, b)
    and for the partly non-centred u = sqrt(v) (w, b)."""
    n, d, H = 15, 2, 3
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    model = bnn.build_product(X, y, units=H, power=power)
    logp = model.compile_logp(jacobian=True)
    s_in, s_out = np.sqrt(2 / (d + H)), np.sqrt(2 / (H + 1))

    def to_vwb(theta):  # (r, u) -> (v, w, b), flat
        r, u = theta[:H], theta[H:].reshape(d + 1, H)
        return np.concatenate([np.exp(r), (u / np.exp(r) ** power).ravel()])

    gaps = []
    for _ in range(4):
        v = rng.uniform(0.2, 2.0, H) * rng.choice([-1, 1], H)  # some negative: folded
        w, b = rng.normal(0, s_in, (d, H)), rng.normal(0, 0.1, H)
        net = {"w1": w, "b1": b, "w_out": v[:, None], "b_out": np.array([0.3]), "sigma": np.array(0.7)}
        start = bnn.product_start(net, power)
        theta = np.concatenate([start["r"], start["u"].ravel()])
        J = np.empty((theta.size, theta.size))
        for k in range(theta.size):
            e = np.zeros_like(theta)
            e[k] = 1e-6
            J[:, k] = (to_vwb(theta + e) - to_vwb(theta - e)) / 2e-6
        vv, wb = to_vwb(theta)[:H], to_vwb(theta)[H:].reshape(d + 1, H)
        f = np.tanh(X @ w + b) @ v + 0.3  # the original net's function
        want = (stats.halfnorm.logpdf(vv, scale=s_out).sum() + stats.norm.logpdf(wb[:d], 0, s_in).sum()
                + stats.norm.logpdf(wb[d], 0, 0.1).sum() + np.linalg.slogdet(J)[1]
                + stats.norm.logpdf(y, f, 0.7).sum())
        point = {"r": start["r"], "u": start["u"], "b_out": start["b_out"],
                 "sigma_log__": np.log(start["sigma"])}
        gaps.append(logp(point) - want)
    assert np.ptp(gaps) < 1e-6


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_product_start_keeps_the_function_and_refuses_what_it_cannot_map(rng, power):
    d, H = 3, 4
    net = {"w1": rng.normal(size=(d, H)), "b1": rng.normal(size=H),
           "w_out": np.array([[0.5], [-1.5], [2.0], [-0.1]]), "b_out": np.array([0.2])}
    import pytensor

    model = bnn.build_product(rng.normal(size=(10, d)), rng.integers(0, 2, 10), units=H,
                              likelihood="bernoulli", power=power)
    start = bnn.product_start(net, power)
    assert "sigma" not in start
    # u's first row: the first input weight times |v|^power, computed here from the net
    np.testing.assert_allclose(start["u"][0], net["w1"][0] * np.sign(net["w_out"][:, 0])
                               * np.abs(net["w_out"][:, 0]) ** power)
    # the model's own w1, b1, w_out at the start compute the original net's function
    weights = pytensor.function([model["r"], model["u"]],
                                [model["w1"], model["b1"], model["w_out"]])
    w1, b1, w_out = weights(start["r"], start["u"])
    back = {"w1": w1, "b1": b1, "w_out": w_out, "b_out": start["b_out"]}
    X = rng.normal(size=(7, d))
    assert np.all(w_out > 0)
    np.testing.assert_allclose(bnn.forward(back, X, "tanh", 1), bnn.forward(net, X, "tanh", 1),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="output weight is exactly 0"):
        bnn.product_start(dict(net, w_out=np.array([[0.5], [0.0], [1.0], [1.0]])))
    with pytest.raises(ValueError, match="prior"):
        bnn.build_product(X, np.zeros(7), prior="he_uniform")
    with pytest.raises(ValueError, match="likelihood"):
        bnn.build_product(X, np.zeros(7), likelihood="categorical")
    import pandas as pd

    named = bnn.build_product(pd.DataFrame(X, columns=["bias", "x", "bias_"]), np.zeros(7))
    assert list(named.coords["input_row"]) == ["bias", "x", "bias_", "bias__"]
    with pytest.raises(ValueError, match="units must be a positive number"):
        bnn.build_product(X, np.zeros(7), units=0)
    for bad in (0, 1.5, -0.5, True, "1"):
        with pytest.raises(ValueError, match=r"power must be a number in \(0, 1\]"):
            bnn.build_product(X, np.zeros(7), power=bad)
        with pytest.raises(ValueError, match=r"power must be a number in \(0, 1\]"):
            bnn.product_start(net, bad)


def _product_split(rng, n=60):
    """A 2-input regression split (standardised units) for the product-coordinate protocol."""
    def draw(m):
        X = rng.uniform(-2, 2, size=(m, 2))
        return X, np.tanh(1.5 * X[:, 0]) - 0.5 * np.tanh(X[:, 1] - 0.5) + 0.1 * rng.normal(size=m)
    (X, y), (Xt, yt) = draw(n), draw(20)
    return {"X_train": X, "y_train": y, "X_test": Xt, "y_test_original": yt,
            "y_mean": 0.0, "y_sd": 1.0}


def _product_protocol(coordinates, draws=1000, product_power=1.0, **net):
    spec = dict({"hidden": (2,), "activation": "tanh", "prior": "xavier_normal"}, **net)
    return bnn.BNNProtocol(bnn.NetworkSpec(**spec),
                           SamplerConfig(draws=draws, tune=draws, chains=2, seed=4, init="prior",
                                         target_accept=0.9),
                           coordinates=coordinates, product_power=product_power)


def _f_draws(idata, X):
    """f at X from the saved draws of w1, b1, w_out, b_out (numpy, not the package's forward)."""
    p = idata["posterior"]
    h = np.tanh(np.einsum("nd,cpdh->cpnh", X, p["w1"].values) + p["b1"].values[:, :, None, :])
    return np.einsum("cpnh,cph->cpn", h, p["w_out"].values[..., 0]) + p["b_out"].values[..., :1]


def test_product_coordinates_protocol_samples_the_same_functions(rng):
    """evaluate(..., coordinates="product") samples the posterior over functions that the
    network's own weights give: each chain starts at the same member (same seeds), so each
    chain's posterior mean and sd of f at the test inputs, from the saved draws, agree with
    the weights' chain's within Monte-Carlo error (ArviZ's MCSE of the mean)."""
    import arviz as az

    d = _product_split(rng)
    powers = {"weights": None, "product": 1.0, "product a=0.5": 0.5}
    runs = {c: bnn.evaluate(d, _product_protocol("weights") if a is None else
                            _product_protocol("product", product_power=a), cores=1)
            for c, a in powers.items()}
    f = {c: _f_draws(r.idata, d["X_test"]) for c, r in runs.items()}
    for coords in ("product", "product a=0.5"):
        post = runs[coords].idata["posterior"]
        assert {"r", "u", "w1", "b1", "w_out"} <= set(post.data_vars)
        assert runs[coords].function_space["coordinates"] == "product"
        # the members, MLE net and Laplace rows are the network's own fits either way
        for key in ("MLE net", "deep ensemble (MAP nets)", "GGN Laplace (linearised)"):
            assert runs[coords].metrics[key] == runs["weights"].metrics[key]
        for c in range(2):
            mean = {k: f[k][c].mean(0) for k in (coords, "weights")}
            sd = {k: f[k][c].std(0) for k in (coords, "weights")}
            se = {k: np.asarray(az.mcse(f[k][c][None], method="mean")) for k in (coords, "weights")}
            gap = np.abs(mean[coords] - mean["weights"]) / np.hypot(se[coords], se["weights"])
            assert gap.max() < 4.5, (coords, c, gap.max())
            np.testing.assert_allclose(sd[coords], sd["weights"], rtol=0.25)
        # the draws of w_out come out folded positive: the product model's, not build's
        assert np.all(post["w_out"].values > 0)
        # and NUTS ran in u = v^a (w, b) with this coordinate system's a, from the saved draws
        a = powers[coords]
        np.testing.assert_allclose(post["u"].values[:, :, :-1, :],
                                   post["w1"].values * post["w_out"].values[..., 0][:, :, None, :] ** a,
                                   rtol=1e-9)


def test_product_coordinates_reuse_one_compiled_sampler_with_new_data(rng):
    """A benchmark compiles the product model once (on another split's data) and swaps each
    split in: its draws and stacking weights equal a fresh model's on this split's data."""
    from models.inference import CompiledSampler

    proto = _product_protocol("product", draws=150)
    other, d = _product_split(rng, 40), _product_split(rng)
    compiled = CompiledSampler(proto.sampling_model(other["X_train"], other["y_train"]),
                               proto.sampler)
    net_model = proto.net.build_model(other["X_train"], other["y_train"])
    reused = bnn.evaluate(d, proto, compiled=compiled, cores=1, model=net_model)
    fresh = bnn.evaluate(d, proto, cores=1)
    for name in ("r", "u", "b_out", "sigma"):
        np.testing.assert_allclose(reused.idata["posterior"][name].values,
                                   fresh.idata["posterior"][name].values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(reused.function_space["chain_stacking"]["stacking weight"],
                               fresh.function_space["chain_stacking"]["stacking weight"], atol=1e-9)


def test_product_coordinates_are_refused_where_they_do_not_exist():
    for net, match in (({"activation": "relu", "prior": "he_normal"}, "tanh units"),
                       ({"hidden": (2, 2)}, "one hidden layer"),
                       ({"prior": "xavier_uniform"}, "a normal weight prior")):
        with pytest.raises(ValueError, match=f"coordinates 'product' needs {match}"):
            _product_protocol("product", **net)
    with pytest.raises(ValueError, match="chains started at ensemble members"):
        _product_protocol("product").replace(chains_from="prior")
    with pytest.raises(ValueError, match="needs NUTS"):
        _product_protocol("product").replace(nuts=False)
    with pytest.raises(ValueError, match="coordinates must be one of"):
        _product_protocol("polar")
    for bad in (0, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match=r"product_power must be a number in \(0, 1\]"):
            _product_protocol("product", product_power=bad)
    with pytest.raises(ValueError, match="product_power 0.5 needs coordinates 'product'"):
        _product_protocol("weights", product_power=0.5)
    assert _product_protocol("product", product_power=0.5).power == 0.5
    assert _product_protocol("weights").power is None
    # the network's own weights keep the repr, so saved UCI splits keep their fingerprint
    assert "coordinates" not in repr(_product_protocol("weights"))
    assert "coordinates='product'" in repr(_product_protocol("product"))
    # and product coordinates at a = 1 keep theirs; another power is another protocol
    assert "product_power" not in repr(_product_protocol("product"))
    assert "product_power=0.75" in repr(_product_protocol("product", product_power=0.75))


@pytest.mark.parametrize("argv, match", [
    (["--activation", "relu"], "--coordinates 'product' needs tanh units"),
    (["--hidden", "3,3"], "--coordinates 'product' needs one hidden layer"),
    (["--chains-from", "prior"], "--coordinates 'product' needs chains started at ensemble"),
    (["--task", "classification"], "--coordinates product: only for --task regression"),
    (["--product-power", "1.5"], r"--product-power must be a number in \(0, 1\], got 1.5")])
def test_the_bnn_workflow_refuses_product_coordinates_in_one_line(tmp_path, argv, match):
    from workflows import bnn as bnn_wf
    from workflows.options import parser

    args = bnn_wf.add_arguments(parser("bnn", "")).parse_args(
        ["--coordinates", "product", *argv, "--out", str(tmp_path / "o")])
    s = bnn_wf.bnn_settings(args)
    widths, prior = bnn_wf.network_options(args, s.quick)
    with pytest.raises(SystemExit, match=match) as exc:
        bnn_wf.protocol(args, s, widths, prior)
    assert "\n" not in str(exc.value)
    assert bnn_wf.protocol(bnn_wf.add_arguments(parser("bnn", "")).parse_args(
        ["--coordinates", "product", "--out", str(tmp_path / "o")]), s, (3,),
        "xavier_normal").coordinates == "product"


@pytest.mark.parametrize("task", ["classification", "held_out_class"])
def test_the_bnn_workflow_refuses_ggn_noise_without_ggn_rows(tmp_path, task):
    from workflows import bnn as bnn_wf
    from workflows.options import parser

    args = bnn_wf.add_arguments(parser("bnn", "")).parse_args(
        ["--task", task, "--ggn-noise", "evidence", "--out", str(tmp_path / "o")])
    s = bnn_wf.bnn_settings(args)
    widths, prior = bnn_wf.network_options(args, s.quick)
    with pytest.raises(SystemExit, match="^error: --ggn-noise evidence: only for --task "
                                         "regression") as exc:
        bnn_wf.protocol(args, s, widths, prior)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "o").exists()


def test_uci_benchmark_refuses_product_coordinates_in_one_line_before_any_work(tmp_path):
    from workflows import uci_benchmark

    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exc:
        uci_benchmark.main(["--coordinates", "product", "--activation", "relu", "--out", str(out)])
    assert str(exc.value) == "error: --coordinates 'product' needs tanh units (got relu)"
    assert not out.exists() and not (tmp_path / "o.splits").exists()
    with pytest.raises(SystemExit) as exc:  # a power without the product coordinates
        uci_benchmark.main(["--product-power", "0.5", "--activation", "tanh", "--out", str(out)])
    assert str(exc.value).startswith("error: --product-power 0.5 needs coordinates 'product'")
    assert "\n" not in str(exc.value)
    assert not out.exists() and not (tmp_path / "o.splits").exists()


class _Said:
    """A stand-in report that keeps what a workflow writes on its page."""

    def __init__(self):
        self.said, self.metrics = [], {}

    def text(self, sentence, kind=None):
        self.said.append(sentence)


@pytest.mark.parametrize("coordinates, power, says, not_says", [
    ("weights", 1.0, [], ["product coordinates"]),
    ("product", 1.0, ["(--coordinates product)", "u_j = v_j (w_j, b_j)"], ["--product-power"]),
    ("product", 0.75, ["(--coordinates product --product-power 0.75)",
                       "u_j = v_j^0.75 (w_j, b_j)"], [])])
def test_both_pages_say_which_coordinates_nuts_ran_in(coordinates, power, says, not_says):
    """The bnn page's sampler note and the uci_benchmark page's protocol paragraph name the
    coordinates and the power the protocol ran with (written from the protocol's fields)."""
    from workflows import bnn as bnn_wf
    from workflows import uci_benchmark

    proto = _product_protocol(coordinates, product_power=power)
    pages = {"bnn": _Said(), "uci_benchmark": _Said()}
    bnn_wf._sampler_note(pages["bnn"], proto, None)
    uci_benchmark._describe(pages["uci_benchmark"], proto.sampler, proto, 2, "here")
    assert pages["uci_benchmark"].metrics["network"]["product_power"] == \
        (None if coordinates == "weights" else power)
    for page, report in pages.items():
        text = " ".join(report.said)
        if page == "uci_benchmark":  # its own words: "the input weights and bias times ..."
            says = [w.replace("u_j = v_j^0.75 (w_j, b_j)", "its output weight to the power 0.75")
                     .replace("u_j = v_j (w_j, b_j)", "times its output weight;") for w in says]
        for words in says:
            assert words in text, (page, words)
        for words in not_says:
            assert words not in text, (page, words)


@pytest.mark.parametrize("noise, says", [
    ("map", "noise σ the member's"),
    ("evidence", "noise σ by the evidence too (--ggn-noise evidence), not the member's own")])
def test_uci_page_says_where_the_ggn_noise_comes_from(noise, says):
    from workflows import uci_benchmark

    proto = bnn.BNNProtocol(nuts=False, ggn_noise=noise)
    page = _Said()
    uci_benchmark._describe(page, proto.sampler, proto, 2, "here")
    assert says in " ".join(page.said)
    assert page.metrics["network"]["ggn_noise"] == noise


def test_bnn_page_says_where_the_ggn_noise_comes_from():
    from workflows import bnn as bnn_wf

    assert bnn_wf._ggn_noise_words({"sigma": 0.0605, "noise": "map"}, 0.0605) == \
        "σ the MAP net's (0.0605)"
    assert bnn_wf._ggn_noise_words({"sigma": 0.0605}, 0.0605) == "σ the MAP net's (0.0605)"
    assert bnn_wf._ggn_noise_words({"sigma": 0.0605, "noise": "evidence"}, 0.058) == (
        "σ 0.0605, chosen with it by the evidence (--ggn-noise evidence; the MAP net's is 0.058)")


def _identified_tanh_net():
    """One tanh unit, 2000 rows of its own function plus noise sd 0.1: a posterior close to
    Gaussian around its MAP net, with the GGN Laplace around that MAP net."""
    import dataclasses  # noqa: F401  (the callers replace the Laplace's covariance)

    from models.evaluation.ggn import fit_ggn_laplace

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    y = 1.5 * np.tanh(X @ np.array([0.8, -0.5]) + 0.2) + 0.1 * rng.normal(size=2000)
    model = bnn.NetworkSpec((1,), "tanh", "xavier_normal").build_model(X, y)
    member = bnn.deep_ensemble(model, bnn.prior_starts(model, 1, seed=1), 3000)[0]
    return X, y, model, fit_ggn_laplace(member, X, y, "tanh", 1)


def test_ggn_posterior_check_importance_ratios_by_hand():
    """The log importance ratios are the network's log posterior (its Xavier prior, bias sd
    0.1, the normal likelihood at the Laplace's sigma), written here in numpy and scipy, minus
    the Gaussian's log density, up to one constant; the sigma is the Laplace's, not another."""
    from models.evaluation.ggn import flat_parameters, importance_log_ratios
    from models.families.bnn import forward, weight_variance

    X, y, model, g = _identified_tanh_net()
    theta = flat_parameters(g.params, 1)
    z = theta + 0.05 * np.random.default_rng(3).normal(size=(50, len(theta)))
    sd_in, sd_out = np.sqrt(weight_variance("xavier_normal", 2, 1)), np.sqrt(
        weight_variance("xavier_normal", 1, 1))
    by_hand = []
    for zi in z:
        params = {"w1": zi[:2].reshape(2, 1), "b1": zi[2:3], "w_out": zi[3:4].reshape(1, 1),
                  "b_out": zi[4:5]}
        log_prior = (stats.norm.logpdf(zi[:2], 0, sd_in).sum() + stats.norm.logpdf(zi[2], 0, 0.1)
                     + stats.norm.logpdf(zi[3], 0, sd_out) + stats.norm.logpdf(zi[4], 0, 0.1))
        log_lik = stats.norm.logpdf(y, forward(params, X, "tanh", 1)[:, 0], g.sigma).sum()
        by_hand.append(log_prior + log_lik
                       - stats.multivariate_normal(theta, g.cov).logpdf(zi))
    diff = importance_log_ratios(g, model, z) - np.array(by_hand)
    assert np.ptp(diff) < 1e-6 * np.ptp(by_hand)
    # at another sigma the ratios differ by more than a constant: the check uses the Laplace's
    import dataclasses

    other = importance_log_ratios(dataclasses.replace(g, sigma=1.2 * g.sigma), model, z)
    assert np.ptp(other - np.array(by_hand)) > 1.0


def test_ggn_posterior_check_passes_a_near_gaussian_posterior_and_fails_a_narrow_proposal():
    """PSIS k-hat against its closed form: for a Gaussian target and the same Gaussian with
    its covariance times s as the proposal, the importance ratios have a Pareto tail with
    k = 1 - s (P(w > t) ~ t^(-1/(1-s))). Around a near-Gaussian posterior the GGN Laplace
    passes (k-hat near 0, importance ESS most of the 2000 draws); shrunk to s = 0.1 it fails
    (k = 0.9); s = 0.5 reads k-hat near 0.5; s = 1.5 (wider than the target) has bounded
    weights, k < 0. A check with the ratios' sign flipped passes the narrow one."""
    import dataclasses

    from models.evaluation.ggn import posterior_check

    _, _, model, g = _identified_tanh_net()
    check = posterior_check(g, model)
    assert check.passed and check.pareto_k < 0.3 and check.ess > 1500
    assert check.draws == 2000 and check.good_k == pytest.approx(1 - 1 / np.log10(2000))
    narrow = posterior_check(dataclasses.replace(g, cov=0.1 * g.cov), model)
    assert not narrow.passed and narrow.pareto_k > 0.75
    half = posterior_check(dataclasses.replace(g, cov=0.5 * g.cov), model)
    assert abs(half.pareto_k - 0.5) < 0.25
    wide = posterior_check(dataclasses.replace(g, cov=1.5 * g.cov), model)
    assert wide.passed and wide.pareto_k < 0
    assert narrow.to_dict() == {"pareto_k": narrow.pareto_k, "good_k": narrow.good_k,
                                "importance_ess": narrow.ess, "psis_draws": 2000,
                                "passed": False}


def test_ggn_posterior_check_skips_uniform_weight_priors():
    from models.evaluation.ggn import fit_ggn_laplace, posterior_check

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 2)), rng.normal(size=40)
    model = bnn.NetworkSpec((2,), "tanh", "xavier_uniform").build_model(X, y)
    member = bnn.deep_ensemble(model, bnn.prior_starts(model, 1, seed=1), 500)[0]
    assert posterior_check(fit_ggn_laplace(member, X, y, "tanh", 1), model) is None


def test_pages_say_whether_the_ggn_laplace_is_the_networks_posterior():
    """The bnn page's words for the GGN rows' PSIS check (passed, failed, infinite k-hat, not
    recorded) and the best-method sentence's caution when a GGN row wins and failed."""
    from workflows import bnn as bnn_wf

    ok = {"pareto_k": 0.21, "good_k": 0.697, "importance_ess": 1800.4, "psis_draws": 2000,
          "passed": True}
    bad = {**ok, "pareto_k": 55.83, "importance_ess": 1.1, "passed": False}
    inf = {**bad, "pareto_k": None}  # metrics.json writes an infinite k-hat as null
    assert bnn_wf._laplace_check_words([ok]) == (True, (
        "its Gaussian passed the PSIS posterior check as an importance proposal for this "
        "network's posterior over its weights (Pareto k̂ 0.21, at most 0.70)"))
    passed, words = bnn_wf._laplace_check_words([ok, bad, inf])
    assert passed is False and "each of its 3 Gaussians failed" in words
    assert "Pareto k̂ 0.21, 55.83, ∞; above 0.70 fails" in words
    assert bnn_wf._laplace_check_words([None])[0] is None
    sentence = bnn_wf._posterior_check_sentence(bad)
    assert "give Pareto k̂ 55.83 and an importance ESS of 1.1 of 2000: above ArviZ's 0.70" \
        in sentence and "linearised at the MAP net" in sentence
    assert "so the Gaussian is close to it" in bnn_wf._posterior_check_sentence(ok)
    assert bnn_wf._posterior_check_sentence(None) == ""
    assert bnn_wf._advi_check_words(bad) == (False, (
        "its mean-field normal failed the PSIS posterior check (Pareto k̂ 55.83, importance "
        "ESS 1.1 of 2000; at most 0.70 passes): it is not this network's posterior"))
    assert bnn_wf._advi_check_words(ok)[0] is True
    assert bnn_wf._advi_check_words(None)[0] is None
    text, best = bnn_wf.best_method_sentence(
        {bnn.GGN_ENSEMBLE: {"test_ll_nats": -1.0, "rmse": 0.5},
         bnn.NUTS: {"test_ll_nats": -1.2, "rmse": 0.6}},
        {bnn.GGN_ENSEMBLE: bnn_wf._laplace_check_words([bad]), bnn.NUTS: (True, "passed")})
    assert best["checks_passed"] is False and "treat the ranking with caution" in text


@pytest.mark.parametrize("s", [0.15, 0.8])
def test_mean_field_check_against_the_closed_form_tail_of_a_gaussian_posterior(s):
    """Conjugate linear regression with orthogonal predictors: the posterior is N(m, inv(L)),
    L diagonal. A mean-field normal with variances s / L_ii is the posterior's covariance
    times s, so p/q is proportional to exp((1 - s) |u|^2 / 2) for u standard normal: a Pareto
    tail with k = 1 - s in every direction. s = 0.15 (k 0.85) fails, s = 0.8 (k 0.2) passes;
    with the ratio's sign flipped both would read near k = 0."""
    import pymc as pm

    from models.evaluation.psis import mean_field_check

    rng = np.random.default_rng(5)
    X, _ = np.linalg.qr(rng.normal(size=(60, 2)))
    X *= np.sqrt(60)  # orthogonal columns: X'X = 60 I
    y = X @ np.array([1.0, -0.5]) + 0.5 * rng.normal(size=60)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 2.0, shape=2)
        pm.Normal("y", X @ beta, 0.5, observed=y)
    L = X.T @ X / 0.25 + np.eye(2) / 4.0
    assert abs(L[0, 1]) < 1e-9 * L[0, 0]
    m = np.linalg.solve(L, X.T @ y / 0.25)
    # k-hat's sd at heavy tails is about 0.15 over 2000 draws (30 seeds of these ratios drawn
    # directly: mean 0.80, sd 0.16 at k = 0.85), so the closed form is checked on 16,000
    check = mean_field_check(model, m, np.sqrt(s / np.diag(L)),
                             {"beta": ("beta", slice(0, 2), (2,), np.float64)}, draws=16_000)
    assert abs(check.pareto_k - (1 - s)) < 0.15, (check.pareto_k, 1 - s)
    assert check.passed == (s > 0.5) and check.draws == 16_000


def test_mean_field_check_weights_the_unconstrained_density_with_its_jacobian():
    """x ~ LogNormal(0, 1): log x is exactly N(0, 1) once the log transform's Jacobian is in
    the density. A mean-field N(0, 1.2^2) on PyMC's ``x_log__`` then has importance ESS
    S sqrt(2 s^2 - 1) / s^2 = 0.952 S (s = 1.2) and bounded weights (k < 0); without the
    Jacobian the target would be N(-1, 1) and the ESS far lower."""
    import pymc as pm

    from models.evaluation.psis import mean_field_check

    with pm.Model() as model:
        pm.LogNormal("x", 0.0, 1.0)
    check = mean_field_check(model, np.zeros(1), np.full(1, 1.2),
                             {"x_log__": ("x_log__", slice(0, 1), (), np.float64)})
    assert check.ess / 2000 == pytest.approx(np.sqrt(2 * 1.44 - 1) / 1.44, abs=0.02)
    assert check.passed and check.pareto_k < 0


def test_the_mle_nets_check_is_its_optimiser_status_in_words():
    from types import SimpleNamespace

    from workflows import bnn as bnn_wf

    ok = SimpleNamespace(status="ok", message="converged from 3 start(s); max |gradient| 2e-05")
    assert bnn_wf._mle_check_words(ok) == (
        True, "optimiser status ok: converged from 3 start(s); max |gradient| 2e-05")
    singular = SimpleNamespace(status="singular", message="the observed information matrix is "
                               "singular (smallest eigenvalue 1e-12 after scaling it to unit "
                               "diagonal)")
    passed, words = bnn_wf._mle_check_words(singular)
    assert passed is False and words.startswith("optimiser status singular: the observed")
    assert words.endswith("whether the optimiser reached a maximum is not established")


def test_uci_summary_counts_the_posterior_check_on_the_splits_that_have_it():
    """A store written before the PSIS check existed has splits without it: the GGN rows count
    only the splits that carry one ('k/n', n those splits), and say 'no checks' when none
    does; the ensemble's split passes only when every member's Gaussian does."""
    import pandas as pd

    from workflows import uci_benchmark

    def fs(*passed):
        checks = [{"pareto_k": 0.3 if p else 2.0, "good_k": 0.697, "importance_ess": 900.0,
                   "psis_draws": 2000, "passed": p} for p in passed]
        return {"ggn_laplace": {"posterior_check": checks[0]},
                "ggn_ensemble_posterior_check": checks}

    from types import SimpleNamespace

    splits = [fs(True, True), fs(True, False), {"ggn_laplace": {}}]  # the last: an old split
    scores = {"rmse": 1.0, "test_ll_nats": -1.0, "test_ll_bits": -1.0 / np.log(2)}
    results = [SimpleNamespace(data="yacht", split=k, data_hash=[], seconds=1.0, diagnostics=None,
                               function_space=f, metrics={m: dict(scores) for m in (
                                   bnn.MAP_NET, bnn.GGN_LAPLACE, bnn.GGN_ENSEMBLE)})
               for k, f in enumerate(splits)]
    rows = uci_benchmark._collect(results)[0]
    summary = uci_benchmark._summary(pd.DataFrame(rows))
    assert summary.loc[("yacht", bnn.GGN_LAPLACE), "checks passed"] == "2/2"
    assert summary.loc[("yacht", bnn.GGN_ENSEMBLE), "checks passed"] == "1/2"
    assert summary.loc[("yacht", bnn.MAP_NET), "checks passed"] == "no checks"
    table = uci_benchmark._laplace_check_table(pd.DataFrame(rows))
    assert table.loc["yacht", "splits"] == 2 and table.loc["yacht", "GGN Laplace: passed"] == 2
    assert table.loc["yacht", "GGN Laplace ensemble: largest member k̂, median"] == \
        pytest.approx(np.median([0.3, 2.0]))


def test_psis_verdict_on_degenerate_ratios():
    """Equal ratios (the approximation is the posterior): no tail, passed, ESS every draw;
    one ratio thousands of nats above the rest: no tail left to fit, k-hat infinite, failed,
    ESS 1; a ratio that is not a number is refused in words."""
    from models.evaluation.psis import PosteriorCheck

    equal = PosteriorCheck.from_log_ratios(np.zeros(2000))
    assert equal.passed and equal.pareto_k == -np.inf and equal.ess == pytest.approx(2000)
    spike = np.random.default_rng(0).normal(size=2000)
    spike[7] = 9000.0
    one = PosteriorCheck.from_log_ratios(spike)
    assert not one.passed and one.pareto_k == np.inf and one.ess == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not finite at a draw"):
        PosteriorCheck.from_log_ratios(np.r_[spike, np.nan])
