"""Workflows, CLI and reports: in-process runs on bundled data, bad input through the CLI,
atomic report writing. Sampling runs use --quick and small data."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.base.splits import random_split
from workflows.report import Report
from workflows import WORKFLOWS, cli
from workflows import gaussian as gaussian_wf
from workflows import likelihood_basics, regression


def test_list_names_every_workflow(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in WORKFLOWS:
        assert name in out


def _self_contained(html: str) -> bool:
    sources = re.findall(r'src="([^"]+)"', html)
    return all(s.startswith("data:image/png;base64,") for s in sources) and "http" not in "".join(sources)


def test_likelihood_basics_report(tmp_path, capsys):
    out = tmp_path / "lb"
    assert likelihood_basics.main(["--out", str(out), "--seed", "3"]) == 0
    html = (out / "index.html").read_text()
    assert _self_contained(html) and "Provenance" in html and "data sha256" in html
    # nothing is sampled, so nothing can fail: the line says so rather than PASS (as the
    # index page does)
    assert "likelihood_basics: no checks (nothing is sampled)  report:" in capsys.readouterr().out


@pytest.fixture
def csv(tmp_path):
    def write(text, name="d.csv"):
        path = tmp_path / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
        return str(path)
    return write


@pytest.mark.parametrize("content, args, match", [
    ("", ["--target", "y"], "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\xff\xfe", ["--target", "y"], "not UTF-8 text"),
    ("a,y\n1,2\n", ["--target", "z"], r"--target column 'z' not found"),
    ("a,y\n", ["--target", "y"], "header but no rows"),
    ("a,y\n1,0\n2,1\n3,2\n4,0\n", ["--target", "y", "--family", "logistic"], r"column 'y' \(the target\) must be 0 or 1 for logistic regression; 2 in row 4"),
    ("a,y\n1,0\n2,nan\n3,1\n4,0\n", ["--target", "y", "--family", "logistic"], "column 'y' has empty or NA cells in row 3"),
    ("a,y\nx,0\n2,1\n3,1\n4,0\n", ["--target", "y"], "column 'a' must be numeric"),
    ("a,y\n1,0\n2,1\n3,-1\n4,0\n", ["--target", "y", "--family", "poisson"], r"column 'y' \(the target\) must hold counts .*; -1 in row 4"),
])
def test_bad_csv_input_is_refused_before_sampling(csv, tmp_path, content, args, match):
    out = tmp_path / "never"
    with pytest.raises(SystemExit, match=match):
        regression.main(["--data", csv(content), *args, "--out", str(out), "--quick"])
    assert not out.exists()


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        gaussian_wf.main(["--data", str(tmp_path / "nope.csv"), "--target", "y"])
    with pytest.raises(SystemExit, match="--draws must be between"):
        gaussian_wf.main(["--draws", "0", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--chains must be between"):
        gaussian_wf.main(["--chains", "-2", "--out", str(tmp_path / "x")])
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(SystemExit, match="--out .*: cannot create .*Not a directory"):
        gaussian_wf.main(["--out", str(blocker / "sub" / "report")])
    assert not (tmp_path / "x").exists()


def test_config_file_sets_options_and_rejects_unknown_keys(tmp_path):
    from workflows.options import parser, settings

    cfg = tmp_path / "c.toml"
    cfg.write_text('draws = 123\nchains = 3\nsampler = "pymc"\n')
    s = settings("x", parser("x", "").parse_args(["--config", str(cfg), "--chains", "2",
                                                   "--out", str(tmp_path / "o")]))
    assert (s.draws, s.chains, s.sampler) == (123, 2, "pymc")
    cfg.write_text('backend = "c"\n')
    s = settings("x", parser("x", "").parse_args(["--config", str(cfg), "--out", str(tmp_path / "o")]))
    assert s.config.backend == "c"
    s = settings("x", parser("x", "").parse_args(["--out", str(tmp_path / "o")]), {"backend": "c"})
    assert s.config.backend == "c"  # a workflow's own default (regression, hierarchical)
    s = settings("x", parser("x", "").parse_args(["--backend", "numba", "--out", str(tmp_path / "o")]),
                 {"backend": "c"})
    assert s.config.backend == "numba"  # the flag wins over it
    cfg.write_text("draw = 5\n")
    with pytest.raises(SystemExit, match=r"unknown option\(s\) \['draw'\]"):
        settings("x", parser("x", "").parse_args(["--config", str(cfg)]))


def test_report_write_is_atomic(tmp_path, monkeypatch):
    import xarray as xr

    out = tmp_path / "r"
    first = Report("t", "first")
    first.text("first version")
    first.write(out)

    def broken(self, path, **kwargs):  # a DataTree write that fails half-way
        Path(path).write_text("half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", broken)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"a": (("chain", "draw"), [[1.0]])})})
    second = Report("t", "second")
    second.text("second version")
    with pytest.raises(RuntimeError, match="disk full"):
        second.write(out, {"posterior": tree})
    assert "first version" in (out / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temp directories left
    assert sorted(p.name for p in out.iterdir()) == [".mlebayes-report", "index.html",
                                                     "metrics.json"]


def test_calibration_metrics_match_scikit_learn(rng):
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    from models.evaluation import scores as calibration

    p = rng.uniform(size=500)
    y = rng.binomial(1, p**1.3)
    assert calibration.brier_score(y, p) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    frac, mean_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    table = calibration.reliability_table(y, p, bins=10)
    np.testing.assert_allclose(table["observed_frequency"], frac, rtol=1e-12)
    np.testing.assert_allclose(table["mean_predicted"], mean_pred, rtol=1e-12)
    counts = table["n"].to_numpy()
    ece = np.sum(counts / counts.sum() * np.abs(frac - mean_pred))
    assert calibration.expected_calibration_error(y, p) == pytest.approx(ece, rel=1e-12)


def test_unknown_predictor_column(csv, tmp_path):
    with pytest.raises(SystemExit, match=r"column\(s\) \['zz'\] not found"):
        regression.main(["--data", csv("a,b,y\n1,2,0\n2,1,1\n3,3,0\n4,1,1\n"), "--target", "y",
                         "--predictors", "a,zz", "--out", str(tmp_path / "o")])


def test_class_only_in_the_test_split(csv, tmp_path):
    n = 41
    _, test = random_split(n, 20261124)  # the workflow's split of these rows
    labels = ["a" if i % 2 else "b" for i in range(n)]
    labels[test[0]] = "c"
    rows = "\n".join(f"{i * 0.1:.1f},{(i % 7) * 0.3:.1f},{lab}" for i, lab in enumerate(labels))
    out = tmp_path / "o"
    with pytest.raises(SystemExit, match=r"class\(es\) \['c'\] occur only in the test split"):
        regression.main(["--data", csv("x1,x2,y\n" + rows), "--target", "y", "--family", "softmax",
                         "--quick", "--out", str(out)])
    assert not out.exists()


def test_separable_classes_warn_and_continue(csv, tmp_path):
    rows = "\n".join(f"{x:.2f},{int(x > 0)}" for x in np.linspace(-2, 2, 40))
    out = tmp_path / "sep"
    assert regression.main(["--data", csv("x,y\n" + rows), "--target", "y", "--family", "logistic",
                            "--quick", "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    assert "Read first" in html and "does not exist" in html


def test_non_finite_start_is_reported_in_words():
    import pymc as pm

    from models.inference import sample_posterior

    with pm.Model() as model:
        p = pm.Uniform("p", 0, 1)
        pm.Binomial("y_obs", n=3, p=p, observed=5)  # 5 successes out of 3: impossible
    with pytest.raises(ValueError, match=r"not finite at the initial point for y_obs"):
        sample_posterior(model, draws=10, tune=10, chains=1)


def test_reports_index_shows_each_reports_status_and_every_warns_reason(tmp_path):
    import json

    metrics = {"a": {"diagnostics_passed": True, "failed_checks": [], "checks": {"m": True}},
               "d": {"diagnostics_passed": True, "failed_checks": [], "checks": {}},
               "b": {"diagnostics_passed": False, "checks": {"normal": False}, "failed_checks": [
                   "normal: convergence diagnostics failed",
                   "Univariate normal: the model does not fit the data (see its model-fit checks)"]}}
    for name, m in metrics.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    page = cli.write_index([("a", "first", 1.0, 0), ("b", "second", 2.0, 0), ("c", "third", 3.0, 1),
                            ("d", "fourth", 1.0, 0)], root=tmp_path).read_text()
    assert page.count("PASS") == 1 and "FAILED" in page
    assert "<td class=\"why\">no checks (nothing is sampled" in page  # d: not a PASS
    assert "settings: " in page and "pymc " in page  # what produced these reports
    assert ("<b>WARN</b><ul><li>normal: convergence diagnostics failed</li><li>Univariate "
            "normal: the model does not fit the data") in page  # every reason, one per line


def test_small_data_sweep_sentence_follows_its_table():
    """The sweep's sentence reads its cause from the gaps table: the prior's pull where the
    Laplace gap is under half the MLE's, the likelihood's shape otherwise, no MLE when NaN;
    'agree' only when both full-data gaps are small against the Monte-Carlo error."""
    import pandas as pd

    from workflows.small_data import sweep_sentence

    def gaps(m0, l0, m1, l1, noise=0.04):
        return pd.DataFrame({"MLE gap (post sd)": [m0, m1], "Laplace gap (post sd)": [l0, l1],
                             "MC error of the posterior mean (post sd)": [noise, noise]},
                            index=pd.Index([10, 3020], name="N"))

    assert "prior's pull" in sweep_sentence(gaps(1.0, 0.2, 0.05, 0.05))
    assert "likelihood's non-normal shape" in sweep_sentence(gaps(1.0, 0.6, 0.05, 0.05))
    assert "the MLE does not exist" in sweep_sentence(gaps(float("nan"), 0.3, 0.05, 0.05))
    assert "all three agree" in sweep_sentence(gaps(1.0, 0.2, 0.1, 0.1))
    assert "have not all met" in sweep_sentence(gaps(1.0, 0.2, 0.6, 0.1))


def test_small_files_keep_the_posterior_exactly_and_loo_is_recomputed_from_them(tmp_path):
    """save_tree "small": posterior, sample_stats and data read back identical (values and
    dtypes), the pointwise log-likelihood and predictive draws are left out, and az.loo on the
    log-likelihood recomputed from the saved file and the model equals az.loo on the original
    draws exactly; "full" keeps every group, identical."""
    import arviz as az
    import numpy as np
    import pymc as pm

    from models.inference import sample_posterior
    from workflows.report import save_tree

    y = np.random.default_rng(0).normal(1.0, 1.0, size=40)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1.0, observed=y)
    tree = sample_posterior(model, draws=200, tune=200, chains=2, random_seed=1)
    pm.sample_posterior_predictive(tree, model=model, extend_inferencedata=True,
                                   random_seed=2, progressbar=False)
    save_tree(tree, tmp_path / "small.nc")
    small = az.from_netcdf(tmp_path / "small.nc")
    assert "log_likelihood" not in small.children
    assert "posterior_predictive" not in small.children
    # (nutpie's per-draw divergence messages, an object array of None, are not numbers)
    numeric = {g: [v for v in tree[g].data_vars if tree[g][v].dtype != object]
               for g in tree.children}
    for group in ("posterior", "observed_data", "sample_stats"):
        for name in numeric[group]:
            a, b = tree[group][name].values, small[group][name].values
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), (group, name)
    pm.compute_log_likelihood(small, model=model, progressbar=False)
    assert az.loo(small).elpd == az.loo(tree).elpd

    save_tree(tree, tmp_path / "full.nc", save="full")
    full = az.from_netcdf(tmp_path / "full.nc")
    assert set(full.children) == set(tree.children)
    for group in tree.children:
        for name in numeric[group]:
            a, b = tree[group][name].values, full[group][name].values
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), (group, name)
    raw = sum(tree[g][v].values.nbytes for g in tree.children for v in tree[g].data_vars)
    assert (tmp_path / "small.nc").stat().st_size < 0.5 * (tmp_path / "full.nc").stat().st_size < raw


@pytest.mark.parametrize("argv, draws, tune, target_accept, chains_from, hidden", [
    ([], 4000, 2000, 0.98, "ensemble", (3,)),                      # the regression default
    (["--chains-from", "prior"], 1000, 1000, 0.9, "prior", (3,)),  # the earlier protocol
    (["--task", "classification"], 1000, 1000, 0.9, "prior", (5,)),  # classifiers: prior starts
    (["--task", "held_out_class"], 1000, 1000, 0.9, "prior", (5,)),
    (["--quick"], 300, 300, 0.98, "ensemble", (3,)),               # --quick still wins
    (["--draws", "500", "--tune", "700", "--target-accept", "0.8", "--hidden", "5,2"],
     500, 700, 0.8, "ensemble", (5, 2)),
])
def test_bnn_defaults_follow_where_the_chains_start(tmp_path, argv, draws, tune, target_accept,
                                                     chains_from, hidden):
    """The measured defaults (README, "A width whose chains converge" and "2000 tuning steps"):
    regression nets of 3 tanh units with ensemble-started chains, 4000 draws after 2000 tuning
    steps at target acceptance 0.98; the classifiers keep 5 units and prior starts."""
    from workflows import bnn as bnn_wf
    from workflows.options import parser

    args = bnn_wf.add_arguments(parser("bnn", "")).parse_args([*argv, "--out", str(tmp_path / "o")])
    s = bnn_wf.bnn_settings(args)
    widths, prior = bnn_wf.network_options(args, s.quick)
    proto = bnn_wf.protocol(args, s, widths, prior)
    assert (s.draws, proto.sampler.tune, proto.sampler.target_accept, proto.chains_from,
            proto.net.hidden, proto.net.prior) == (draws, tune, target_accept, chains_from,
                                                   hidden, "xavier_normal")


def test_bnn_page_names_the_best_predictor_and_whether_its_checks_passed():
    from models.evaluation import bnn
    from workflows.bnn import best_method_sentence

    metrics = {bnn.MLE_NET: {"test_ll_nats": -0.56, "rmse": 0.42},
               bnn.NUTS: {"test_ll_nats": -0.92, "rmse": 0.62},
               bnn.MAP_NET: {"test_ll_nats": -0.94, "rmse": 0.40}}
    checks = {bnn.MLE_NET: (False, "optimiser status not_converged"),
              bnn.NUTS: (True, "function-space diagnostics passed")}
    text, best = best_method_sentence(metrics, checks)
    assert best == {"by_test_ll": bnn.MLE_NET, "by_rmse": bnn.MAP_NET, "checks_passed": False,
                    "checks": "optimiser status not_converged"}
    assert "MLE net (-0.560 nats per point; NUTS posterior -0.920)" in text
    assert "treat the ranking with caution" in text
    metrics[bnn.MCLMC] = {"test_ll_nats": -0.91, "rmse": 0.61}  # the other sampler's row
    text, _ = best_method_sentence(metrics, checks)
    assert "MLE net (-0.560 nats per point; NUTS posterior -0.920; MCLMC from the members " \
           "-0.910)" in text
    metrics[bnn.NUTS]["test_ll_nats"] = -0.5
    text, best = best_method_sentence(metrics, checks)
    assert best["by_test_ll"] == bnn.NUTS and "caution" not in text
    # the classifier pages had no such sentence: there the NLL (lower is better) decides, then
    # accuracy, where small test sets tie
    metrics = {bnn.MLE_NET: {"nll_nats": 0.6354, "accuracy": 0.9},
               bnn.MAP_NET: {"nll_nats": 0.62, "accuracy": 0.8},
               bnn.NUTS: {"nll_nats": 0.6416, "accuracy": 0.9}}
    checks[bnn.MAP_NET] = (False, "a message that ends its own sentence.")
    text, best = best_method_sentence(metrics, checks, "nll_nats", "accuracy")
    assert "Its checks: a message that ends its own sentence. Its numbers" in text  # one stop
    checks.pop(bnn.MAP_NET)
    text, best = best_method_sentence(metrics, checks, "nll_nats", "accuracy")
    assert best == {"by_nll": bnn.MAP_NET, "by_accuracy": bnn.MLE_NET, "checks_passed": None,
                    "checks": "no checks recorded"}
    assert text.startswith("Best on this test split by NLL: MAP net (0.62 nats per point; NUTS "
                           "posterior 0.6416); by accuracy: MLE net and NUTS posterior (0.900, "
                           "tied).")


def test_ensemble_chains_energy_plot_centres_each_chain():
    """Chains in modes whose energies differ by 80 pooled into one marginal that looked like
    a low E-BFMI beside per-chain E-BFMI of 0.9; each chain is now centred on its own mean,
    which leaves its E-BFMI (Betancourt 2016, by hand here) as it was."""
    import xarray as xr
    from workflows.bnn import energy_centred_by_chain

    rng = np.random.default_rng(3)
    energy = np.cumsum(rng.normal(size=(4, 500)), axis=1) * 0.3 + rng.normal(size=(4, 500))
    energy += np.array([-197.0, -284.0, -197.0, -284.0])[:, None]
    tree = xr.DataTree.from_dict({"sample_stats": xr.Dataset(
        {"energy": (("chain", "draw"), energy)})})
    stats, spread = energy_centred_by_chain(tree)
    centred = stats["energy"].values
    np.testing.assert_allclose(centred.mean(1), 0, atol=1e-10)
    shift = np.broadcast_to(-energy.mean(1, keepdims=True), energy.shape)
    np.testing.assert_allclose(centred - energy, shift)
    assert spread == pytest.approx(np.ptp(energy.mean(1)))

    def ebfmi(e):
        return (np.diff(e, axis=1) ** 2).mean(1) / e.var(1)
    np.testing.assert_allclose(ebfmi(centred), ebfmi(energy))
    pooled_sd = energy.std()
    assert centred.std() < pooled_sd / 5  # the pooled offsets are what the plot no longer shows


def test_advi_sentence_reads_its_direction_from_the_numbers():
    """The yacht page said 'a ratio of 1.67. Mean-field ADVI ignores the strong correlations',
    which reads as 'narrower', beside an ADVI predictive wider than NUTS's and an RMSE 2.2
    times NUTS's."""
    from workflows.bnn import advi_spread_sentence

    text = advi_spread_sentence(0.0314, 0.0188, 1.727, 0.7974)
    assert "wider than NUTS's (ratio 1.67)" in text
    assert "test RMSE is 2.17 times NUTS's (1.73 vs 0.797)" in text
    text = advi_spread_sentence(0.01, 0.02, 0.80, 0.79)
    assert "narrower than NUTS's (ratio 0.50)" in text and "RMSE" not in text
    assert "about as wide as" in advi_spread_sentence(0.0195, 0.0188, 0.8, 0.8)


def test_stopwatch_counts_nested_stages_once_and_records_sampler_time(monkeypatch):
    """Stages on a fake clock: a stage inside another is not counted twice, so the stages
    never add up to more than the wall time; a decorated function is its stage."""
    from models.base import stopwatch

    clock = iter(range(100))
    monkeypatch.setattr(stopwatch.time, "perf_counter", lambda: float(next(clock)))
    stopwatch.reset()

    @stopwatch.timed("MLE")
    def fit():
        with stopwatch.stage("compile"):  # inside MLE: counted as MLE only
            pass

    with stopwatch.stage("sampling"):  # clock 0 -> 1
        pass
    fit()  # MLE: clock 2 -> 4 (the inner stage reads 3 when it starts, and is not counted)
    stopwatch.add("compile", 2.5)
    assert stopwatch.totals() == {"compile": 2.5, "MLE": 2.0, "sampling": 1.0}
    stopwatch.reset()
    assert stopwatch.totals() == {}


def test_run_all_jobs_option_is_checked_before_anything_runs(capsys):
    from workflows import cli

    for bad in ("0", "x", "17"):
        with pytest.raises(SystemExit):
            cli.main(["run", "all", "--jobs", bad])
        assert "--jobs must be a whole number from 1 to 16" in capsys.readouterr().err


def test_run_all_help_prints_its_options_and_runs_nothing(capsys, monkeypatch, tmp_path):
    """`run all --help` used to pass --help to every workflow in turn and then rewrite
    reports/index.html; it must print run all's own options and touch nothing."""
    from workflows import cli

    monkeypatch.chdir(tmp_path)
    ran = []
    monkeypatch.setattr(cli, "_run_in_process", lambda *a: ran.append(a) or [])
    monkeypatch.setattr(cli, "_run_parallel", lambda *a: ran.append(a) or [])
    assert cli.main(["run", "all", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--jobs N" in out and "--quick" in out
    assert ran == [] and list(tmp_path.iterdir()) == []


def test_small_data_fits_in_process_when_it_has_two_cores_or_fewer(monkeypatch):
    """On 2 cores the coverage fits ran faster in the workflow's own process than on 2 Dask
    workers (167 vs 187 s, 216 vs 288 CPU s); run all's jobs share the cores."""
    import argparse
    import contextlib

    from models.inference import distributed
    from workflows import options

    monkeypatch.setattr(distributed, "dask_client", lambda **kw: ("dask", kw))

    def client(cpus, jobs, *argv):
        monkeypatch.setattr(options.os, "cpu_count", lambda: cpus)
        monkeypatch.setenv("MLEBAYES_JOBS", str(jobs))
        p = argparse.ArgumentParser()
        options.add_fanout(p, in_process_cores=2)
        return options.fanout_client(p.parse_args(list(argv)))

    assert isinstance(client(2, 1), contextlib.nullcontext)
    assert isinstance(client(4, 2), contextlib.nullcontext)  # run all: 2 jobs on 4 cores
    assert client(4, 1) == ("dask", {"workers": None, "scheduler": None})
    assert client(2, 1, "--workers", "2") == ("dask", {"workers": 2, "scheduler": None})
    p = argparse.ArgumentParser()
    options.add_fanout(p)  # the others keep Dask by default
    monkeypatch.setattr(options.os, "cpu_count", lambda: 2)
    assert options.fanout_client(p.parse_args([]))[0] == "dask"


def test_a_long_step_prints_a_line_every_interval(capsys):
    """A step longer than the interval is never silent: one 'still running' line per interval,
    and the next step stops the previous step's lines."""
    import time

    from workflows.running import Progress

    p = Progress("x", 2, every=0.2)
    p("slow step")
    time.sleep(0.75)
    p("next")
    time.sleep(0.1)
    err = capsys.readouterr().err
    assert err.count("s after: slow step") >= 2 and "[x 2/2" in err
    time.sleep(0.3)
    assert "s after: slow step" not in capsys.readouterr().err
    p.close()
    time.sleep(0.3)
    assert "s after" not in capsys.readouterr().err
    q = Progress("y", 1, every=0.2)  # a Progress that is dropped stops too (a workflow returned)
    q("step")
    del q
    import gc
    gc.collect()
    time.sleep(0.5)
    assert "s after" not in capsys.readouterr().err


def test_a_workflow_that_returned_prints_no_more_progress_lines(capsys):
    """run all --jobs 1 runs every workflow in one process: a Progress still referenced after
    its workflow returned (here from a module-level list, in hierarchical from a reference
    cycle) printed 'still running' lines into the next workflow's output."""
    import time

    from workflows.running import Progress, entry

    kept = []

    def main(argv):
        p = Progress("w", 1, every=0.2)
        kept.append(p)
        p("a step that ends with the workflow")
        return 0

    assert entry(main, []) == 0
    capsys.readouterr()
    time.sleep(0.6)
    assert "s after" not in capsys.readouterr().err


def test_the_all_passed_banner_says_only_what_the_verdict_table_shows():
    """The bnn page said 'Every model ... passed its model-fit checks' above a verdict table
    whose model-fit cell was '–' (none) and whose MLE cell was WARN."""
    from workflows.report import Report

    r = Report("t", "t")
    r.verdict("Bayesian neural network", (True, "ok"), None, (False, "MLE net: not_converged"))
    page = r.render()
    assert "passed its model-fit checks" not in page
    assert "no model-fit checks" in page and "The MLE column warns for Bayesian neural network: that is" in page
    r = Report("t", "t")
    r.verdict("a", (True, "ok"), (True, "ok"), (True, "exists"))
    r.verdict("b", (True, "ok"), None, None)
    page = r.render()
    assert "the 1 with model-fit checks passed them" in page and "MLE column" not in page
    r = Report("t", "t")
    r.verdict("a", (True, "ok"), (True, "ok"), None)
    assert "Every model in this report converged and passed its model-fit checks." in r.render()


def test_counts_in_a_numeric_table_row_print_as_integers():
    """pandas' iterrows upcasts an int column to float when the row is all numbers; a count
    must still print as 20930 (not 2.093e+04) and a count beside an R-hat as 1 (not 1.000)."""
    from workflows.report import Report

    r = Report("t", "t")
    r.table(pd.DataFrame({"n": [20930], "splits agree (f R-hat ≤ 1.01)": [1],
                          "f R-hat": [1.0041], "x": [0.123456]}))
    html = r.blocks[-1]
    assert "<td>20930</td>" in html and "<td>1</td>" in html
    assert "<td>1.004</td>" in html and "<td>0.1235</td>" in html


def test_energy_plot_numbers_chains_with_whole_numbers():
    """ArviZ 1.3's E-BFMI panel ticked the chain axis 0.0, 0.5, 1.0, ..., 3.0."""
    import xarray as xr

    from workflows import plots

    energy = np.random.default_rng(0).normal(size=(4, 200))
    pc = plots.energy(xr.DataTree.from_dict({"sample_stats": xr.Dataset(
        {"energy": (("chain", "draw"), energy)})}))
    figure = pc.get_viz("figure")
    figure = figure.item() if hasattr(figure, "item") else figure
    (ax,) = [a for a in figure.axes if a.get_ylabel() == "Chain"]
    lo, hi = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)
