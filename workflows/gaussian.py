"""Gaussian: closed-form MLE (the biased variance) vs posterior, for Newcomb's speed-of-light
measurements (univariate) and iris's four measurements (mean vector and covariance)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.base import datasets
from models.families import gaussian
from workflows.report import Report, data_hash
from models.base.checks import DataError
from workflows.options import parser, settings
from workflows.running import entry, finish, Progress
from workflows.sections import model_section, SectionSpec
from workflows.data_input import load_csv, numeric_column

NAME = "gaussian"
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())


def main(argv=None) -> int:
    args = parser(NAME, __doc__, takes_data=True).parse_args(argv)
    s = settings(NAME, args)
    if s.data is not None:
        if not s.target:
            raise SystemExit("error: --data needs --target (the numeric column to model)")
        frame = load_csv(s.data, [s.target])
        y = pd.Series(numeric_column(s.data, frame, s.target), name=s.target)
        Y = None
        label = f"{s.data.name}: column {s.target}"
    else:
        if s.target:
            raise SystemExit("error: --target names a column of --data; give --data too")
        y = datasets.newcomb()
        Y = datasets.iris(("sepal_length", "sepal_width", "petal_length", "petal_width"))[0]
        label = "Newcomb (1882): 66 passage times of light, (time - 24,800) ns"
    try:
        model = gaussian.build(y)
        mvn = gaussian.build_mvn(Y) if Y is not None else None
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None

    progress = Progress(NAME, 8 if mvn is not None else 4)
    report = Report(NAME, "Gaussian: MLE vs posterior")
    closed = gaussian.mle_closed_form(y)
    n = y.size
    section = model_section(
        report, SectionSpec(
            "Univariate normal",
            math="y_i ~ Normal(μ, σ²),  i = 1..N\nμ ~ Normal(ȳ, (10 s_y)²),  σ ~ Exponential(1 / s_y)\n"
                 "MLE: μ̂ = ȳ,  σ̂² = Σ(y_i - ȳ)² / N   (biased: E σ̂² = (N-1)/N σ²)",
            data_note=f"{label}. N = {n}, mean {y.mean():.3f}, sd {y.std(ddof=1):.3f}, min "
                      f"{y.min():.3g}, max {y.max():.3g}.",
        ), model, s, progress=progress)
    mle, idata, diag = section.mle, section.idata, section.diagnostics
    report.table(pd.DataFrame({
        "closed form": [closed["mu"], closed["sigma"], closed["var"], closed["var"] * n / (n - 1)],
        "generic optimiser": [float(mle.params["mu"]), float(mle.params["sigma"]),
                              float(mle.params["sigma"]) ** 2, np.nan],
    }, index=pd.Index(["μ̂", "σ̂", "σ̂² (divisor N)", "s² (divisor N-1)"], name="estimate")),
        digits=10, caption="The optimiser of the model's log-likelihood reproduces the closed form.")
    report.metrics["closed_form"] = closed
    diags = [("normal", diag)]
    posteriors = {"posterior_normal": idata}
    if mvn is not None:
        section = model_section(
            report, SectionSpec(
                "Multivariate normal",
                math="y_i ~ Normal_4(μ, Σ),  Σ = L Lᵀ\nμ_d ~ Normal(ȳ_d, (10 s_d)²),  "
                     "L ~ LKJCholeskyCov(η = 2, sd_d ~ Exponential(1 / s_d))\n"
                     "MLE: μ̂ = ȳ,  Σ̂ = Σ (y_i - ȳ)(y_i - ȳ)ᵀ / N",
                data_note="Iris (Fisher 1936): four measurements (cm) of 150 flowers; one "
                          "4-dimensional Gaussian for all species together.",
                ppc="multivariate",
                seed_offset=1,
                var_names=("mu", "cov"),
                table_vars=("mu", "cov"),
            ), mvn, s, progress=progress)
        mle2, idata2, diag2 = section.mle, section.idata, section.diagnostics
        closed2 = gaussian.mvn_mle_closed_form(Y)
        report.text(f"Max |Σ̂ (optimiser) - Σ̂ (closed form)| = "
                    f"{np.max(np.abs(mle2.params['cov'] - closed2['cov'])):.2e}.", kind="note")
        diags.append(("mvn", diag2))
        posteriors["posterior_mvn"] = idata2
    return finish(NAME, report, s, diags, posteriors, s.seed, data_hash(y, *([Y] if Y is not None else [])))


if __name__ == "__main__":
    raise SystemExit(entry(main))
