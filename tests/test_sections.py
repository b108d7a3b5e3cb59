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
