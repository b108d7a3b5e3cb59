"""models.inference.mclmc and the "MCLMC from the members" row: the chains sample a conjugate
posterior and a transformed prior that are known in closed form; the per-chain check fails a
drifting chain; the row's test LL is the chains' mixture recomputed with scipy; the protocol
refuses bad settings and keeps its fingerprint when MCLMC is off."""

import numpy as np
import pymc as pm
import pytest
from scipy import special, stats

pytest.importorskip("jax")
pytest.importorskip("blackjax")

from models.evaluation import bnn  # noqa: E402
from models.inference import mclmc  # noqa: E402

Y = np.array([1.0, 2.0, 3.0, 2.5])


def test_chains_sample_a_conjugate_posterior_and_a_log_transformed_prior():
    """mu ~ N(0, 10^2), y_i ~ N(mu, 1): the posterior of mu is normal in closed form; s ~
    HalfNormal(1) has no data, so its draws must follow the prior on s's own scale (mean
    sqrt(2/pi)), which they do only if the chain's log-scale values are mapped back."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.HalfNormal("s", 1.0)
        pm.Normal("y", mu, 1.0, observed=Y)
    chains = mclmc.sample_from_members(model, [{"mu": 0.0, "s": 1.0}, {"mu": 3.0, "s": 0.3}],
                                       steps=20000, keep=2000, seed=1)
    assert chains.draws["mu"].shape == (2, 2000) and chains.draws["s"].shape == (2, 2000)
    precision = 1 / 100 + len(Y)
    mean, sd = Y.sum() / precision, precision ** -0.5
    mu_draws = chains.draws["mu"].ravel()
    # Monte Carlo error of the mean at a few thousand effective draws: about 0.01 sd
    assert mu_draws.mean() == pytest.approx(mean, abs=0.05 * sd)
    assert mu_draws.std() == pytest.approx(sd, rel=0.05)
    s = chains.draws["s"].ravel()
    assert (s > 0).all()
    assert s.mean() == pytest.approx(np.sqrt(2 / np.pi), rel=0.05)
    assert np.quantile(s, 0.9) == pytest.approx(stats.halfnorm.ppf(0.9), rel=0.05)
    assert len(chains.L) == 2 and all(e > 0 for e in chains.energy_var_per_dim)


def test_adjusted_chains_sample_the_same_posteriors_and_report_their_accept_step():
    """adjusted=True: Metropolis-adjusted chains on the model of the test above recover the
    same closed forms, and carry their acceptance rate (near the 0.9 they were tuned to) and
    divergences (none) per chain instead of an energy error, in the saved DataTree too."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.HalfNormal("s", 1.0)
        pm.Normal("y", mu, 1.0, observed=Y)
    chains = mclmc.sample_from_members(model, [{"mu": 0.0, "s": 1.0}, {"mu": 3.0, "s": 0.3}],
                                       steps=4000, keep=2000, seed=1, adjusted=True)
    precision = 1 / 100 + len(Y)
    mean, sd = Y.sum() / precision, precision ** -0.5
    mu_draws = chains.draws["mu"].ravel()
    assert mu_draws.mean() == pytest.approx(mean, abs=0.05 * sd)
    assert mu_draws.std() == pytest.approx(sd, rel=0.05)
    assert chains.draws["s"].ravel().mean() == pytest.approx(np.sqrt(2 / np.pi), rel=0.05)
    assert chains.adjusted and all(0.7 < a <= 1 for a in chains.stats["accept"])
    assert chains.stats["divergences"] == [0.0, 0.0]
    assert all(np.isnan(e) for e in chains.energy_var_per_dim)
    tree = chains.to_datatree()
    assert "adjusted" in tree.attrs["sampler"] and tree.attrs["divergences"] == [0.0, 0.0]
    assert "energy_var_per_dim" not in tree.attrs
    with pytest.raises(ValueError, match="1 for adjusted chains"):
        mclmc.sample_from_members(model, [{"mu": 0.0, "s": 1.0}], steps=200, keep=100, seed=0,
                                  step_scale=0.5, adjusted=True)


def test_chains_with_a_fixed_variable_sample_each_chains_conditional_posterior():
    """fixed={"s": [0.5, 2.0]}: two groups y_gi ~ N(mu_g, s) with s held at a different value
    in each chain; chain k's mu_g follows the conjugate posterior at s_k (closed form), the
    chains share one compiled function, and the draws carry each chain's s. Starts need no
    value for s. (Two means: blackjax's MCLMC needs at least two moving coordinates.)"""
    groups = np.stack([Y, Y + 1])
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10, shape=2)
        s = pm.HalfNormal("s", 1.0)
        pm.Normal("y", mu[:, None], s, observed=groups)
    held, starts = [0.5, 2.0], [{"mu": [0.0, 0.0]}, {"mu": [3.0, 3.0]}]
    chains = mclmc.sample_from_members(model, starts, steps=20000, keep=2000, seed=1,
                                       fixed={"s": held})
    for k, s_k in enumerate(held):
        precision = 1 / 100 + len(Y) / s_k ** 2
        mean, sd = groups.sum(axis=1) / s_k ** 2 / precision, precision ** -0.5
        draws = chains.draws["mu"][k]
        np.testing.assert_allclose(draws.mean(axis=0), mean, atol=0.1 * sd)
        np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.08)
        np.testing.assert_allclose(chains.draws["s"][k], s_k)
    assert chains.draws["s"].shape == (2, 2000)
    one = mclmc.sample_from_members(model, starts[:1], steps=200, keep=100, seed=1,
                                    fixed={"s": 0.5})  # one value for every chain
    np.testing.assert_allclose(one.draws["s"], 0.5)
    for bad, words in [({"t": 1.0}, "'t' is not a free variable"),
                       ({"s": [1.0, 2.0, 3.0]}, "'s' has 3 values; give one, or one per start"),
                       ({"s": np.array([1.0, 2.0])}, "'s' has shape \\(2,\\), the variable \\(\\)"),
                       ({"s": -1.0}, "'s' = -1.0 \\(chain 0\\) is outside"),
                       ({"s": 1.0, "mu": [0.0, 0.0]}, "every free variable is fixed")]:
        with pytest.raises(ValueError, match=words):
            mclmc.sample_from_members(model, starts, steps=200, keep=100, seed=0, fixed=bad)


def test_bad_starts_settings_and_models_are_refused_in_words(monkeypatch):
    with pm.Model() as model:
        pm.Normal("mu", 0, 10)
        pm.HalfNormal("s", 1.0)
    with pytest.raises(ValueError, match="start 0: no value for 's'"):
        mclmc.sample_from_members(model, [{"mu": 0.0}], steps=200, keep=100, seed=0)
    with monkeypatch.context() as m:  # every start is checked before the first chain runs
        m.setattr(mclmc, "run_chain", lambda *a, **k: pytest.fail("a chain ran"))
        with pytest.raises(ValueError, match="start 1: no value for 's'"):
            mclmc.sample_from_members(model, [{"mu": 0.0, "s": 1.0}, {"mu": 0.0}], steps=200,
                                      keep=100, seed=0)
    with pytest.raises(ValueError, match="keep must be between 1 and steps"):
        mclmc.sample_from_members(model, [{"mu": 0.0, "s": 1.0}], steps=100, keep=200, seed=0)
    # a bound that is itself a parameter: its transform would be evaluated at a random draw
    # of that parameter, not at the chain's value, so the model is refused
    with pm.Model() as bounded:
        a = pm.HalfNormal("a", 1.0)
        pm.Uniform("u", 0.0, a)
    with pytest.raises(ValueError, match="u: its transform depends on a"):
        mclmc.sample_from_members(bounded, [{"a": 1.0, "u": 0.5}], steps=200, keep=100, seed=0)


def test_check_chains_passes_a_stationary_chain_and_fails_a_drifting_or_sticky_one():
    """Three chains of 2000 draws of 3 quantities: white noise passes (R-hat of its halves
    near 1, ESS near 2000); the same noise plus a trend of 0.3 sd over the chain keeps over
    1000 effective draws and fails on R-hat alone, which the halves of a drifting chain
    expose; a chain that cycles slowly through the same values (four periods of a sine, so
    each half sees the same values: R-hat near 1) has about 14 effective draws and fails on
    ESS alone."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 2000, 3))
    values[1] += np.linspace(0, 0.3, 2000)[:, None]
    values[2] = np.sin(2 * np.pi * 4 * np.arange(2000) / 2000)[:, None] + 0.1 * values[2]
    chains = mclmc.MCLMCChains({}, [1.0] * 3, [0.1] * 3, [1e-4] * 3, 2000, 2000, 1.0, 0.0)
    frame = mclmc.check_chains(values, chains)
    assert list(frame["passed"]) == [True, False, False]
    assert frame.loc[0, "split_rhat_max"] < 1.01 and frame.loc[0, "ess_bulk_min"] > 1000
    assert frame.loc[1, "split_rhat_max"] > 1.01 and frame.loc[1, "ess_bulk_min"] > 1000
    assert frame.loc[2, "split_rhat_max"] < 1.01 and frame.loc[2, "ess_bulk_min"] < 100


def test_check_chains_fails_an_adjusted_chain_that_diverged():
    """Adjusted chains are judged as NUTS chains are: the same white noise passes, and fails
    once its chain had one divergence; their acceptance rate is shown beside it."""
    values = np.random.default_rng(0).normal(size=(2, 2000, 3))
    chains = mclmc.MCLMCChains({}, [1.0] * 2, [0.1] * 2, [np.nan] * 2, 2000, 2000, 1.0, 0.0,
                               adjusted=True, stats={"accept": [0.9, 0.91],
                                                     "divergences": [0.0, 1.0],
                                                     "steps_per_draw": [10.0, 12.0]})
    frame = mclmc.check_chains(values, chains)
    assert list(frame["passed"]) == [True, False]
    assert list(frame["accept"]) == [0.9, 0.91] and "energy_var_per_dim" not in frame


SD = np.array([0.1, 1.0, 3.0, 0.5, 2.0])  # a diagonal Gaussian, scales 30x apart


@pytest.mark.parametrize("runner", ["run_chain", "run_adjusted_chain"])
def test_chains_recover_a_gaussian(runner):
    """Both runners (unadjusted, and Metropolis-adjusted at acceptance 0.9) take a list of
    arrays as the position, as the PyMC model's jaxified log density does; the draws' sds
    match N(0, diag(SD^2)) and an independent N(0, I) block to 10%."""
    import jax
    import jax.numpy as jnp

    sd = jnp.asarray(SD)

    def logp(pos):
        return -0.5 * jnp.sum((pos[0] / sd) ** 2) - 0.5 * jnp.sum(pos[1] ** 2)

    run = getattr(mclmc, runner)
    draws, params, stats = jax.jit(lambda p, k: run(logp, p, 8000, 4000, k))(
        [jnp.ones(5), jnp.zeros(3)], jax.random.key(3))
    assert np.asarray(draws[0]).shape == (4000, 5)
    np.testing.assert_allclose(np.asarray(draws[0]).std(axis=0), SD, rtol=0.1)
    np.testing.assert_allclose(np.asarray(draws[1]).std(axis=0), np.ones(3), rtol=0.1)
    if runner == "run_adjusted_chain":
        assert 0.7 < float(stats["accept"]) <= 1.0 and int(stats["divergences"]) == 0
    else:  # the tuner aims at 5e-4 per step and coordinate (8 here): per coordinate, near it
        assert 2e-4 < float(stats["energy_var_per_dim"]) < 1.5e-3


def test_step_scale_shrinks_the_energy_error():
    """--step-scale 0.5 runs the unadjusted chain at half its tuned step size: the energy
    error per step, of order step^3 for this second-order integrator, falls by far more than
    the factor 2 a step size left unscaled would allow, and the draws stay right."""
    import jax
    import jax.numpy as jnp

    sd = jnp.asarray(SD)

    def logp(pos):
        return -0.5 * jnp.sum((pos[0] / sd) ** 2)

    energy, half_draws = [], None
    for scale in (1.0, 0.5):
        draws, params, stats = jax.jit(
            lambda p, k, s=scale: mclmc.run_chain(logp, p, 8000, 4000, k, s))(
            [jnp.ones(5)], jax.random.key(3))
        energy.append(float(stats["energy_var_per_dim"]))
        half_draws = np.asarray(draws[0])
    assert energy[1] < energy[0] / 8
    np.testing.assert_allclose(half_draws.std(axis=0), SD, rtol=0.1)


def test_protocol_refuses_bad_mclmc_settings_and_keeps_its_fingerprint_when_off():
    base = bnn.BNNProtocol()
    assert "mclmc" not in repr(base)  # saved splits of runs without MCLMC keep their hash
    assert "mclmc_steps=4000" in repr(base.replace(mclmc_steps=4000))
    for bad in ({"mclmc_steps": -1}, {"mclmc_steps": 100, "mclmc_keep": 200},
                {"mclmc_steps": 1000, "mclmc_keep": 0}, {"mclmc_steps": 1.5}):
        with pytest.raises(ValueError, match="mclmc_steps must be"):
            base.replace(**bad)


def test_evaluate_scores_the_mclmc_row_as_the_chains_mixture():
    """A tiny tanh net on yacht split 0 without NUTS: the MCLMC row is the equal-weight
    mixture of every kept draw's Gaussian, recomputed here with scipy from the returned draws;
    its per-chain rows are the chains'; its seconds include training the members."""
    from models.base import datasets
    from models.families.bnn import NetworkSpec
    from models.inference.config import SamplerConfig

    proto = bnn.BNNProtocol(NetworkSpec((3,), "tanh", "xavier_normal"),
                            SamplerConfig(chains=2, seed=3, init="prior"), nuts=False,
                            mle_maxiter=300, mclmc_steps=3000, mclmc_keep=300)
    d = datasets.uci("yacht", 0)
    r = bnn.evaluate(d, proto, cores=1)
    chains = r.extra["mclmc"]
    assert chains.draws["w1"].shape[:2] == (2, 300)
    y, m, sd = d["y_test_original"], d["y_mean"], d["y_sd"]
    logpdf = []
    for c in range(2):
        for k in range(300):
            p = {n: v[c, k] for n, v in chains.draws.items()}
            f = bnn.forward(p, d["X_test"], "tanh", 1)[:, 0]
            logpdf.append(stats.norm.logpdf(y, m + sd * f, sd * p["sigma"]))
    ll = (special.logsumexp(np.stack(logpdf), axis=0) - np.log(600)).mean()
    assert r.metrics[bnn.MCLMC]["test_ll_nats"] == pytest.approx(ll, rel=1e-9)
    fs = r.function_space["mclmc"]
    assert len(fs["within_chain"]["passed"]) == 2
    assert fs["passed"] == all(fs["within_chain"]["passed"])
    seconds = r.function_space["phase_seconds"]
    assert r.function_space["method_seconds"][bnn.MCLMC] == pytest.approx(
        seconds["members"] + seconds["mclmc"])


@pytest.mark.parametrize("args, words", [
    (["--mclmc", "300"], "--mclmc at least --mclmc-keep"),
    (["--mclmc", "4000", "--mclmc-keep", "50"], "--mclmc-keep must be at least 100"),
    (["--mclmc", "-5"], "--mclmc must be 0 (off) or a positive number"),
])
def test_uci_benchmark_refuses_bad_mclmc_options_in_one_line(tmp_path, args, words):
    from workflows import uci_benchmark

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        uci_benchmark.main(["--quick", "--no-nuts", "--out", str(out), *args])
    msg = str(exc.value)
    assert msg.startswith("error: ") and words in msg and "\n" not in msg
    assert not out.exists()  # refused before anything was written


def test_uci_benchmark_mclmc_row_and_its_checks_e2e(tmp_path):
    """--no-nuts --mclmc: the MCLMC row sits beside the fitted rows, its 'checks passed'
    counts the splits whose every chain passed, its per-data-set table agrees with the
    per-split rows, its verdict is on the page, and a failing chain makes the run WARN
    (a failed check in metrics.json), never a silent PASS."""
    import json

    from workflows import uci_benchmark

    out = tmp_path / "uci"
    assert uci_benchmark.main(["--quick", "--out", str(out), "--datasets", "yacht",
                               "--splits", "1", "--no-nuts", "--mclmc", "3000",
                               "--mclmc-keep", "300"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    rows = {r["method"]: r for r in m["per_split"]}
    row = rows[bnn.MCLMC]
    summary = {r["method"]: r for r in m["summary"]}
    assert summary[bnn.MCLMC]["checks passed"] == f"{int(row['checks_passed'])}/1"
    assert summary[bnn.MCLMC]["test LL"] == pytest.approx(row["test_ll_nats"])
    (table,) = m["mclmc"]
    assert table["splits with every chain passing"] == int(row["checks_passed"])
    # metrics.json keeps the per-split table's column types: counts as floats
    assert table["chains passing"] == f"{int(row['mclmc_chains_passed'])}/{int(row['mclmc_chains'])}"
    assert row["mclmc_chains"] == 2  # --quick: 2 chains, one per member
    assert m["checks"] == {"yacht split 0 MCLMC": bool(row["checks_passed"])}
    assert bool(m["failed_checks"]) == (not row["checks_passed"])
    page = (out / "index.html").read_text()
    assert "MCLMC from the members, yacht" in page and "--mclmc 3000" in page
    # the alert counts runs (a split and a sampler each), not splits
    assert ("Function-space diagnostics failed on 1 of 1 runs (a split and a sampler each)"
            in page) == (not row["checks_passed"])


def test_bnn_mclmc_row_is_saved_scored_and_judged_e2e(tmp_path):
    """bnn --mclmc: the MCLMC draws are saved (mclmc.nc) and the row's test LL is their
    mixture recomputed with scipy from that file and the split alone; the row has its own
    verdict on the first screen, and its checks enter the run's status."""
    import json

    import arviz as az

    from models.base import datasets
    from workflows import bnn as bnn_workflow

    out = tmp_path / "bnn"
    assert bnn_workflow.main(["--quick", "--out", str(out), "--mclmc", "4000"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    post = az.from_netcdf(out / "mclmc.nc")["posterior"]
    assert dict(post["w1"].sizes) == {"chain": 2, "draw": 2000, "feature": 6, "hidden_1": 3}
    d = datasets.uci("yacht", 0)
    y, mean, sd = d["y_test_original"], d["y_mean"], d["y_sd"]
    flat = {n: post[n].values.reshape(4000, *post[n].shape[2:]) for n in post.data_vars}
    h = np.tanh(np.einsum("ni,sih->snh", d["X_test"], flat["w1"]) + flat["b1"][:, None, :])
    f = np.einsum("snh,sho->sno", h, flat["w_out"])[..., 0] + flat["b_out"]
    logpdf = stats.norm.logpdf(y, mean + sd * f, sd * flat["sigma"][:, None])
    ll = (special.logsumexp(logpdf, axis=0) - np.log(4000)).mean()
    assert m["metrics"][bnn.MCLMC]["test_ll_nats"] == pytest.approx(ll, rel=1e-9)
    passed = all(m["function_space"]["mclmc"]["within_chain"]["passed"])
    assert m["verdicts"]["MCLMC from the members"]["convergence"]["passed"] == passed
    assert m["checks"]["MCLMC chains"] == passed
    assert (not passed) == any(r.startswith("MCLMC chains") for r in m["failed_checks"])


@pytest.mark.parametrize("args, words", [
    (["--mclmc", "500"], "--mclmc at least --mclmc-keep"),
    (["--task", "classification", "--mclmc", "4000"], "only for --task regression"),
])
def test_bnn_refuses_bad_mclmc_options_in_one_line(tmp_path, args, words):
    from workflows import bnn as bnn_workflow

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        bnn_workflow.main(["--quick", "--out", str(out), *args])
    msg = str(exc.value)
    assert msg.startswith("error: ") and words in msg and "\n" not in msg
    assert not out.exists()


def test_classifiers_refuse_an_mclmc_protocol_instead_of_ignoring_it():
    proto = bnn.BNNProtocol(mclmc_steps=4000)
    X, y = np.zeros((10, 2)), np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match="regression \\(evaluate\\) only"):
        bnn.evaluate_classification(X, y, X, y, proto)
    with pytest.raises(ValueError, match="regression \\(evaluate\\) only"):
        bnn.evaluate_held_out_class(X, y, 1, proto)
