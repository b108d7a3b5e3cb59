"""Settings as values: SamplerConfig validated once; the old flat module paths still import;
splits and standardisation match an independent computation."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from models.inference import SamplerConfig


@pytest.mark.parametrize("changes, message", [
    ({"draws": 0}, "draws must be between 1 and 100,000"),
    ({"tune": -1}, "tune must be between 0 and 100,000"),
    ({"chains": 65}, "chains must be between 1 and 64"),
    ({"draws": 2.5}, "draws must be an integer"),
    ({"seed": -3}, "seed must be between 0 and 4,294,967,295"),
    ({"sampler": "stan"}, "sampler must be one of"),
    ({"adaptation": "full"}, "adaptation must be one of"),
    ({"adaptation": "low_rank", "sampler": "pymc"}, "adaptation='low_rank' needs sampler='nutpie'"),
    ({"target_accept": 1.0}, r"target_accept must be a number in \(0, 1\)"),
    ({"target_accept": True}, r"target_accept must be a number in \(0, 1\)"),
    ({"init": "zeros"}, "init must be one of"),
])
def test_sampler_config_refuses_each_bad_value_naming_it(changes, message):
    with pytest.raises(ValueError, match=message):
        SamplerConfig(**changes)
    with pytest.raises(ValueError, match=message):  # replace() validates too
        SamplerConfig().replace(**changes)


def test_sampler_config_is_frozen_and_normalises():
    c = SamplerConfig(draws=np.int64(300), target_accept=0.9, seed=np.int32(7))
    assert (c.draws, c.seed) == (300, 7) and type(c.draws) is int and type(c.seed) is int
    with pytest.raises(AttributeError):
        c.draws = 10  # type: ignore[misc]
    assert c.offset_seed(5).seed == 12 and c.offset_seed(0) is c
    assert SamplerConfig.from_options(c, random_seed=3, init_from_prior=True) == \
        c.replace(seed=3, init="prior")
    with pytest.raises(TypeError, match="unknown sampler option"):
        SamplerConfig.from_options(c, cores=2)


def test_every_sampler_entry_point_refuses_before_compiling():
    """sample_posterior and CompiledSampler go through SamplerConfig: the same words."""
    from models.families import gaussian
    from models.inference import CompiledSampler, sample_posterior

    model = gaussian.build(np.array([0.1, -0.3, 0.5]))
    with pytest.raises(ValueError, match="draws must be between"):
        sample_posterior(model, draws=0)
    with pytest.raises(ValueError, match="CompiledSampler runs nutpie"):
        CompiledSampler(model, SamplerConfig(sampler="pymc"))


def test_cli_says_the_flag_name():
    from workflows.options import cli_error

    try:
        SamplerConfig(target_accept=2.0)
    except ValueError as exc:
        assert str(cli_error(exc)).startswith("error: --target-accept must be a number")


@pytest.mark.parametrize("old, new", [
    ("models.bnn", "models.evaluation.bnn"), ("models.datasets", "models.base.datasets"),
    ("models.likelihood", "models.base.likelihood"), ("models.validation", "models.base.checks"),
    ("models.fitcheck", "models.inference.fitcheck"), ("models.sbc", "models.inference.sbc"),
    ("models.logistic", "models.families.logistic"), ("models.calibration", "models.evaluation.scores"),
])
def test_old_flat_paths_import_the_moved_module(old, new):
    module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new  # its own spec, not the alias's


def test_old_bnn_api_names_still_there():
    from models import bnn

    for name in ("build", "evaluate", "prior_starts", "fit_advi", "function_space_diagnostics",
                 "canonical_hidden_order", "uci_splits", "weight_variance", "auroc",
                 "predictive_entropy"):
        assert callable(getattr(bnn, name)), name


def test_random_split_and_standardiser_match_a_hand_computation():
    from models.base.splits import DataSplit, Standardizer, random_split

    train, test = random_split(10, seed=4, test_fraction=0.3)
    perm = np.random.default_rng(4).permutation(10)
    assert test.tolist() == sorted(perm[:3].tolist()) and train.tolist() == sorted(perm[3:].tolist())
    X = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    Z = Standardizer.fit(X)(X)
    np.testing.assert_allclose(Z[:, 0], (X[:, 0] - 3.0) / np.sqrt(8 / 3))
    np.testing.assert_array_equal(Z[:, 1], 0.0)  # constant column: sd 1, not a division by 0
    d = DataSplit.standardised(X, np.array([1.0, 2.0, 3.0]), X[:1], np.array([7.0]))
    assert d["y_mean"] == 2.0 and d.y_sd == pytest.approx(np.sqrt(2 / 3))
    np.testing.assert_allclose(d.y_train, [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    with pytest.raises(ValueError, match="test_fraction"):
        random_split(10, 0, 1.5)


def test_network_spec_is_read_back_from_the_model():
    from models.families import bnn

    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.zeros(20)
    spec = bnn.NetworkSpec((3, 2), "tanh", "xavier_normal")
    assert bnn.network_spec(spec.build_model(X, y)) == spec
    with pytest.raises(ValueError, match="activation must be one of"):
        bnn.NetworkSpec((3,), "gelu")
    with pytest.raises(ValueError, match="at least one positive layer width"):
        bnn.NetworkSpec((0,))
