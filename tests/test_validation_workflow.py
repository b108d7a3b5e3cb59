"""`make validate` (the validation workflow) must be able to fail: a deliberately wrong
likelihood makes it print FAIL and exit 1; the same run with the right one exits 0."""

from functools import partial

import numpy as np
import pymc as pm

from models.families import gaussian
from workflows import validation

Y0 = np.random.default_rng(0).normal(size=12)
PRIORS = {"mu": partial(pm.Normal, mu=0, sigma=1), "sigma": partial(pm.HalfNormal, sigma=1)}


def _wrong_model():
    simulator = gaussian.build(Y0, priors=PRIORS)
    with pm.Model(coords=simulator.coords) as wrong:  # sigma mis-scaled by 2 in the likelihood
        y = pm.Data("y", Y0, dims="obs_id")
        mu, sigma = pm.Normal("mu", 0, 1), pm.HalfNormal("sigma", 1)
        pm.Normal("y_obs", mu, 2 * sigma, observed=y, dims="obs_id")
    return wrong, simulator


def _validate(tmp_path, monkeypatch, families):
    monkeypatch.setattr(validation, "families", lambda seed: families)
    monkeypatch.setattr(validation.reference, "cases", lambda: {})
    return validation.main(["--quick", "--sims", "80", "--workers", "0",
                            "--out", str(tmp_path / "validation")])


def test_validate_exits_nonzero_and_prints_fail_on_a_wrong_likelihood(tmp_path, monkeypatch, capsys):
    wrong, simulator = _wrong_model()
    rc = _validate(tmp_path, monkeypatch, {"gaussian, wrong likelihood": (wrong, None, {"simulator": simulator})})
    out = capsys.readouterr().out
    assert rc == 1
    assert "validation: FAIL" in out and "sigma" in out


def test_validate_exits_zero_on_the_right_likelihood(tmp_path, monkeypatch, capsys):
    rc = _validate(tmp_path, monkeypatch, {"gaussian": (gaussian.build(Y0, priors=PRIORS), None)})
    assert rc == 0
    assert "validation: PASS" in capsys.readouterr().out
