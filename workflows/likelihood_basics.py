"""Likelihood basics: products underflow, sums of logs do not; Gaussian log-densities;
log keeps the argmax; NLL = cross-entropy in nats and bits with the entropy as its floor;
the Gaussian class-conditional classifier with its constants dropped."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from models.base import datasets, likelihood as lk
from workflows.report import Report, data_hash
from workflows.options import parser, settings
from workflows.running import entry, finish, Progress, summary_table

NAME = "likelihood_basics"
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())


def _underflow(report, seed: int) -> None:
    """1. The product of likelihoods underflows; the sum of logs does not."""
    report.heading("1. The product of likelihoods underflows; the sum of logs does not")
    rows = []
    for n in (10, 100, 1_000, 10_000, 1_000_000):
        d = lk.product_vs_sum_of_logs(n=n, seed=seed)
        rows.append({"n": n, "product of densities": d.product_of_densities,
                     "log(product)": d.log_of_product, "sum of log-densities": d.sum_of_log_densities,
                     "closed form": d.closed_form})
    report.metrics["underflow"] = rows
    report.table(pd.DataFrame(rows).set_index("n"), digits=8,
                 caption="n standard-normal draws, their likelihood under N(0, 1). float64 "
                 "underflows below ~5e-324: the product is 0.0 (log = -inf) long before n = 10^6, "
                 "while the sum of logs equals the closed form -n/2 ln 2π - Σx²/2.")


def _gaussians(report, Xv) -> np.ndarray:
    """2. Gaussian log-densities against scipy; returns iris's MVN log-densities."""
    report.heading("2. Gaussian log-densities in one and many dimensions")
    report.math("log N(x | μ, σ²) = -½ ln(2πσ²) - (x - μ)² / (2σ²)\n"
                "log N_d(x | μ, Σ) = -d/2 ln 2π - Σ_i ln L_ii - ½ ‖L⁻¹(x - μ)‖²,  Σ = L Lᵀ (Cholesky)")
    mean, cov = Xv.mean(0), np.cov(Xv.T, bias=True)
    ours = lk.mvn_logpdf(Xv, mean, cov)
    ref = stats.multivariate_normal(mean, cov).logpdf(Xv)
    uni = lk.gaussian_logpdf(Xv[:, 0], mean[0], np.sqrt(cov[0, 0]))
    report.table(summary_table({
        "max |ours - scipy|, 4-D (iris)": float(np.max(np.abs(ours - ref))),
        "max |ours - scipy|, 1-D": float(np.max(np.abs(uni - stats.norm.logpdf(
            Xv[:, 0], mean[0], np.sqrt(cov[0, 0]))))),
        "log-likelihood of iris under its MLE Gaussian (nats)": float(ours.sum()),
        "same, in bits": float(ours.sum() / np.log(2)),
    }), digits=6)

    return ours


def _argmax(report) -> np.ndarray:
    """3. The log keeps the argmax (Newcomb); returns the data."""
    report.heading("3. The log preserves the argmax")
    x = datasets.newcomb().to_numpy()
    grid = np.linspace(20, 32, 601)
    sd = x.std()
    with np.errstate(under="ignore"):
        lik = np.array([np.prod(stats.norm.pdf(x, m, sd)) for m in grid])
    loglik = np.array([lk.iid_loglik(lk.gaussian_logpdf(x, m, sd)) for m in grid])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
    a1.plot(grid, lik, color="#7570b3")
    a1.set(title="likelihood (product): tiny numbers", xlabel="μ (Newcomb, ns)")
    a2.plot(grid, loglik, color="#d95f02")
    a2.set(title="log-likelihood (sum of logs)", xlabel="μ (Newcomb, ns)")
    for a, v in ((a1, lik), (a2, loglik)):
        a.axvline(grid[np.argmax(v)], ls="--", color="k", lw=1)
    fig.tight_layout()
    report.figure(fig, f"Newcomb's 66 light-passage times: both curves peak at μ = "
                  f"{grid[np.argmax(lik)]:.2f} = {grid[np.argmax(loglik)]:.2f} (the sample mean "
                  f"{x.mean():.2f} on this grid); the product is of order 1e{np.log10(lik.max()):.0f}.")

    return x


def _cross_entropy(report, Xv, codes, mvn_loglik) -> lk.GaussianClassifier:
    """4. NLL = cross-entropy in nats and bits, the entropy as the floor; returns the LDA."""
    report.heading("4. NLL = cross-entropy, in nats and bits; the entropy is the floor")
    clf = lk.GaussianClassifier(shared_cov=True).fit(Xv, codes)
    scores = clf.discriminants(Xv)
    probs = np.exp(scores - scores.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    nll = lk.categorical_nll(codes, probs)
    ce = lk.cross_entropy(lk.one_hot(codes, 3), probs).mean()
    prior = np.bincount(codes) / codes.size
    report.metrics["iris_lda"] = {"nll_per_obs_nats": nll, "cross_entropy_nats": float(ce),
                                  "mvn_loglik_nats": mvn_loglik}
    report.table(summary_table({
        "NLL / N of LDA on iris (nats)": nll,
        "mean cross-entropy H(one-hot, p) (nats)": float(ce),
        "NLL / N (bits)": lk.categorical_nll(codes, probs, unit="bits"),
        "entropy of the class frequencies (bits): NLL of a classifier ignoring x": float(lk.entropy(prior, unit="bits")),
        "entropy of the one-hot labels (bits): the floor": 0.0,
        "KL(one-hot || p), mean (bits) = cross-entropy - floor": float(
            lk.kl_divergence(lk.one_hot(codes, 3), probs, unit="bits").mean()),
    }), digits=6)

    return clf


def _constants_dropped(report, Xv, codes, classes, clf) -> None:
    """5. The Gaussian class-conditional classifier with its constants dropped."""
    report.heading("5. The Gaussian class-conditional classifier with its constants dropped")
    rows = []
    for shared in (True, False):
        c = lk.GaussianClassifier(shared_cov=shared).fit(Xv, codes)
        full, dropped = c.predict(Xv), c.predict(Xv, drop_constants=True)
        rows.append({"covariance": "shared (LDA)" if shared else "per class (QDA)",
                     "dropped terms": "d/2 ln 2π, ½ ln det Σ" if shared else "d/2 ln 2π",
                     "identical decisions": bool(np.array_equal(full, dropped)),
                     "training accuracy": float(np.mean(full == codes))})
    report.table(pd.DataFrame(rows).set_index("covariance"))
    w, b = clf.linear_boundary(1, 2)
    report.text(f"With a shared covariance, the log-odds of {classes[1]} vs {classes[2]} is "
                f"linear in x: w = {np.round(w, 3).tolist()}, b = {b:.3f}: a hyperplane (LDA).")


def main(argv=None) -> int:
    args = parser(NAME, __doc__).parse_args(argv)
    s = settings(NAME, args)
    progress = Progress(NAME, 4)
    report = Report(NAME, "Likelihood basics: sums of logs, Gaussians, cross-entropy")
    progress("product vs sum of logs")
    _underflow(report, s.seed)
    progress("Gaussian log-densities")
    X, y = datasets.iris(("sepal_length", "sepal_width", "petal_length", "petal_width"))
    Xv = X.to_numpy()
    ours = _gaussians(report, Xv)
    x = _argmax(report)
    progress("cross-entropy and the classifier")
    classes = sorted(y.unique())
    codes = y.map({c: i for i, c in enumerate(classes)}).to_numpy()
    clf = _cross_entropy(report, Xv, codes, float(ours.sum()))
    _constants_dropped(report, Xv, codes, classes, clf)
    return finish(NAME, report, s, [], {}, s.seed, data_hash(X, x))

if __name__ == "__main__":
    raise SystemExit(entry(main))
