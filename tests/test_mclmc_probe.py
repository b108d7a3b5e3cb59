"""benchmarks/mclmc_probe.py: its two MCLMC chain runners sample a Gaussian whose sds are known
in closed form, and its per-split store resumes a run and refuses one run with other settings."""

import json

import numpy as np
import pytest

import benchmark_scripts

mclmc_probe = benchmark_scripts.load("mclmc_probe")

SD = np.array([0.1, 1.0, 3.0, 0.5, 2.0])  # a diagonal Gaussian, scales 30x apart


@pytest.mark.parametrize("runner", ["run_chain", "run_adjusted_chain"])
def test_chains_recover_a_gaussian(runner):
    """Both runners (unadjusted, and Metropolis-adjusted at acceptance 0.9) take a list of
    arrays as the position, as the PyMC model's jaxified log density does; the draws' sds
    match N(0, diag(SD^2)) and an independent N(0, I) block to 10%."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("blackjax")
    import jax.numpy as jnp

    sd = jnp.asarray(SD)

    def logp(pos):
        return -0.5 * jnp.sum((pos[0] / sd) ** 2) - 0.5 * jnp.sum(pos[1] ** 2)

    run = getattr(mclmc_probe, runner)
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
    jax = pytest.importorskip("jax")
    pytest.importorskip("blackjax")
    import jax.numpy as jnp

    sd = jnp.asarray(SD)

    def logp(pos):
        return -0.5 * jnp.sum((pos[0] / sd) ** 2)

    energy, half_draws = [], None
    for scale in (1.0, 0.5):
        draws, params, stats = jax.jit(
            lambda p, k, s=scale: mclmc_probe.run_chain(logp, p, 8000, 4000, k, s))(
            [jnp.ones(5)], jax.random.key(3))
        energy.append(float(stats["energy_var_per_dim"]))
        half_draws = np.asarray(draws[0])
    assert energy[1] < energy[0] / 8
    np.testing.assert_allclose(half_draws.std(axis=0), SD, rtol=0.1)


def test_store_resumes_and_refuses_other_settings(tmp_path):
    """A split's stored result is loaded when its steps, keep, seed and sampler match; a file
    run with other settings stops the run with one line naming it; none stored: None."""
    r = {"data": "yacht", "split": 3, "steps": 400, "keep": 100, "seed": mclmc_probe.SEED + 3,
         "mclmc_ll": -1.0}  # written before --adjusted and --step-scale existed
    (tmp_path / "yacht-3.json").write_text(json.dumps(r))
    same = {"steps": 400, "keep": 100, "adjusted": False, "step_scale": 1.0}
    assert mclmc_probe.stored(tmp_path, "yacht", 3, same)["mclmc_ll"] == -1.0
    assert mclmc_probe.stored(tmp_path, "yacht", 4, same) is None
    assert mclmc_probe.stored(None, "yacht", 3, same) is None
    for other in ({"steps": 800}, {"keep": 50}, {"adjusted": True}, {"step_scale": 0.5}):
        with pytest.raises(SystemExit, match="yacht-3.json was run with"):
            mclmc_probe.stored(tmp_path, "yacht", 3, {**same, **other})
    (tmp_path / "yacht-3.json").write_text(json.dumps({**r, "seed": mclmc_probe.SEED}))
    with pytest.raises(SystemExit, match="pass another --out"):
        mclmc_probe.stored(tmp_path, "yacht", 3, same)
