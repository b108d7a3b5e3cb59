"""A member pool (``BNNProtocol(member_pool=P)``, ``--member-pool``): P MAP nets per split, the
chains-many with the highest training log posterior kept, best first. The log posterior is
recomputed here with scipy from the network's documented priors and likelihood, not with the
model's own logp."""

import numpy as np
import pytest
from scipy import stats

from models.base import datasets
from models.evaluation import bnn
from models.inference import SamplerConfig
from workflows.uci_benchmark import SplitStore

NET = bnn.NetworkSpec((2,), "tanh", "xavier_normal")
TINY = bnn.BNNProtocol(NET, SamplerConfig(draws=20, tune=20, chains=2, seed=3, init="prior"),
                       mle_maxiter=40, nuts=False)


def scipy_log_posterior(p, X, y):
    """The MAP objective (no Jacobian for log sigma) of a one-hidden-layer tanh net with
    Xavier-normal weights (variance 2 / (fan-in + fan-out)), N(0, 0.1²) biases, sigma ~
    HalfNormal(1) and y ~ N(net(X), sigma²)."""
    n_in, h = p["w1"].shape
    lp = stats.norm.logpdf(p["w1"], 0, np.sqrt(2 / (n_in + h))).sum()
    lp += stats.norm.logpdf(p["w_out"], 0, np.sqrt(2 / (h + 1))).sum()
    lp += stats.norm.logpdf(p["b1"], 0, 0.1).sum() + stats.norm.logpdf(p["b_out"], 0, 0.1).sum()
    lp += stats.halfnorm.logpdf(p["sigma"], scale=1.0)
    f = np.tanh(X @ p["w1"] + p["b1"]) @ p["w_out"] + p["b_out"]
    return lp + stats.norm.logpdf(y, f[:, 0], p["sigma"]).sum()


def test_best_members_ranks_by_the_scipy_log_posterior():
    d = datasets.uci("yacht", 0)
    model = NET.build_model(d["X_train"], d["y_train"])
    starts = bnn.prior_starts(model, 5, seed=1)
    kept, logp = bnn.best_members(model, starts, 3)  # prior draws: far apart in log posterior
    expected = [scipy_log_posterior(p, d["X_train"], d["y_train"]) for p in starts]
    np.testing.assert_allclose(logp, expected, rtol=1e-9)
    best = np.argsort(expected)[::-1][:3]
    assert [id(p) for p in kept] == [id(starts[i]) for i in best]


def test_a_pool_keeps_the_best_members_and_starts_with_the_protocols_own():
    d = datasets.uci("yacht", 0)
    plain = bnn.evaluate(d, TINY)
    pooled = bnn.evaluate(d, TINY.replace(member_pool=5))
    pool_logp = pooled.function_space["member_pool_log_posterior"]
    assert len(pool_logp) == 5
    # the pool's first members are the plain protocol's own (same seeds, same fits)
    own = [scipy_log_posterior(p, d["X_train"], d["y_train"]) for p in plain.extra["members"]]
    np.testing.assert_allclose(pool_logp[:2], own, rtol=1e-7)
    kept = [scipy_log_posterior(p, d["X_train"], d["y_train"]) for p in pooled.extra["members"]]
    np.testing.assert_allclose(kept, sorted(pool_logp, reverse=True)[:2], rtol=1e-7)
    assert kept[0] >= kept[1]
    # the MAP net is the best member of the pool
    assert pooled.map is pooled.extra["members"][0]


def test_a_pool_is_its_own_protocol_and_no_pool_keeps_the_old_fingerprint(tmp_path):
    assert "member_pool" not in repr(TINY)
    assert repr(TINY).startswith("BNNProtocol(net=NetworkSpec(") and repr(TINY).endswith("nuts=False)")
    assert repr(TINY.replace(member_pool=4)).endswith("nuts=False, member_pool=4)")
    store = SplitStore.open(tmp_path / "s", TINY)
    assert SplitStore.open(tmp_path / "s2", TINY.replace(member_pool=4)).fingerprint != store.fingerprint
    for bad in (1, -1, 2.5, True):
        with pytest.raises(ValueError, match="member_pool must be 0"):
            TINY.replace(member_pool=bad)


@pytest.mark.parametrize("pool", ["2", "-1", "1001"])
def test_a_bad_member_pool_is_refused_in_one_line_before_any_work(tmp_path, pool):
    from workflows import uci_benchmark

    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exc:
        uci_benchmark.main(["--member-pool", pool, "--chains", "4", "--out", str(out)])
    msg = str(exc.value)
    assert "--member-pool" in msg and "\n" not in msg and pool in msg
    assert not out.exists() and not (tmp_path / "o.splits").exists()


def test_with_a_pool_the_map_net_pays_for_every_fit_of_the_pool():
    phase = {"mle": 1.0, "members": 8.0, "last_layer": 0.5, "ggn": 2.0, "ggn_ensemble": 3.0,
             "nuts": 10.0}
    plain = bnn.method_seconds(phase, 4)
    pooled = bnn.method_seconds(phase, 4, pooled=True)
    assert plain[bnn.MAP_NET] == 2.0 and pooled[bnn.MAP_NET] == 8.0  # best of the pool: all 8 fits
    assert pooled[bnn.LAPLACE] == 8.5 and pooled[bnn.GGN_LAPLACE] == 10.0
    assert pooled[bnn.DEEP_ENSEMBLE] == plain[bnn.DEEP_ENSEMBLE] == 8.0
    assert pooled[bnn.NUTS] == plain[bnn.NUTS] == 18.0


def test_the_bnn_workflow_passes_its_member_pool_to_the_regression_protocol(tmp_path):
    from workflows import bnn as bnn_wf
    from workflows.options import parser

    def proto(*argv):
        args = bnn_wf.add_arguments(parser("bnn", "")).parse_args([*argv, "--out", str(tmp_path / "o")])
        s = bnn_wf.bnn_settings(args)
        widths, prior = bnn_wf.network_options(args, s.quick)
        return bnn_wf.protocol(args, s, widths, prior)

    assert proto().member_pool == 0 and proto("--member-pool", "8").member_pool == 8
    assert proto("--task", "classification", "--member-pool", "8").member_pool == 0
    with pytest.raises(SystemExit, match="--member-pool must be 0 .* got 3$"):
        proto("--member-pool", "3")


def test_best_members_compiles_once_per_model_and_reads_each_splits_data(monkeypatch):
    """A 20-split protocol swaps each split into one compiled model; the MAP objective must be
    compiled once and still score every split on that split's training data."""
    from models.inference.sampling import set_data

    d0, d1 = datasets.uci("yacht", 0), datasets.uci("yacht", 1)
    model = NET.build_model(d0["X_train"], d0["y_train"])
    compiles = []
    original = model.compile_logp
    monkeypatch.setattr(model, "compile_logp", lambda **kw: compiles.append(kw) or original(**kw))
    starts = bnn.prior_starts(model, 3, seed=2)
    for d in (d0, d1):
        set_data(model, X=d["X_train"], y=d["y_train"])
        _, logp = bnn.best_members(model, starts, 2)
        expected = [scipy_log_posterior(p, d["X_train"], d["y_train"]) for p in starts]
        np.testing.assert_allclose(logp, expected, rtol=1e-9)
    assert len(compiles) == 1
