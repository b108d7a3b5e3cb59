"""Every workflow end to end in --quick mode; the numbers in metrics.json are checked against
independent references (statsmodels, numpy closed forms), and the files beside the report."""

import json
import shutil
import subprocess

import arviz as az
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from models.base.splits import random_split
from models import datasets
from workflows import gaussian, hierarchical, likelihood_basics, regression, small_data


def _run(module, tmp_path, *args):
    """A --quick run; full .nc files (the oracle re-reads the pointwise log-likelihood)
    unless the test asks for --save small."""
    out = tmp_path / module.NAME
    save = [] if "--save" in args else ["--save", "full"]
    assert module.main(["--quick", "--out", str(out), *save, *args]) == 0
    files = {p.name for p in out.iterdir()}
    assert {"index.html", "metrics.json"} <= files
    m = json.loads((out / "metrics.json").read_text())
    _oracle(out, m)
    _browser(out)
    return out, m


def _browser(out):
    """The page as a reader sees it (headless Chromium, 1400 x 900): verdict and contents on
    the first screen, no table wider than the page, every image loaded, every link resolves."""
    import report_audit

    if report_audit.chromium() is None:
        return  # CI installs Chromium; a machine without it still runs the numbers' checks
    assert report_audit.problems(report_audit.audit(out / "index.html")) == []


# ------------------------------------------------------------------ the oracle
def _by_label(da):
    """label -> 1-D draws of every scalar in a posterior DataArray, labelled independently of
    the code under test: numpy's ndindex over the variable's own dims, coordinate values
    looked up one by one."""
    out = {}
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    for idx in np.ndindex(*[da.sizes[d] for d in dims]):
        sel = da.isel(dict(zip(dims, idx)))
        names = [str(da[d].values[i]) if d in da.coords else str(i) for d, i in zip(dims, idx)]
        label = f"{da.name}[{', '.join(names)}]" if dims else str(da.name)
        out[label] = np.asarray(sel.values, dtype=float).ravel()
    return out


def _oracle(out, m):
    """Every posterior number in summary.csv and every comparison table in metrics.json,
    recomputed with numpy from the saved DataTree; shift_in_se and width_ratio from the table's
    own columns. A single mislabelled row fails."""
    import arviz as az

    files = m.get("summary_files", {})
    draws_of = {}
    for section, name in files.items():
        if name is None:
            continue
        post = az.from_netcdf(out / name)["posterior"].to_dataset()
        draws_of[section] = {k: v for n in post.data_vars for k, v in _by_label(post[n]).items()}
    checked = 0
    if (out / "summary.csv").exists():
        summary = pd.read_csv(out / "summary.csv")
        for _, row in summary.iterrows():
            if row["section"] not in draws_of:
                continue
            d = draws_of[row["section"]][row["parameter"]]
            assert row["mean"] == pytest.approx(d.mean(), rel=1e-9, abs=1e-12), row["parameter"]
            assert row["sd"] == pytest.approx(d.std(ddof=1), rel=1e-9, abs=1e-12), row["parameter"]
            lo, hi = np.quantile(d, [0.025, 0.975])
            assert row["eti95_lb"] == pytest.approx(lo, rel=1e-9, abs=1e-12), row["parameter"]
            assert row["eti95_ub"] == pytest.approx(hi, rel=1e-9, abs=1e-12), row["parameter"]
            checked += 1
    for title, section in m.get("sections", {}).items():
        if title not in draws_of or "comparison" not in section:
            continue
        for label, r in section["comparison"].items():
            d = draws_of[title][label]
            assert r["post_mean"] == pytest.approx(d.mean(), rel=1e-9, abs=1e-12), label
            assert r["post_sd"] == pytest.approx(d.std(ddof=1), rel=1e-9, abs=1e-12), label
            lo, hi = np.quantile(d, [0.025, 0.975])
            assert (r["eti_lb"], r["eti_ub"]) == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)
            if r["se"] is not None and r["se"] > 0:
                assert r["shift_in_se"] == pytest.approx((d.mean() - r["mle"]) / r["se"], rel=1e-9)
                assert r["wald_ub"] - r["wald_lb"] == pytest.approx(2 * 1.959963985 * r["se"], rel=1e-8)
            checked += 1
        for label, w in (section.get("why_they_differ") or {}).items():
            # the "why they differ" row: its derived columns from the comparison's own
            # (oracle-checked) MLE and the draws' mean and sd
            r, d = section["comparison"][label], draws_of[title][label]
            if r["shift_in_se"] is None:
                assert w["shift_in_se"] is None
            else:
                assert w["shift_in_se"] == pytest.approx(r["shift_in_se"], rel=1e-12)
            if w.get("laplace_mean") is not None:
                with np.errstate(invalid="ignore", divide="ignore"):
                    expect = (d.mean() - w["laplace_mean"]) / d.std(ddof=1)
                if not np.isfinite(expect):  # a constant (the correlation's diagonal)
                    assert w["nuts_vs_laplace_sd"] is None, label
                else:
                    assert w["nuts_vs_laplace_sd"] == pytest.approx(expect, rel=1e-9, abs=1e-12)
                if w["prior_share"] is not None:
                    assert w["prior_share"] == pytest.approx(
                        (w["laplace_mean"] - r["mle"]) / (d.mean() - r["mle"]), rel=1e-9)
            if w.get("diagnosis") is not None:
                p_, l_ = w["prior"], w["likelihood"]
                assert w["diagnosis"] == ("prior-data conflict" if p_ >= 0.05 and l_ >= 0.05 else
                                          "prior-sensitive" if p_ > 0.05 > l_ else
                                          "likelihood-dominated"), label
        loo = section.get("loo")
        saved = m.get("saved_groups", {}).get(files.get(title, "").removesuffix(".nc"), {})
        if loo and saved.get("log_likelihood") != "not saved":
            # lppd recomputed with numpy from the saved pointwise log-likelihood (the e2e
            # runs save full files, but for one --save small run): ArviZ's p_loo is
            # lppd - elpd_loo, so the reported pair must match these draws
            from scipy.special import logsumexp

            name = files[title]
            ll = az.from_netcdf(out / name)["log_likelihood"].to_dataset()
            arr = np.concatenate([ll[v].values.reshape(ll[v].shape[0] * ll[v].shape[1], -1)
                                  for v in ll.data_vars], axis=1)
            lppd = float(np.sum(logsumexp(arr, axis=0) - np.log(arr.shape[0])))
            nuts = loo["NUTS"]
            assert nuts["p_loo"] == pytest.approx(lppd - nuts["elpd_loo"], rel=1e-6, abs=1e-6)
            assert nuts["elpd_loo"] <= lppd + 1e-9
            if "Laplace" in loo:
                lap = loo["Laplace"]
                assert lap["elpd_diff"] == pytest.approx(lap["elpd_loo"] - nuts["elpd_loo"],
                                                         rel=1e-9, abs=1e-9)
                assert lap["elpd_diff_bits"] == pytest.approx(lap["elpd_diff"] / np.log(2),
                                                              rel=1e-12)
            checked += 1
    if files:
        assert checked > 0


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
    """Every MLE and SE row of all four comparison tables (what the report shows), by label,
    against statsmodels on the same training rows; posterior columns by the oracle in _run.
    The softmax table is the one ArviZ 1.3's summary mislabelled: its rows must agree."""
    import arviz as az

    out, m = _run(regression, tmp_path)
    fits = {"linear": lambda y, X: sm.OLS(y, X).fit(),
            "logistic": lambda y, X: sm.Logit(y, X).fit(disp=0),
            "softmax": lambda y, X: sm.MNLogit(y, X).fit(disp=0, method="newton", maxiter=100),
            "poisson": lambda y, X: sm.GLM(y, X, family=sm.families.Poisson()).fit()}
    for offset, family in enumerate(["linear", "logistic", "softmax", "poisson"]):
        X, y = regression.FAMILIES[family]["data"]()
        train, _ = random_split(len(y), 20261124 + offset)
        Xtr, ytr = X.iloc[train], y.iloc[train]
        ref = fits[family](ytr, sm.add_constant(Xtr))
        params, bse = ref.params, ref.bse
        if family == "linear":  # the observed information uses RSS/N, statsmodels RSS/(N-p)
            bse = np.sqrt(np.diag(ref.cov_params(scale=ref.ssr / ref.nobs)))
            bse = pd.Series(bse, index=params.index)
        expected = {}
        if family == "softmax":
            classes = sorted(ytr.unique())[1:]
            for j, k in enumerate(classes):
                expected[f"intercept[{k}]"] = (params.iloc[0, j], bse.iloc[0, j])
                for i, col in enumerate(Xtr.columns):
                    expected[f"beta[{col}, {k}]"] = (params.iloc[i + 1, j], bse.iloc[i + 1, j])
        else:
            expected["intercept"] = (params.iloc[0], bse.iloc[0])
            for i, col in enumerate(Xtr.columns):
                expected[f"beta[{col}]"] = (params.iloc[i + 1], bse.iloc[i + 1])
        table = m["sections"][f"{family.capitalize()} regression"]["comparison"]
        assert set(expected) <= set(table), family
        for label, (est, se) in expected.items():
            assert table[label]["mle"] == pytest.approx(est, rel=1e-5, abs=1e-8), label
            assert table[label]["se"] == pytest.approx(se, rel=1e-3), label
        if family == "softmax":
            # 708 training rows and weakly informative priors: posterior and MLE agree
            assert max(abs(r["shift_in_se"]) for r in table.values()) < 1
        score = m["sections"][f"{family.capitalize()} regression"]["predictive"]
        assert score["posterior_predictive"]["per_obs_bits"] == pytest.approx(
            score["posterior_predictive"]["per_obs_nats"] / np.log(2), rel=1e-12)
        # weakly informative priors, near-normal posteriors: the Laplace predictive scores
        # the held-out rows within 0.05 nats per observation of the NUTS one
        lap = score["laplace_predictive"]
        assert lap["per_obs_bits"] == pytest.approx(lap["per_obs_nats"] / np.log(2), rel=1e-12)
        assert abs(lap["per_obs_nats"] - score["posterior_predictive"]["per_obs_nats"]) < 0.05
        plug = score["mle_plugin"]["per_obs_nats"]
        for row in ("posterior_predictive", "laplace_predictive"):
            # the paired gain is the difference of the two means; its SE is positive
            r = score[row]
            assert r["gain_vs_plugin_nats"] == pytest.approx(r["per_obs_nats"] - plug, abs=1e-12)
            assert r["gain_se_nats"] > 0
            assert r["gain_se_bits"] == pytest.approx(r["gain_se_nats"] / np.log(2), rel=1e-12)
    assert "calibration" in m["sections"]["Logistic regression"]
    tree = az.from_netcdf(out / "posterior_logistic.nc")
    assert "beta" in tree["posterior"].data_vars


def test_small_data_e2e(tmp_path):
    out, m = _run(small_data, tmp_path, "--save", "small")
    # the default small file: the posterior, not the rows x draws groups (recomputable)
    saved = az.from_netcdf(out / "posterior_separation.nc")
    assert "posterior" in saved.children and "log_likelihood" not in saved.children
    assert m["saved_groups"]["posterior_separation"]["log_likelihood"] == "not saved"
    assert "not saved: log_likelihood" in (out / "index.html").read_text()
    X, y = datasets.wells()
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    full = [r for r in m["sweep"] if r["N"] == len(y)]
    np.testing.assert_allclose([r["MLE"] for r in full], ref.params.values[1:], rtol=1e-5)
    np.testing.assert_allclose([r["SE"] for r in full], ref.bse.values[1:], rtol=1e-3)
    # where the MLE does not exist the table shows no estimate (not where the optimiser stopped)
    assert all(r["MLE"] is None or np.isnan(r["MLE"]) for r in m["sweep"]
               if r["MLE status"] == "does_not_exist")
    sep = m["sections"]["Perfect separation: iris setosa vs versicolor by sepal size"]
    assert sep["mle"]["status"] == "does_not_exist"
    for r in m["coverage"]:  # every simulation accounted for; coverage = hits / counted
        assert r["simulations"] + r["dropped (not converged)"] + r["failed fits"] == 20
        hits = r["coverage"] * r["simulations"]
        assert hits == pytest.approx(round(hits), abs=1e-9)
    assert {r["interval"] for r in m["coverage"]} == {
        "Wald 95% (MLE)", "Laplace 95% (MAP, curvature)", "95% credible (ETI)"}
    # the Laplace column at full N: weak priors, 3,020 households -> within 0.1 SE of
    # statsmodels' MLE; its interval about mean +- 1.96 SE
    for r, est, se in zip(full, ref.params.values[1:], ref.bse.values[1:]):
        assert abs(r["Laplace mean"] - est) < 0.1 * se
        assert (r["Laplace hi"] - r["Laplace lo"]) == pytest.approx(3.92 * se, rel=0.1)
    # the gaps table recomputed by hand from the sweep rows
    gaps = {g["N"]: g for g in m["sweep_gaps"]}
    for n in {r["N"] for r in m["sweep"]}:
        rows = [r for r in m["sweep"] if r["N"] == n]
        lap = max(abs(r["Laplace mean"] - r["post mean"]) / r["post sd"] for r in rows)
        assert gaps[n]["Laplace gap (post sd)"] == pytest.approx(lap, rel=1e-12)
        if all(r["MLE status"] == "ok" for r in rows):
            mle = max(abs(r["MLE"] - r["post mean"]) / r["post sd"] for r in rows)
            assert gaps[n]["MLE gap (post sd)"] == pytest.approx(mle, rel=1e-12)


def test_hierarchical_e2e(tmp_path):
    out, m = _run(hierarchical, tmp_path)
    es = datasets.eight_schools()
    w = 1 / es["sigma"].to_numpy() ** 2
    t2 = m["eight_schools"]["type2_mle"]
    assert t2["tau"] == 0.0 and t2["at_boundary"]
    assert t2["mu"] == pytest.approx(np.sum(w * es["y"]) / np.sum(w), rel=1e-9)
    # the funnel is shown, not hidden: the centered model's divergences in metrics.json are
    # those of its saved draws, and the page states that number
    import arviz as az

    comp = m["eight_schools"]["parametrisations"]
    saved = az.from_netcdf(out / "posterior_eight_schools_centered.nc")
    divergences = int(saved["sample_stats"]["diverging"].values.sum())
    assert comp["centered"]["divergences"] == divergences
    if divergences:
        assert f"({divergences} divergent transitions)" in (out / "index.html").read_text()
    # the funnel has no mode for Laplace in the centered form; the non-centered Laplace tau
    # is compared with the saved posterior's
    funnel = m["eight_schools"]["laplace_funnel"]
    assert "not positive definite" in funnel["centered_laplace_error"]
    neck = [funnel["neck_logp"][k] for k in sorted(funnel["neck_logp"], key=float, reverse=True)]
    assert neck[0] < neck[1] < neck[2]  # rises as tau -> 0
    tau = az.from_netcdf(out / "posterior_eight_schools.nc")["posterior"]["tau"].values.ravel()
    assert funnel["posterior_tau_mean"] == pytest.approx(tau.mean(), rel=1e-9)
    assert "Why the Laplace approximation fails here" in (out / "index.html").read_text()


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

    out, m = _run(signal_propagation, tmp_path)
    he_relu = [r for r in m["layers"] if r["prior"] == "he_normal" and r["activation"] == "relu"]
    assert all(r["q (mean field)"] == pytest.approx(2.0) for r in he_relu)
    # the summary sentence: mean field, the simulation beside it, and the regime and the share
    # of saturated units read from the numbers (it used to say '> 1: chaotic' whatever chi was)
    from html import unescape

    from scipy import stats

    def at20(prior, act):
        return next(r for r in m["layers"] if (r["prior"], r["activation"], r["layer"])
                    == (prior, act, 20))

    page = unescape((out / "index.html").read_text())
    he, ht, nt = at20("he_normal", "relu"), at20("he_normal", "tanh"), at20("standard_normal", "tanh")
    assert (f"He + ReLU keeps q at {he['q (mean field)']:.2f} through 20 layers "
            f"({he['q (sim)']:.2f})") in page
    chi = ht["χ₁ (mean field)"]
    assert f"χ₁ = {chi:.2f} " + ("> 1: chaotic" if chi > 1 else "< 1: ordered") in page
    share = 2 * stats.norm.sf(np.arctanh(0.99) / np.sqrt(nt["q (mean field)"]))
    assert f"where {share:.0%} of the units sit within 0.01 of ±1" in page


def test_bnn_page_says_where_the_divergences_sit(tmp_path):
    """At target acceptance 0.6 the 5-unit net diverges; the page lists, per diverging chain,
    the quantities whose divergent draws sit furthest in the chain's tails. Each listed
    percentile is recomputed here from the saved posterior with scipy's ranks."""
    from html import unescape

    import xarray as xr
    from scipy.stats import rankdata

    from workflows import bnn as bnn_wf

    out, m = _run(bnn_wf, tmp_path, "--hidden", "5", "--target-accept", "0.6")
    fs = m["function_space"]
    diverged = {c for c, k in zip(fs["within_chain"]["chain"], fs["within_chain"]["divergences"])
                if k > 0}
    assert diverged  # 15 divergences in chains 0 and 1 when this was written
    page = unescape((out / "index.html").read_text())
    table = page.split("Where the divergences sit", 1)[1].split("<tbody>", 1)[1].split(
        "</table>", 1)[0]
    rows = [[c.split("</td>")[0] for c in r.split("<td>")[1:]] for r in table.split("</tr>")[:-1]]
    assert {int(r[0]) for r in rows} == diverged and len(rows) == 3 * len(diverged)
    tree = xr.open_datatree(out / "posterior.nc")
    post = tree["posterior"].to_dataset()
    div = tree["sample_stats"]["diverging"].values.astype(bool)
    for chain, quantity, k, pct, *_ in rows:
        c = int(chain)
        name, _, idx = quantity.strip("|").partition("[")
        idx = [i.strip() for i in idx.rstrip("]").split(",")]
        if quantity.startswith("||"):  # the norm of a unit's input weights
            x = np.linalg.norm(post[name].isel(chain=c).sel(hidden_1=int(idx[1])).values, axis=-1)
        elif quantity.startswith("|"):  # the size of a unit's output weight
            x = np.abs(post[name].isel(chain=c).sel(hidden_1=int(idx[0])).values[:, 0])
        else:
            dims = [d for d in post[name].dims if d not in ("chain", "draw")]
            labels = {d: (int(v) if post[d].dtype.kind == "i" else v) for d, v in zip(dims, idx)}
            x = post[name].isel(chain=c).sel(labels).values
        want = ((rankdata(x) - 0.5) / len(x) * 100)[div[c]].mean()
        assert int(k) == div[c].sum() and float(pct) == pytest.approx(want, abs=0.051)


def test_bnn_and_uci_benchmark_e2e(tmp_path):
    from workflows import bnn as bnn_wf
    from workflows import uci_benchmark

    from html import unescape

    # --ggn-noise evidence here (the uci_benchmark run below keeps the default, "map")
    out, m = _run(bnn_wf, tmp_path, "--dataset", "yacht", "--split", "3", "--ggn-noise", "evidence")
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
    # ADVI's and the GGN Laplace's PSIS posterior checks, on the page in words with their k-hat
    advi_check, ggn_check = (m["function_space"]["advi_posterior_check"],
                             m["function_space"]["ggn_laplace"]["posterior_check"])
    assert m["advi"]["posterior_check"] == advi_check
    words = unescape((out / "index.html").read_text())
    k = advi_check["pareto_k"]
    assert (f"parameters (σ included; Yao et al. 2018), give Pareto k̂ "
            f"{'∞' if k is None else f'{k:.2f}'} and an importance ESS of "
            f"{advi_check['importance_ess']:.1f} of 2000: "
            + ("at most ArviZ's 0.70, so it is close to it." if advi_check["passed"] else
               "above ArviZ's 0.70, so it is not.")) in words
    k = ggn_check["pareto_k"]
    assert f"give Pareto k̂ {'∞' if k is None else f'{k:.2f}'}" in words
    # the GGN rows' noise sd by the evidence: recorded, and said with the MAP net's beside it
    ggn = m["function_space"]["ggn_laplace"]
    map_sigma = float(m["deep_ensemble_members"][0]["sigma"])
    assert ggn["noise"] == "evidence" and ggn["sigma"] != map_sigma
    assert (f"σ {ggn['sigma']:.3g}, chosen with it by the evidence (--ggn-noise evidence; the "
            f"MAP net's is {map_sigma:.3g})") in words
    stacking = m["function_space"]["chain_stacking"]
    assert sum(stacking["stacking weight"]) == pytest.approx(1.0, abs=1e-6)
    # ensemble-started chains (the default): one per member, judged chain by chain; the
    # verdict's numbers are the per-chain table's worst values
    fs = m["function_space"]
    assert fs["chains_from"] == "ensemble"
    assert len(fs["within_chain"]["chain"]) == m["settings"]["chains"]
    assert m["sections"]["function space"]["diagnostics"]["r_hat_max"] == pytest.approx(
        max(fs["within_chain"]["split_rhat_max"]))
    # the per-chain table says why each failing chain failed; a passing chain shows a dash
    page = unescape((out / "index.html").read_text())
    table = page.split("why it failed</th>", 1)[1].split("<tbody>", 1)[1].split("</table>", 1)[0]
    cells = [row.split("<td>")[-1].split("</td>")[0] for row in table.split("</tr>")[:-1]]
    passed = fs["within_chain"]["passed"]
    assert len(cells) == len(passed)
    assert [c == "–" for c in cells] == passed  # a dash exactly where the chain passed
    # "where the divergences sit": shown exactly when a chain diverged, with a row for each
    # such chain (the per-chain divergence counts come from the sample stats, chain by chain)
    diverged = {c for c, k in zip(fs["within_chain"]["chain"], fs["within_chain"]["divergences"])
                if k > 0}
    assert ("Where the divergences sit" in page) == bool(diverged)
    assert set(fs.get("divergence_locations", {}).get("chain", [])) == diverged
    assert {"deep ensemble (MAP nets)", "last-layer Laplace", "GGN Laplace (linearised)"} <= set(
        m["metrics"])
    # The deep-ensemble and last-layer Laplace rows recomputed from the saved members and the
    # split: the mixture density with scipy, the output layer by scikit-learn's BayesianRidge.
    from scipy import stats
    from sklearn.linear_model import BayesianRidge

    from models.evaluation import bnn
    from models.evaluation.last_layer import hidden_features

    d = datasets.uci("yacht", 3)
    members = [{k: np.asarray(v) for k, v in p.items()} for p in m["deep_ensemble_members"]]
    assert len(members) == m["settings"]["chains"]
    y, mean_, sd_ = d["y_test_original"], d["y_mean"], d["y_sd"]
    mu = np.stack([bnn.forward(p, d["X_test"], "tanh", 1)[:, 0] for p in members]) * sd_ + mean_
    scale = np.array([float(p["sigma"]) for p in members])[:, None] * sd_
    ll = np.log(stats.norm.pdf(y[None], mu, scale).mean(axis=0)).mean()
    assert m["metrics"]["deep ensemble (MAP nets)"]["test_ll_nats"] == pytest.approx(ll, rel=1e-9)
    ref = BayesianRidge(fit_intercept=False, alpha_1=0, alpha_2=0, lambda_1=0, lambda_2=0,
                        tol=1e-12, max_iter=100_000).fit(
        hidden_features(members[0], d["X_train"], "tanh", 1), d["y_train"])
    f_mean, f_sd = ref.predict(hidden_features(members[0], d["X_test"], "tanh", 1), return_std=True)
    ll = stats.norm.logpdf(y, f_mean * sd_ + mean_, f_sd * sd_).mean()
    assert m["metrics"]["last-layer Laplace"]["test_ll_nats"] == pytest.approx(ll, rel=1e-5)
    _, m = _run(uci_benchmark, tmp_path, "--datasets", "yacht", "--splits", "1", "--advi", "2000")
    published = [r for r in m["summary"] if r["method"] == "published: PBP"]
    assert published and published[0]["RMSE"] == 1.02
    methods = [r["method"] for r in m["summary"]]
    assert methods[:9] == ["MLE net", "MAP net", "deep ensemble (MAP nets)", "last-layer Laplace",
                           "GGN Laplace (linearised)", "GGN Laplace ensemble (mixture)",
                           "NUTS posterior", "NUTS, chains stacked", "ADVI (mean-field)"]
    assert all(method.startswith("published") for method in methods[9:])
    nuts = [r for r in m["per_split"] if r["method"] == "NUTS posterior"][0]
    assert np.isfinite(nuts["f_rhat_max"])  # function-space diagnostics on the NUTS row
    # ADVI's row counts its PSIS posterior check
    advi = [r for r in m["per_split"] if r["method"] == "ADVI (mean-field)"][0]
    assert [r["checks passed"] for r in m["summary"] if r["method"] == "ADVI (mean-field)"] == [
        f"{int(advi['checks_passed'])}/1"]
    # metrics.json names the protocol's options, defaults included
    keys = ("chains_from", "member_pool", "coordinates", "product_power")
    assert {k: m["network"][k] for k in keys} == {
        "chains_from": "ensemble", "member_pool": 0, "coordinates": "weights", "product_power": None}
    # the summary's count of passed splits is the per-split verdicts' own count
    row = [r for r in m["summary"] if r["method"] == "NUTS posterior"][0]
    assert row["checks passed"] == f"{int(nuts['checks_passed'])}/1"
    assert m["checks"]["yacht split 0"] == nuts["checks_passed"]
    # the causes table is saved whether or not a chain failed: its failing-split count is
    # the split's own verdict
    assert [c["splits failing"] for c in m["failure_causes"]] == [int(not nuts["checks_passed"])]
    # the verdict at the top says the same, and each row states its fitting time
    assert m["verdicts"]["NUTS BNN, yacht"]["convergence"]["passed"] == nuts["checks_passed"]
    page = (tmp_path / "uci_benchmark" / "index.html").read_text()
    assert "GGN Laplace ensemble (mixture)" in page.split("have no convergence check")[0]
    ens = [r for r in m["per_split"] if r["method"] == "deep ensemble (MAP nets)"][0]
    assert row["fit s/split"] == pytest.approx(nuts["seconds"]) and nuts["seconds"] > ens["seconds"] > 0
    # the page's best-method sentence: the per-split row with the highest test LL, and, where
    # that is a NUTS row, the split's own verdict in words
    top = max((r for r in m["per_split"]), key=lambda r: r["test_ll_nats"])
    best = m["best"][0]
    assert best["best_ll_method"] == top["method"]
    if top["method"].startswith("NUTS"):
        assert best["checks passed"] == f"{int(nuts['checks_passed'])}/1"
        assert ("passed on all 1 splits" if nuts["checks_passed"] else
                "passed on only 0 of 1 splits") in best["text"]
    elif top["method"].startswith("GGN"):  # the PSIS posterior check of its Gaussian(s)
        assert best["checks passed"] == f"{int(top['checks_passed'])}/1"
    else:
        assert best["checks passed"] == "no checks"


def test_uci_benchmark_without_nuts_e2e(tmp_path):
    """--no-nuts: the point-estimate, ensemble and Laplace rows only, no convergence table,
    no check to pass or fail, and the page says NUTS was not run."""
    from workflows import uci_benchmark

    out, m = _run(uci_benchmark, tmp_path, "--datasets", "yacht", "--splits", "1", "--no-nuts")
    methods = [r["method"] for r in m["summary"] if not r["method"].startswith("published")]
    assert methods == ["MLE net", "MAP net", "deep ensemble (MAP nets)", "last-layer Laplace",
                       "GGN Laplace (linearised)", "GGN Laplace ensemble (mixture)"]
    # no convergence check anywhere; the GGN Laplace rows carry their PSIS posterior check,
    # one per Gaussian (the ensemble's split passes only if every member's does)
    ggn = {r["method"]: r for r in m["per_split"] if r["method"].startswith("GGN")}
    for r in m["summary"]:
        if r["method"].startswith("published"):
            continue
        assert r["checks passed"] == (f"{int(ggn[r['method']]['checks_passed'])}/1"
                                      if r["method"] in ggn else "no checks")
    def k(r):  # metrics.json writes an infinite k-hat (no tail to fit) as null
        return np.inf if r["pareto_k_max"] is None else r["pareto_k_max"]

    assert k(ggn["GGN Laplace ensemble (mixture)"]) >= k(ggn["GGN Laplace (linearised)"])
    (row,) = m["laplace_posterior_check"]
    assert row["GGN Laplace: passed"] == int(ggn["GGN Laplace (linearised)"]["checks_passed"])
    assert m["convergence"] == [] and m["checks"] == {} and not m.get("verdicts")
    page = (out / "index.html").read_text()
    assert "NUTS not run (--no-nuts)" in page and "closed forms" not in page
    # the table caption describes the rows on this page: no NUTS count, and the Laplace
    # ensemble's seconds pay for every member (method_seconds), not one
    from html import unescape

    words = unescape(page)
    assert "on how many splits the NUTS checks passed" not in words
    assert "NUTS was not run, so no row has a convergence check" in words
    assert "NUTS from ensemble starts" not in words
    assert "Are the approximations this network's posterior?" in words
    assert "GGN Laplace ensemble: every member plus a GGN fit around each" in words
    assert "split 0 of the standard 20" in page  # one split, not "splits 0..0"
    # which method predicts best, from the per-split rows by hand, against the targets
    # (deep ensembles' published -1.18; gradient-boosted trees about -0.55 on yacht)
    ll = {}
    for r in m["per_split"]:
        ll.setdefault(r["method"], []).append(r["test_ll_nats"])
    means = {k: float(np.mean(v)) for k, v in ll.items()}
    top = max(means, key=means.get)
    best = m["best"][0]
    assert best["best_ll_method"] == top
    assert best["checks passed"] == (f"{int(ggn[top]['checks_passed'])}/1" if top in ggn
                                     else "no checks")
    assert best["vs_best_published_bnn"] == pytest.approx(means[top] + 1.18, rel=1e-12)
    assert best["vs_gbt"] == pytest.approx(means[top] + 0.55, rel=1e-12)
    gap = means[top] + 1.18
    assert (f"{abs(gap):.3f} nats {'above' if gap >= 0 else 'below'} the best published "
            "BNN-family number -1.18") in best["text"]
    assert f"the best mean test LL is {means[top]:.3f}" in best["text"]
    assert f"nats per point, by the {top} (" in best["text"]
    assert "nan" not in best["text"] and "one split: no standard error" in best["text"]
    for r in m["summary"]:  # nats and bits: the same mean, in two units
        assert r["test LL bits"] == pytest.approx(r["test LL"] / np.log(2), rel=1e-12)


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
    # it samples (SMC, NUTS): its first screen said "no model is sampled in this report"
    first_screen = (out / "index.html").read_text().split('id="verdict"', 1)[1][:600]
    assert "no model is sampled" not in first_screen
    assert "each SMC evidence against its closed form" in first_screen
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
    # the sweep's exact leave-one-out is what ArviZ's PSIS-LOO estimates from exact draws
    exact = rows["ΔELPD-LOO at c = 1 (exact leave-one-out)"]
    assert m["psis_check"]["ΔELPD PSIS-LOO"] == pytest.approx(exact, abs=0.1)
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
