"""Fitting is testable without rendering: fit_section returns numbers, no report involved;
render_section turns them into a report without fitting again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from models.families import gaussian
from models.inference import SamplerConfig
from workflows.options import Settings
from workflows.report import Report
from workflows.sections import SectionSpec, fit_section, render_section

Y = stats.norm(3.0, 2.0).rvs(size=40, random_state=np.random.default_rng(8))


@pytest.fixture(scope="module")
def section():
    s = Settings(SamplerConfig(draws=400, tune=400, chains=2, seed=3), Path("unused"), True)
    spec = SectionSpec("normal", math="", data_note="", ppc="continuous")
    return fit_section(gaussian.build(Y), spec, s)


def test_fit_section_returns_numbers_an_independent_computation_reproduces(section):
    # MLE: the closed form (mean, sd with divisor N), from numpy alone
    assert section.mle.params["mu"] == pytest.approx(Y.mean(), rel=1e-8)
    assert section.mle.params["sigma"] == pytest.approx(Y.std(ddof=0), rel=1e-6)
    # posterior rows: recomputed with xarray from the fitted draws
    post = section.idata["posterior"]
    for name in ("mu", "sigma"):
        row = section.comparison.loc[name]
        assert row["post_mean"] == pytest.approx(float(post[name].mean()), rel=1e-12)
        assert row["shift_in_se"] == pytest.approx(
            (float(post[name].mean()) - row["mle"]) / row["se"], rel=1e-9)
    assert "posterior_predictive" in section.idata.children  # ppc drawn when asked
    assert section.fit is not None and 0 <= section.fit.loo_pit_p <= 1
    assert set(section.ranks.index) == {"mu", "sigma"}


def test_render_section_writes_what_was_fitted(section):
    report = Report("x", "x")
    render_section(report, section, quick=True)
    record = report.metrics["sections"]["normal"]
    assert record["mle"]["params"]["mu"] == section.mle.params["mu"]
    assert record["comparison"] is section.comparison
    assert [v["model"] for v in report.verdicts] == ["normal"]


def test_display_rows_keeps_one_triangle_and_drops_constants_and_other_variables():
    """A hand-made comparison: cov's mirror rows (equal in every column) shown once, a
    constant (zero posterior sd, no SE) and a variable outside table_vars left out, counted."""
    import numpy as np
    import pandas as pd

    from workflows.sections import display_rows

    def row(v, sd=0.1, se=0.1):
        return {"mle": v, "se": se, "post_mean": v, "post_sd": sd}

    t = pd.DataFrame.from_dict({
        "mu[a]": row(1.0), "cov[a, a]": row(2.0), "cov[a, b]": row(0.5), "cov[b, a]": row(0.5),
        "cov[b, b]": row(3.0), "corr[a, a]": row(1.0, sd=0.0, se=np.nan),
        "chol[0]": row(1.4)}, orient="index")
    shown, note = display_rows(t, ("mu", "cov", "corr"))
    assert shown == ["mu[a]", "cov[a, a]", "cov[a, b]", "cov[b, b]"]
    assert note.startswith("3 of 7 rows not shown (of cov, corr, chol")
    t.loc["cov[b, a]", "post_mean"] = 0.6  # not symmetric: both rows are information
    assert "cov[b, a]" in display_rows(t, None)[0]


def test_grouped_header_spans_its_columns():
    import pandas as pd

    from workflows.report import Report

    r = Report("t", "t")
    df = pd.DataFrame([[1.0, 2.0, 3.0]], index=pd.Index(["x"], name="parameter"),
                      columns=pd.MultiIndex.from_tuples([("MLE", "estimate"), ("MLE", "SE"),
                                                         ("", "shift_in_se")]))
    r.table(df)
    html = r.blocks[-1]
    assert '<th colspan="2" class="group mle">MLE</th>' in html
    assert '<th rowspan="2">parameter</th>' in html and "<th>shift_in_se</th>" in html
    assert html.count("<td>") == 4  # the label and three numbers: nothing lost


def test_sentences_and_first_screen_read_the_rows_the_table_shows(section, monkeypatch):
    """The MVN page said 'Where they disagree (12 of 49 parameters)' and listed chol_corr[2, 3]
    and its mirror chol_corr[3, 2], warned of 'no MLE comparison for chol_corr[0, 0]' (a
    constant), and its first screen gave 'credible/Wald width 0.00 to 1.15' (from a diagonal
    element of a correlation matrix), beside a table showing mu and one triangle of cov, all
    within 0.5 SE and 20%. A hand-made comparison: the table shows mu[a] and cov[a, b]."""
    import dataclasses
    import html
    import re

    import matplotlib.pyplot as plt
    import pandas as pd

    from workflows import sections

    def row(v, shift, ratio, sd=0.1, se=0.1):
        return {"mle": v, "se": se, "wald_lb": v - 2 * se, "wald_ub": v + 2 * se,
                "post_mean": v + shift * se, "post_sd": sd, "eti_lb": v - 2 * sd,
                "eti_ub": v + 2 * sd, "shift_in_se": shift, "width_ratio": ratio}

    comparison = pd.DataFrame.from_dict({
        "mu[a]": row(1.0, 0.1, 1.0), "cov[a, b]": row(0.5, -0.3, 1.05),
        "cov[b, a]": row(0.5, -0.3, 1.05),
        "corr[a, a]": row(1.0, np.nan, np.nan, sd=0.0, se=np.nan),
        "corr[a, b]": row(0.3, -0.9, 1.15), "corr[b, a]": row(0.3, -0.9, 1.15),
        "corr[b, b]": row(1.0, 1e-3, 0.0, sd=1e-16, se=1e-3)}, orient="index")
    spec = dataclasses.replace(section.spec, table_vars=("mu", "cov"))
    sensitivity = pd.DataFrame({"prior": [0.01, 0.20, 0.20, 0.5, 0.5],
                                "likelihood": [0.1] * 5, "diagnosis": ["-"] * 5},
                               index=["mu[a]", "cov[a, b]", "cov[b, a]", "corr[a, b]",
                                      "corr[b, a]"])
    f = dataclasses.replace(section, spec=spec, comparison=comparison, laplace=None, road=None,
                            sensitivity=sensitivity, sensitivity_data=object())
    report = Report("x", "x")
    sections._mle_and_comparison(report, f)
    text = html.unescape(" ".join(report.blocks))
    assert "MLE and posterior agree" in text
    assert "Where they disagree" not in text and "No MLE comparison" not in text
    assert re.search(r"corr\[", text.split("rows not shown")[1]) is None
    assert sections._what(f).endswith("Largest MLE-to-posterior shift: cov[a, b] -0.30 SE; "
                                      "credible/Wald width 1.00 to 1.05")
    plotted = []
    monkeypatch.setattr(sections.plots, "psense",
                        lambda data, labels: plotted.append(labels) or plt.figure())
    sections._psense_figure(report, f, top=1)
    assert plotted == [["cov[a, b]"]]
    assert "(1 most prior-sensitive of 2 parameters;" in html.unescape(report.blocks[-1])


def test_prior_sensitivity_sentence_counts_only_the_rows_it_checked(section):
    """The radon page said 'every parameter is likelihood-dominated' above a table whose 87
    alpha, mu_alpha and sigma_alpha rows had no sensitivity ('–': psense ran on beta and sigma
    only)."""
    import dataclasses
    import html

    from workflows import sections

    assert section.sensitivity is not None and set(section.sensitivity.index) == {"mu", "sigma"}
    assert (section.sensitivity["prior"] < 0.05).all()  # both likelihood-dominated here
    report = Report("x", "x")
    sections._why_they_differ(report, section)
    assert "every parameter is likelihood-dominated" in html.unescape(report.blocks[-1])
    only_sigma = dataclasses.replace(section, sensitivity=section.sensitivity.loc[["sigma"]],
                                     road=section.road)
    report = Report("x", "x")
    sections._why_they_differ(report, only_sigma)
    text = html.unescape(report.blocks[-1])
    assert "every parameter" not in text
    assert ("the one parameter checked is likelihood-dominated (prior sensitivity below 0.05); "
            "the other 1 (mu) was not checked ('–' in the table).") in text
    # every checked row flagged (the separation page): no vacuous 'every other ...' clause
    flagged = section.sensitivity.loc[["sigma"]].assign(diagnosis="prior-data conflict")
    report = Report("x", "x")
    sections._why_they_differ(report, dataclasses.replace(only_sigma, sensitivity=flagged))
    assert ("Prior sensitivity (power-scaling): prior-data conflict: sigma; the other 1 (mu) was "
            "not checked ('–' in the table).") in html.unescape(report.blocks[-1])
