"""--rerun-failing: a split whose ensemble-started chains failed is run again with settings
chosen from the causes of its failing chains alone (models.evaluation.escalation), and the
page counts the splits that passed only after a rerun apart from those that passed at once."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from models.evaluation import bnn, escalation
from models.inference import SamplerConfig
from workflows.uci_benchmark import SplitStore

PRODUCT = bnn.BNNProtocol(bnn.NetworkSpec((3,), "tanh", "xavier_normal"),
                          SamplerConfig(draws=4000, tune=2000, chains=4, seed=7, init="prior"),
                          coordinates="product")
OK = dict(split_rhat_max=1.004, ess_bulk_min=900.0, ess_tail_min=800.0, divergences=0,
          e_bfmi=0.9)


def _result(*chains, data="wine-quality-red", split=3):
    """A split's result as next_protocol reads it: per-chain rows and the split's verdict."""
    rows = [{**OK, **c} for c in chains]
    within = {k: [r[k] for r in rows] for k in OK}
    passed = all(escalation.chain_failure_causes(within)[i] is None for i in range(len(rows)))
    return SimpleNamespace(data=data, split=split, function_space={"within_chain": within},
                           diagnostics=SimpleNamespace(passed=passed), seconds=1.0)


def test_the_rerun_rule_reads_only_the_causes_of_the_failing_chains():
    nxt = escalation.next_protocol
    draws = lambda p: p.sampler.draws  # noqa: E731
    # every chain passed: nothing to rerun
    assert nxt(PRODUCT, _result({}, {}, {}, {})) is None
    # a stuck chain (bulk ESS < 10) and no pool: a pool of twice the chains, same draws and seed
    p = nxt(PRODUCT, _result({}, {"ess_bulk_min": 4.0, "divergences": 3}, {}, {}))
    assert (p.member_pool, draws(p), p.product_power, p.sampler.seed) == (8, 4000, 1.0, 7)
    # stuck again with the pool: more draws (the pool is not grown twice)
    p2 = nxt(p, _result({"ess_bulk_min": 4.0}))
    assert (p2.member_pool, draws(p2)) == (8, 24000)
    # divergences in product coordinates at power 1: power 0.75 with at least 24000 draws
    p = nxt(PRODUCT, _result({}, {"divergences": 7}))
    assert (p.product_power, draws(p), p.member_pool) == (0.75, 24000, 0)
    # divergences again at 0.75: nothing left to change in the coordinates, so more draws
    assert (nxt(p, _result({"divergences": 2})).product_power,
            draws(nxt(p, _result({"divergences": 2})))) == (0.75, 48000)
    # divergences in the network's own weights: no power to change, more draws
    weights = PRODUCT.replace(coordinates="weights")
    assert draws(nxt(weights, _result({"divergences": 1}))) == 24000
    # R-hat alone or too few effective draws: 4000 -> 24000 -> 48000 -> nothing left
    rhat = _result({"split_rhat_max": 1.02})
    assert draws(nxt(PRODUCT, rhat)) == 24000
    assert draws(nxt(PRODUCT.replace(sampler=PRODUCT.sampler.replace(draws=8000)),
                     _result({"ess_tail_min": 60.0}))) == 24000
    at24 = PRODUCT.replace(sampler=PRODUCT.sampler.replace(draws=24000))
    assert draws(nxt(at24, rhat)) == 48000
    assert nxt(at24.replace(sampler=at24.sampler.replace(draws=48000)), rhat) is None
    # chains judged together (prior starts) have no per-chain causes: no rerun
    judged = SimpleNamespace(function_space={}, diagnostics=SimpleNamespace(passed=False))
    assert nxt(PRODUCT, judged) is None
    assert escalation.changes(PRODUCT, p) == "power 0.75, draws 24000"
    assert escalation.changes(PRODUCT, PRODUCT) == "first settings"


def test_reruns_run_each_round_in_one_call_and_keep_the_first_run_that_passed():
    first = [_result({}, data="a", split=0),                       # passes at once
             _result({"split_rhat_max": 1.03}, data="a", split=1),  # passes at 24000
             _result({"divergences": 5}, data="b", split=0),        # fails at 0.75, passes at 48000
             _result({"split_rhat_max": 1.05}, data="b", split=1)]  # never passes
    outcome = {  # (data set, split, draws, power) -> the chains of that run
        ("a", 1, 24000, 1.0): {}, ("b", 0, 24000, 0.75): {"split_rhat_max": 1.02},
        ("b", 0, 48000, 0.75): {}}
    calls = []

    def run(groups):
        calls.append([(p.sampler.draws, p.product_power, list(pairs)) for p, pairs in groups])
        return [[_result(outcome.get((d, k, p.sampler.draws, p.product_power),
                                     {"split_rhat_max": 1.05}), data=d, split=k)
                 for d, k in pairs] for p, pairs in groups]

    rounds = []
    reruns = escalation.rerun_failing(first, PRODUCT, run,
                                      on_round=lambda k, n: rounds.append((k, n)))
    # one call per round, holding every protocol of that round, each with its splits in order
    assert calls == [[(24000, 1.0, [("a", 1), ("b", 1)]), (24000, 0.75, [("b", 0)])],
                     [(48000, 0.75, [("b", 0)]), (48000, 1.0, [("b", 1)])]]
    assert rounds == [(1, 3), (2, 2)]  # round 3: b1 has nothing left at 48000, b0 passed
    assert [r.used for r in reruns] == [0, 1, 2, 2]
    assert [r.passed for r in reruns] == [True, True, True, False]
    assert [len(r.results) for r in reruns] == [1, 2, 3, 3]
    assert escalation.changes(PRODUCT, reruns[2].protocols[2]) == "power 0.75, draws 48000"


def test_uci_groups_queues_every_groups_splits_in_one_task_list_most_draws_first(monkeypatch):
    """A rerun round's groups go to the workers as ONE task list (a group of one split must
    not leave the other workers idle), most draws first; results come back per group, in
    each group's order, with splits found in a group's store loaded, not queued."""
    short = PRODUCT
    long = PRODUCT.replace(sampler=PRODUCT.sampler.replace(draws=48000))
    mid = PRODUCT.replace(sampler=PRODUCT.sampler.replace(draws=24000), product_power=0.75)

    class Store:
        def __init__(self, have):
            self.have = have

        def load(self, name, split):
            return self.have.get((name, split))

    saved = SimpleNamespace(data="wine", split=5)
    queued = []

    def run_tasks(fn, tasks, client=None, on_done=None):
        queued.append([(t[2], t[3], t[4].sampler.draws, t[4].sampler.seed) for t in tasks])
        for k in range(len(tasks)):
            on_done(k + 1, len(tasks))
        # the first queued task fails twice; the others return their (data set, split)
        return [None] + [(t[2], t[3]) for t in tasks[1:]], [(0, "RuntimeError: boom")]

    monkeypatch.setattr(bnn, "run_tasks", run_tasks)
    progress = []
    results, failures = bnn.uci_groups(
        [(short, [("energy", 2)], None),
         (mid, [("wine", 4), ("wine", 5)], Store({("wine", 5): saved})),
         (long, [("wine", 1), ("wine", 9)], None)],
        client=None, on_done=lambda k, n: progress.append((k, n)))
    assert len(queued) == 1  # one task list for the whole round
    assert queued[0] == [("wine", 1, 48000, 8), ("wine", 9, 48000, 16),   # seed 7 + split
                         ("wine", 4, 24000, 11), ("energy", 2, 4000, 9)]
    assert results == [[("energy", 2)], [("wine", 4), saved], [None, ("wine", 9)]]
    assert failures == [[], [], [(0, "RuntimeError: boom")]]
    assert progress == [(2, 5), (3, 5), (4, 5), (5, 5)]  # the loaded split counts as done


def test_the_page_counts_late_passes_apart_and_takes_the_nuts_rows_from_the_run_used(
        tmp_path, monkeypatch):
    """In process, a tiny net on one yacht split with tiny thresholds: 20 draws fail the
    per-chain ESS of 100 and the pool is already there, so the split is rerun at
    'LONG_DRAWS' = 40 draws, and then has nothing left (80 > 'MAX_DRAWS' = 40). The
    NUTS rows must be the last run's (read back from its pickle), their seconds the sum of
    every run's, the other rows the first run's; the reruns are saved and a second run of the
    same command fits nothing."""
    from workflows import uci_benchmark

    monkeypatch.setattr(escalation, "LONG_DRAWS", 40)
    monkeypatch.setattr(escalation, "MAX_DRAWS", 40)
    out, splits = tmp_path / "uci", tmp_path / "uci.splits"
    argv = ["--datasets", "yacht", "--splits", "1", "--hidden", "2", "--activation", "tanh",
            "--draws", "20", "--tune", "20", "--chains", "2", "--member-pool", "2",
            "--workers", "0",
            "--rerun-failing", "--splits-dir", str(splits), "--out", str(out)]
    assert uci_benchmark.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    per_split = pd.DataFrame(metrics["per_split"])
    nuts = per_split[per_split["method"] == bnn.NUTS].set_index("split")
    reruns = sorted(p.name for p in splits.iterdir() if p.name.startswith("rerun-"))
    assert len(reruns) == 1  # one store per rerun protocol: 40 draws
    runs = {}
    for d in [splits, *(splits / r for r in reruns)]:
        marker = json.loads((d / ".mlebayes-splits").read_text())
        draws = int(marker["settings"].split("draws=")[1].split(",")[0])
        store = SplitStore(d, marker["protocol"])
        runs[draws] = {k: store.load("yacht", k) for k in (0,)}
    assert sorted(runs) == [20, 40]
    for k in (0,):
        last = runs[40][k]  # nothing passes at these draws: the last run is the one used
        assert not last.diagnostics.passed
        assert nuts.loc[k, "test_ll_nats"] == pytest.approx(last.metrics[bnn.NUTS]["test_ll_nats"])
        assert nuts.loc[k, "settings"] == "draws 40" and nuts.loc[k, "reruns"] == 1
        assert nuts.loc[k, "seconds"] == pytest.approx(sum(
            runs[n][k].function_space["method_seconds"][bnn.NUTS] for n in (20, 40)))
        mle = per_split[(per_split["method"] == bnn.MLE_NET) & (per_split["split"] == k)]
        assert mle["test_ll_nats"].item() == pytest.approx(
            runs[20][k].metrics[bnn.MLE_NET]["test_ll_nats"])
    table = pd.DataFrame(metrics["reruns"]).set_index("data")
    assert table.loc["yacht", "failing after reruns"] == 1
    assert table.loc["yacht", "passed at first settings"] == 0
    assert table.loc["yacht", "settings used (splits)"] == "draws 40: 1"
    page = (out / "index.html").read_text()
    assert "Reruns (--rerun-failing)" in page and "settings by cause" not in page
    assert "the reruns before the run shown and what they changed" in page

    fitted = []
    monkeypatch.setattr(bnn, "evaluate", lambda *a, **k: fitted.append(1))
    assert uci_benchmark.main(argv) == 0  # everything loaded from the stores
    assert fitted == []


def test_rerun_failing_is_refused_without_ensemble_started_nuts(tmp_path):
    from workflows import uci_benchmark

    for extra in (["--no-nuts"], ["--chains-from", "prior"]):
        out = tmp_path / "x"
        with pytest.raises(SystemExit, match="--rerun-failing"):
            uci_benchmark.main(["--rerun-failing", *extra, "--out", str(out)])
        assert not out.exists() and not (tmp_path / "x.splits").exists()
