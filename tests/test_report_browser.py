"""Every report of ``mlebayes run all --quick`` in headless Chromium (slow: the whole run).
The per-workflow end-to-end tests audit their own reports on every run; this one adds the
workflows they do not run (signal propagation, BNN, evidence) and the index page."""

import os
from pathlib import Path

import pytest

import report_audit

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(report_audit.chromium() is None, reason="no headless Chromium")]


def test_every_report_of_run_all_reads_on_one_screen(tmp_path, monkeypatch):
    from workflows import WORKFLOWS, cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLEBAYES_RUN_ALL", raising=False)
    assert cli.main(["run", "all", "--quick"]) == 0  # a WARN is not a failure
    root = Path("reports")
    found = {}
    for name in WORKFLOWS:
        page = root / name / "index.html"
        assert page.is_file(), name
        found[name] = report_audit.problems(report_audit.audit(page))
    assert found == {name: [] for name in WORKFLOWS}
    index = report_audit.audit(root / "index.html")
    assert index["broken_links"] == [] and all(index["images"])
    assert sorted(os.listdir(root)) == sorted([*WORKFLOWS, "index.html"])
