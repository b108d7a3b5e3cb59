"""A resumable UCI protocol: each split is saved as it finishes, a rerun loads it instead of
fitting again, a missing split is the only one fitted, and a directory that is not ours (or
holds another protocol's splits) is refused before any work."""

import pandas as pd
import pytest

from models.evaluation import bnn
from models.inference import SamplerConfig
from workflows.report import OutputError
from workflows.uci_benchmark import SPLITS_MARKER, SplitStore

TINY = bnn.BNNProtocol(bnn.NetworkSpec((2,), "tanh", "xavier_normal"),
                       SamplerConfig(draws=20, tune=20, chains=1, seed=0, init="prior"),
                       mle_maxiter=50)


def test_a_rerun_loads_finished_splits_and_fits_only_the_missing_one(tmp_path, monkeypatch):
    store = SplitStore.open(tmp_path / "splits", TINY)
    first, failures = bnn.uci_splits(["yacht"], 2, TINY, store=store)
    assert failures == [] and store.saved() == ["yacht-00.pkl", "yacht-01.pkl"]

    fitted = []
    real = bnn.evaluate

    def counting(d, protocol, **kw):
        fitted.append(protocol.sampler.seed)
        return real(d, protocol, **kw)

    monkeypatch.setattr(bnn, "evaluate", counting)
    again, _ = bnn.uci_splits(["yacht"], 2, TINY, store=SplitStore.open(tmp_path / "splits", TINY))
    assert fitted == []  # nothing fitted: both splits loaded
    for a, b in zip(first, again):
        assert (a.data, a.split) == (b.data, b.split) and a.metrics == b.metrics

    (tmp_path / "splits" / "yacht-01.pkl").unlink()  # as if killed during split 1
    third, _ = bnn.uci_splits(["yacht"], 2, TINY, store=SplitStore.open(tmp_path / "splits", TINY))
    assert fitted == [TINY.sampler.seed + 1]  # only split 1, with its own seed
    assert third[0].metrics == first[0].metrics


def test_split_store_refuses_what_is_not_its_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="did not write"):
        SplitStore.open(foreign, TINY)
    assert (foreign / "notes.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        SplitStore.open(a_file, TINY)
    ours = SplitStore.open(tmp_path / "ours", TINY)
    assert (ours.directory / SPLITS_MARKER).is_file()
    (ours.directory / "yacht-00.pkl").write_bytes(b"")  # something saved under TINY
    other = TINY.replace(sampler=TINY.sampler.replace(seed=1))
    with pytest.raises(OutputError, match="other settings"):
        SplitStore.open(ours.directory, other)


def test_a_protocol_without_nuts_samples_nothing_and_keeps_its_own_splits(tmp_path, monkeypatch):
    """``nuts=False`` (``--no-nuts``): no draws, no NUTS rows and no checks, and the deep
    ensemble's test LL is the equal-weight mixture of its members' Gaussians (scipy, from
    the split's files as ``datasets.uci`` reads them); its splits are never mixed with a
    sampled protocol's."""
    import numpy as np
    from scipy import special, stats

    from models.base import datasets

    def refuse(*args, **kwargs):
        raise AssertionError("a protocol without NUTS sampled")

    monkeypatch.setattr(bnn, "_sample", refuse)
    proto = TINY.replace(nuts=False, sampler=TINY.sampler.replace(chains=3))
    d = datasets.uci("yacht", 0)
    r = bnn.evaluate(d, proto)
    assert r.idata is None and r.diagnostics is None and r.extra["f_post"] is None
    point_methods = {bnn.MLE_NET, bnn.MAP_NET, bnn.DEEP_ENSEMBLE, bnn.LAPLACE, bnn.GGN_LAPLACE,
                     bnn.GGN_ENSEMBLE}
    assert set(r.metrics) == point_methods | {bnn.CONSTANT}
    assert set(r.function_space["method_seconds"]) == point_methods
    members = r.extra["members"]
    assert len(members) == 3
    y, m, sd = d["y_test_original"], d["y_mean"], d["y_sd"]
    logpdf = np.stack([stats.norm.logpdf(y, m + sd * bnn.forward(p, d["X_test"], "tanh", 1)[:, 0],
                                         sd * float(p["sigma"])) for p in members])
    ll = (special.logsumexp(logpdf, axis=0) - np.log(3)).mean()
    assert r.metrics[bnn.DEEP_ENSEMBLE]["test_ll_nats"] == pytest.approx(ll, rel=1e-10)
    # the Laplace ensemble: a GGN Laplace around each member (tested on its own in
    # test_bnn_methods), their predictive normals mixed by hand with scipy
    from models.evaluation.ggn import fit_ggn_laplace

    dens = 0.0
    for p in members:
        g = fit_ggn_laplace(p, d["X_train"], d["y_train"], "tanh", 1)
        mu, var_f = g.predict(d["X_test"])
        dens = dens + stats.norm.pdf(y, m + sd * mu, sd * np.sqrt(var_f + g.sigma ** 2)) / 3
    assert r.metrics[bnn.GGN_ENSEMBLE]["test_ll_nats"] == pytest.approx(np.log(dens).mean(),
                                                                        rel=1e-9)
    # one PSIS posterior check per member's Gaussian, the first the MAP net's (member 0)
    checks = r.function_space["ggn_ensemble_posterior_check"]
    assert len(checks) == 3 and checks[0] == r.function_space["ggn_laplace"]["posterior_check"]
    assert len({c["pareto_k"] for c in checks}) == 3  # three Gaussians, three draws

    (SplitStore.open(tmp_path / "s", TINY).directory / "yacht-00.pkl").write_bytes(b"")
    with pytest.raises(OutputError, match="other settings"):
        SplitStore.open(tmp_path / "s", proto)


def test_the_readme_table_is_the_summary_of_metrics_json(tmp_path):
    """benchmarks/uci_table.py: one row per method, published rows left out, mean ± se as
    the summary holds them, NUTS counts in bold."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    summary = [{"data": "yacht", "method": "NUTS posterior", "checks passed": "2/20",
                "RMSE": 0.65, "RMSE se": 0.047, "test LL": -0.9971, "test LL se": 0.0581,
                "test LL bits": -1.4386, "test LL bits se": 0.0838, "fit s/split": 201.4},
               {"data": "yacht", "method": "published: PBP", "checks passed": "",
                "RMSE": 1.02, "RMSE se": None, "test LL": -1.63, "test LL se": None,
                "test LL bits": -2.35, "test LL bits se": None}]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"summary": summary}))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "uci_table.py"
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()
    assert out[2:] == ["| yacht | NUTS posterior | **2/20** | 0.650 ± 0.047 | -0.997 ± 0.058 "
                       "| -1.439 ± 0.084 | 201 |"]
    causes = [{"data": "yacht", "splits failing": 1, "stuck (bulk ESS < 10)": "1 (1)",
               "R-hat only: median bulk ESS": "–"}]
    path.write_text(json.dumps({"summary": summary, "failure_causes": causes}))
    out = subprocess.run([sys.executable, str(script), "--causes", str(path)], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()
    assert out == ["| data | splits failing | stuck (bulk ESS < 10) | R-hat only: median bulk ESS |",
                   "|---|---|---|---|", "| yacht | 1 | 1 (1) | – |"]


def test_the_psis_table_reads_the_k_hats_of_metrics_json(tmp_path):
    """benchmarks/uci_table.py --psis: per data set the GGN Laplace's passing splits, its
    median and range of k-hat over the per-split rows (null = infinite: "∞ on n" when every
    split's is), and ADVI's column only where ADVI ran."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    def run(ks, advi):
        row = {"data": "concrete", "splits": len(ks), "GGN Laplace: passed": 1,
               "GGN Laplace: k̂ median": 0.9, "GGN Laplace: importance ESS median": 13.8,
               "GGN Laplace ensemble: passed": 0}
        if advi:
            row.update({"ADVI: passed": 0, "ADVI: k̂ median": 6.5})
        return {"laplace_posterior_check": [row], "per_split": [
            {"data": "concrete", "method": "GGN Laplace (linearised)", "pareto_k_max": k}
            for k in ks] + [{"data": "concrete", "method": "MAP net"}]}

    (tmp_path / "a.json").write_text(json.dumps(run([0.6, 0.9, 1.24], False)))
    (tmp_path / "b.json").write_text(json.dumps(run([None, None], True)))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "uci_table.py"
    out = subprocess.run([sys.executable, str(script), "--psis", f"3 tanh={tmp_path / 'a.json'}",
                          f"50 ReLU={tmp_path / 'b.json'}"], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()
    assert out[2:] == ["| concrete | 3 tanh | **1/3** | 0.9 (0.6-1.24) | 14 | 0/3 | not run |",
                       "| concrete | 50 ReLU | **1/2** | ∞ on 2 | 14 | 0/2 | 0/2 (6.5) |"]


def test_paired_differences_are_taken_split_by_split_over_the_splits_both_runs_have(tmp_path):
    """benchmarks/uci_table.py --paired: mean and standard error of OTHER - BASE test LL over
    the (data, split) pairs present in both runs (numpy here)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    rng = np.random.default_rng(0)
    base_ll, shift = rng.normal(-1.3, 0.2, 6), rng.normal(0.05, 0.03, 6)

    def run(ll, splits):
        return {"per_split": [{"data": "energy", "method": "NUTS posterior", "split": k,
                               "test_ll_nats": float(ll[k])} for k in splits]}
    (tmp_path / "a.json").write_text(json.dumps(run(base_ll, range(6))))
    (tmp_path / "b.json").write_text(json.dumps(run(base_ll + shift, range(1, 6))))  # no split 0
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "uci_table.py"
    out = subprocess.run([sys.executable, str(script), "--paired", str(tmp_path / "a.json"),
                          str(tmp_path / "b.json")], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()
    d = shift[1:]
    assert out[2] == (f"| energy | NUTS posterior | 5 | {d.mean():+.3f} ± "
                      f"{d.std(ddof=1) / np.sqrt(5):.3f} |")


def test_the_prior_option_reaches_the_model_and_no_option_keeps_the_old_fingerprint(tmp_path):
    """--prior standard_normal puts N(0, 1) on every weight (checked on prior draws of the
    model it builds); without --prior a tanh run keeps Xavier-normal, so the splits it saved
    before the option existed still load."""
    import argparse

    import numpy as np
    import pymc as pm

    from workflows.uci_benchmark import protocol

    def args(prior, activation="tanh", coordinates="weights", product_power=1.0, ggn_noise="map"):
        return argparse.Namespace(prior=prior, activation=activation, advi=0,
                                  chains_from="ensemble", no_nuts=False, member_pool=0,
                                  coordinates=coordinates, product_power=product_power,
                                  ggn_noise=ggn_noise, mclmc=0, mclmc_keep=2000)

    old = bnn.BNNProtocol(TINY.net, TINY.sampler)
    SplitStore.open(tmp_path / "s", old)  # as written before --prior existed
    assert protocol(args(None), TINY.sampler, 2) == old
    SplitStore.open(tmp_path / "s", protocol(args(None), TINY.sampler, 2))  # not refused
    assert protocol(args(None, "relu"), TINY.sampler, 2).net.prior == "he_normal"
    with pytest.raises(OutputError, match="other settings"):  # product coordinates: its own
        SplitStore.open(tmp_path / "s", protocol(args(None, coordinates="product"), TINY.sampler, 2))
    with pytest.raises(OutputError, match="other settings"):  # the GGN noise by evidence: its own
        SplitStore.open(tmp_path / "s", protocol(args(None, ggn_noise="evidence"), TINY.sampler, 2))
    product = protocol(args(None, coordinates="product"), TINY.sampler, 2)
    SplitStore.open(tmp_path / "p", product)
    SplitStore.open(tmp_path / "p", product)  # the same product protocol: not refused
    with pytest.raises(OutputError, match="other settings"):  # another power: its own splits
        SplitStore.open(tmp_path / "p", protocol(args(None, coordinates="product", product_power=0.75),
                                                 TINY.sampler, 2))

    wide = protocol(args("standard_normal"), TINY.sampler, 3)
    X, y = np.random.default_rng(0).normal(size=(5, 4)), np.zeros(5)
    model = wide.net.build_model(X, y)
    w1, w_out = pm.draw([model["w1"], model["w_out"]], draws=4000, random_seed=1)
    # Xavier-normal's sds would be sqrt(2/7) = 0.53 and sqrt(2/4) = 0.71
    assert np.std(w1) == pytest.approx(1.0, abs=0.02)
    assert np.std(w_out) == pytest.approx(1.0, abs=0.03)
    with pytest.raises(OutputError, match="other settings"):
        SplitStore.open(tmp_path / "s", wide)  # another prior: another protocol's splits


def test_each_failing_chain_is_counted_once_under_the_first_cause_that_applies():
    from models.inference import FAILURE_CAUSES, chain_failure_cause
    from workflows import uci_benchmark

    ok = dict(split_rhat_max=1.005, ess_bulk_min=500.0, ess_tail_min=400.0, divergences=0,
              e_bfmi=0.9)
    assert chain_failure_cause(**ok) is None
    stuck, div, bfmi, ess, rhat = FAILURE_CAUSES
    # a stuck chain fails every check; it is counted as stuck, not five times
    assert chain_failure_cause(1.8, 1.9, 5.0, 1210, 0.08) == stuck
    assert chain_failure_cause(**{**ok, "divergences": 4, "split_rhat_max": 1.02}) == div
    assert chain_failure_cause(**{**ok, "e_bfmi": 0.2, "ess_tail_min": 50.0}) == bfmi
    assert chain_failure_cause(**{**ok, "ess_tail_min": 90.0, "split_rhat_max": 1.03}) == ess
    assert chain_failure_cause(**{**ok, "split_rhat_max": 1.0101}) == rhat
    assert chain_failure_cause(**{**ok, "split_rhat_max": float("nan")}) == rhat  # NaN fails
    assert chain_failure_cause(**{**ok, "ess_bulk_min": float("nan")}) == stuck

    def split(data, rows):
        wc = {k: [r[k] for r in rows] for k in ok}
        wc["chain"] = list(range(len(rows)))
        causes = uci_benchmark._chain_causes(wc)
        passed = all(chain_failure_cause(**r) is None for r in rows)
        return {"data": data, "checks_passed": passed, **causes}

    slow = {**ok, "split_rhat_max": 1.02, "ess_bulk_min": 180.0}
    nuts = pd.DataFrame([
        split("a", [ok, slow, slow, ok]),
        split("a", [ok, {**ok, "ess_bulk_min": 2.0}, ok, ok]),
        split("a", [ok, ok, ok, ok]),
        split("b", [ok, ok, ok, {**slow, "ess_bulk_min": 300.0}]),
    ])
    table = uci_benchmark._failure_causes(nuts)
    assert table.loc["a", "splits failing"] == 2 and table.loc["b", "splits failing"] == 1
    assert table.loc["a", rhat] == "2 (1)" and table.loc["a", stuck] == "1 (1)"
    assert table.loc["a", div] == "0 (0)" and table.loc["b", rhat] == "1 (1)"
    assert table.loc["a", "R-hat only: median bulk ESS"] == "180"
    assert table.loc["b", "R-hat only: median bulk ESS"] == "300"
    # chains judged together (prior starts) have no per-chain rows: no table
    assert uci_benchmark._failure_causes(pd.DataFrame([{"data": "a", "checks_passed": False}])) is None
    assert uci_benchmark._failure_causes(pd.DataFrame([split("c", [ok])])).loc[
        "c", "R-hat only: median bulk ESS"] == "–"
