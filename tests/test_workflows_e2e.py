"""Every workflow end to end in --quick mode; the numbers in metrics.json are checked against
independent references (statsmodels, numpy closed forms), and the files beside the report."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from models import datasets
from workflows import gaussian, hierarchical, likelihood_basics, regression, small_data


def _run(module, tmp_path, *args):
    out = tmp_path / module.NAME
    assert module.main(["--quick", "--out", str(out), *args]) == 0
    files = {p.name for p in out.iterdir()}
    assert {"index.html", "metrics.json"} <= files
    return out, json.loads((out / "metrics.json").read_text())


def test_likelihood_basics_e2e(tmp_path):
    from scipy import stats

    out, m = _run(likelihood_basics, tmp_path, "--seed", "5")
    big = [r for r in m["underflow"] if r["n"] == 1_000_000][0]
    assert big["product of densities"] == 0.0 and big["log(product)"] is None  # -inf -> null
    x = np.random.default_rng(5).normal(size=1_000_000)
    assert big["sum of log-densities"] == pytest.approx(stats.norm.logpdf(x).sum(), rel=1e-12)


def test_gaussian_e2e(tmp_path):
    out, m = _run(gaussian, tmp_path)
    y = datasets.newcomb().to_numpy()
    mle = m["sections"]["Univariate normal"]["mle"]
    assert mle["params"]["mu"] == pytest.approx(y.mean(), rel=1e-8)
    assert mle["params"]["sigma"] == pytest.approx(y.std(ddof=0), rel=1e-7)
    Y = datasets.iris(("sepal_length", "sepal_width", "petal_length", "petal_width"))[0]
    cov = np.array(m["sections"]["Multivariate normal"]["mle"]["params"]["cov"])
    np.testing.assert_allclose(cov, np.cov(Y.to_numpy().T, bias=True), rtol=1e-6)
    summary = pd.read_csv(out / "summary.csv")
    assert {"section", "parameter", "mean", "r_hat", "ess_bulk"} <= set(summary.columns)


def test_regression_e2e(tmp_path):
    import arviz as az

    out, m = _run(regression, tmp_path)
    for offset, (family, name) in enumerate([("linear", "Linear regression"),
                                             ("logistic", "Logistic regression")]):
        X, y = regression.FAMILIES[family]["data"]()
        train, _ = regression.split(len(y), 20261124 + offset)
        exog = sm.add_constant(X.iloc[train])
        ref = (sm.OLS if family == "linear" else sm.Logit)(y.iloc[train], exog).fit(
            **({} if family == "linear" else {"disp": 0}))
        got = m["sections"][name]["mle"]["params"]
        np.testing.assert_allclose([got["intercept"], *got["beta"]], ref.params.values, rtol=1e-5)
        score = m["sections"][name]["predictive"]
        assert score["posterior_predictive"]["per_obs_bits"] == pytest.approx(
            score["posterior_predictive"]["per_obs_nats"] / np.log(2), rel=1e-12)
    assert "calibration" in m["sections"]["Logistic regression"]
    tree = az.from_netcdf(out / "posterior_logistic.nc")
    assert "beta" in tree["posterior"].data_vars


def test_small_data_e2e(tmp_path):
    _, m = _run(small_data, tmp_path)
    X, y = datasets.wells()
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    full = [r for r in m["sweep"] if r["N"] == len(y)]
    np.testing.assert_allclose([r["MLE"] for r in full], ref.params.values[1:], rtol=1e-5)
    np.testing.assert_allclose([r["SE"] for r in full], ref.bse.values[1:], rtol=1e-3)
    sep = m["sections"]["Perfect separation: iris setosa vs versicolor by sepal size"]
    assert sep["mle"]["status"] == "does_not_exist"
    assert all(0 <= r["coverage"] <= 1 for r in m["coverage"])


def test_hierarchical_e2e(tmp_path):
    out, m = _run(hierarchical, tmp_path)
    es = datasets.eight_schools()
    w = 1 / es["sigma"].to_numpy() ** 2
    t2 = m["eight_schools"]["type2_mle"]
    assert t2["tau"] == 0.0 and t2["at_boundary"]
    assert t2["mu"] == pytest.approx(np.sum(w * es["y"]) / np.sum(w), rel=1e-9)
    assert "centered" in (out / "index.html").read_text()  # the funnel is shown, not hidden


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed")
def test_report_renders_with_images_in_headless_chromium(tmp_path):
    from PIL import Image

    out = tmp_path / "lb"
    assert likelihood_basics.main(["--out", str(out)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    f"--screenshot={shot}", (out / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2400, 1200)
    # The embedded plot (Figure 1) is drawn in colours that text and tables never use.
    orange = np.all(np.abs(pixels.astype(int) - [217, 95, 2]) < 40, axis=-1)
    purple = np.all(np.abs(pixels.astype(int) - [117, 112, 179]) < 40, axis=-1)
    assert orange.sum() > 200 and purple.sum() > 200


def test_signal_propagation_e2e(tmp_path):
    from workflows import signal_propagation

    _, m = _run(signal_propagation, tmp_path)
    he_relu = [r for r in m["layers"] if r["prior"] == "he_normal" and r["activation"] == "relu"]
    assert all(r["q (mean field)"] == pytest.approx(2.0) for r in he_relu)


def test_bnn_and_uci_benchmark_e2e(tmp_path):
    from workflows import bnn as bnn_wf
    from workflows import uci_benchmark

    _, m = _run(bnn_wf, tmp_path, "--dataset", "yacht", "--split", "3")
    # The constant predictor's RMSE, derived independently from the raw split files.
    folder = datasets.DATA_DIR / "uci" / "yacht"
    raw = np.loadtxt(folder / "data.txt")[:, -1]  # the target is the last column
    train = np.loadtxt(folder / "index_train_3.txt", dtype=int)
    test = np.loadtxt(folder / "index_test_3.txt", dtype=int)
    assert m["metrics"]["constant (training mean)"]["rmse"] == pytest.approx(
        np.sqrt(np.mean((raw[test] - raw[train].mean()) ** 2)), rel=1e-9)
    assert m["metrics"]["MLE net"]["rmse"] < m["metrics"]["constant (training mean)"]["rmse"]
    assert m["metrics"]["ADVI (mean-field)"]["rmse"] < m["metrics"]["constant (training mean)"]["rmse"]
    assert m["advi"]["iterations"] == 5000 and m["advi"]["f_sd_mean"] > 0
    stacking = m["function_space"]["chain_stacking"]
    assert sum(stacking["stacking weight"]) == pytest.approx(1.0, abs=1e-6)
    _, m = _run(uci_benchmark, tmp_path, "--datasets", "yacht", "--splits", "1", "--advi", "2000")
    published = [r for r in m["summary"] if r["method"] == "published: PBP"]
    assert published and published[0]["RMSE"] == 1.02
    methods = [r["method"] for r in m["summary"]]
    assert methods[:5] == ["MLE net", "MAP net", "NUTS posterior", "NUTS, chains stacked",
                           "ADVI (mean-field)"]
    assert all(method.startswith("published") for method in methods[5:])
    nuts = [r for r in m["per_split"] if r["method"] == "NUTS posterior"][0]
    assert np.isfinite(nuts["f_rhat_max"])  # function-space diagnostics on the NUTS row


def test_bnn_classification_e2e(tmp_path):
    from workflows import bnn as bnn_wf

    _, m = _run(bnn_wf, tmp_path, "--task", "classification", "--hidden", "3")
    X, y = datasets.wells()
    rate = y.mean()
    # Independent floor: a constant predictor at the base rate has NLL = entropy of the rate.
    floor = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert m["metrics"]["NUTS posterior"]["nll_nats"] < floor
    assert m["metrics"]["MLE net"]["nll_nats"] < floor


def test_evidence_e2e(tmp_path):
    from scipy import stats

    from workflows import evidence

    out, m = _run(evidence, tmp_path, "--batches", "3")
    smc = {r["model"].split(" (")[0]: r for r in m["smc_vs_closed"]}
    y = datasets.newcomb().to_numpy()
    n, sigma = y.size, y.std()
    ref = stats.multivariate_normal(np.zeros(n), sigma**2 * np.eye(n) + 50.0**2).logpdf(y)
    assert smc["normal mean, σ known"]["closed form (nats)"] == pytest.approx(ref, abs=1e-8)
    assert all(abs(r["z = (SMC - exact)/se"]) < 4 for r in m["smc_vs_closed"])
    X, yk = datasets.kidiq()
    big = sm.OLS(yk, sm.add_constant(X[["mom_hs", "mom_iq"]])).fit()
    small = sm.OLS(yk, sm.add_constant(X[["mom_iq"]])).fit()
    assert m["lrt"]["statistic"] == pytest.approx(2 * (big.llf - small.llf), rel=1e-6)
    rows = {r["in favour of including mom_hs (positive: keep it)"]: r["nats"] for r in m["bayes_factor"]}
    assert rows["−½ ΔBIC (Schwarz approximation of log BF)"] == pytest.approx(-(big.bic - small.bic) / 2, rel=1e-6)
    assert rows["−½ ΔAIC"] == pytest.approx(-(big.aic - small.aic) / 2, rel=1e-6)
    # Jeffreys-Lindley: past the peak, the log BF falls by log(10) per tenfold wider slope prior
    sweep = pd.DataFrame(m["sweep"])
    wide = sweep[sweep["c"] >= 100]
    slope = np.polyfit(np.log(wide["c"]), wide["log BF (with:without)"], 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.01)
    assert max(m["conjugate_sequential"]["max_relative_difference"].values()) < 1e-10


def test_bnn_with_the_jax_sampler_on_cpu(tmp_path):
    """The GPU path (--sampler numpyro) runs here on the CPU; the report names JAX's device."""
    pytest.importorskip("numpyro")
    from workflows import bnn as bnn_wf

    _, m = _run(bnn_wf, tmp_path, "--sampler", "numpyro", "--hidden", "3", "--draws", "100",
                "--tune", "100")
    assert m["jax_devices"].startswith(("cpu", "gpu", "cuda"))
    # the MLE net is the same whatever sampler: compare to a constant predictor's RMSE
    d = datasets.uci("yacht", 0)
    const_rmse = float(np.sqrt(np.mean((d["y_test_original"] - d["y_mean"]) ** 2)))
    assert m["metrics"]["NUTS posterior"]["rmse"] < const_rmse
