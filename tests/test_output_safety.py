"""--out never destroys what this tool did not write: every refusal happens before any work,
names the path and leaves every existing byte in place."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workflows.report import MARKER, OutputError, Report, check_out_dir
from workflows import likelihood_basics


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _refused(args, monkeypatch) -> str:
    def tripwire(*a, **k):
        raise AssertionError("work started although --out should have been refused")

    monkeypatch.setattr(likelihood_basics, "Report", tripwire)
    with pytest.raises(SystemExit) as exc:
        likelihood_basics.main(args)
    return str(exc.value.code)


def test_a_directory_with_a_users_file_is_refused_and_kept(tmp_path, monkeypatch):
    user = tmp_path / "thesis"
    user.mkdir()
    (user / "thesis.txt").write_text("three years of work")
    before = _snapshot(tmp_path)
    msg = _refused(["--out", str(user)], monkeypatch)
    assert "thesis.txt" in msg and str(user) in msg and msg.startswith("error: --out")
    assert _snapshot(tmp_path) == before


def test_an_existing_file_is_refused_and_kept(tmp_path, monkeypatch):
    f = tmp_path / "results.csv"
    f.write_text("a,b\n1,2\n")
    msg = _refused(["--out", str(f)], monkeypatch)
    assert "not a directory" in msg
    assert f.read_text() == "a,b\n1,2\n" and sorted(os.listdir(tmp_path)) == ["results.csv"]


def test_working_directory_its_parents_and_home_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "project"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    for out in (".", str(work), str(tmp_path), "..", str(Path.home()), "/"):
        msg = _refused(["--out", out], monkeypatch)
        assert "working directory" in msg or "home directory" in msg, (out, msg)
    assert (work / "keep.txt").read_text() == "x"


def test_a_symlink_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    assert "not a directory" in _refused(["--out", str(tmp_path / "link")], monkeypatch)


def test_an_unwritable_parent_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")))
    msg = _refused(["--out", str(tmp_path / "new" / "deeper")], monkeypatch)
    assert msg.startswith("error: --out") and "Permission denied" in msg and "\n" not in msg


@pytest.mark.skipif(shutil.which("chattr") is None, reason="chattr not available")
def test_an_immutable_directory_is_refused_before_work(tmp_path, monkeypatch):
    d = tmp_path / "frozen"
    d.mkdir()
    (d / MARKER).write_text("{}")
    if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i not permitted here")
    try:
        msg = _refused(["--out", str(d)], monkeypatch)
        assert "cannot write" in msg
    finally:
        subprocess.run(["chattr", "-i", str(d)], capture_output=True)


def test_new_empty_and_own_directories_are_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    own = tmp_path / "own"
    own.mkdir()
    (own / MARKER).write_text("{}")
    (own / "index.html").write_text("old report")
    for out in (tmp_path / "new", tmp_path / "empty", own):
        assert check_out_dir(out) == out
        Report("t", "t").write(out)
        assert (out / MARKER).is_file() and (out / "index.html").is_file()
    assert "old report" not in (own / "index.html").read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert (own.stat().st_mode & 0o777) == 0o777 & ~umask  # not mkdtemp's 0700


def test_files_that_appear_during_the_run_are_not_replaced(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    report = Report("t", "t")
    check_out_dir(out)  # empty at the start of the run ...
    (out / "later.txt").write_text("written meanwhile")  # ... a user's file appears
    with pytest.raises(OutputError):
        report.write(out)
    assert (out / "later.txt").read_text() == "written meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_report_written_before_the_marker_existed_is_still_ours(tmp_path):
    """Reports from earlier versions have no marker: index.html + metrics.json naming its
    workflow (+ summary.csv, .nc) is recognised; one extra foreign file is not."""
    old = tmp_path / "regression"
    old.mkdir()
    (old / "index.html").write_text("old")
    (old / "metrics.json").write_text('{"workflow": "regression"}')
    (old / "posterior_linear.nc").write_text("draws")
    assert check_out_dir(old) == old
    (old / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt"):
        check_out_dir(old)


def test_the_page_lists_each_file_at_its_written_size_and_metrics_time_the_writing(tmp_path):
    """metrics.json records how long writing the posterior files took (Report.write times
    them before it writes metrics.json and the page), and the page's file list gives every
    file's size as the file on disk has it: nothing is rewritten after the page is made."""
    import json
    import re

    import numpy as np
    import xarray as xr

    from workflows.report import _size

    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"mu": (("chain", "draw"), np.random.default_rng(0).normal(size=(2, 500)))})})
    report = Report("t", "t")
    report.metrics["timings"] = {"sampling": 1.0}
    out = tmp_path / "r"
    page = report.write(out, {"posterior_t": tree})
    timings = json.loads((out / "metrics.json").read_text())["timings"]
    assert timings["sampling"] == 1.0 and timings["writing files"] > 0
    listed = dict(re.findall(r'<a href="([^"]+)">[^<]+</a> \(([^)]+)\)', page.read_text()))
    assert set(listed) == {"metrics.json", "posterior_t.nc"}
    for name, size in listed.items():
        assert size == _size((out / name).stat().st_size), name


COMPILE_ONE = """
import sys
import pymc as pm
import models  # sets where PyTensor keeps generated source, unless the user chose
import pytensor
with pm.Model() as m:
    pm.Normal("x", 0.0, 1.0)
m.compile_logp()({"x": 0.5})
print(pytensor.config.generated_src_dir)
"""


@pytest.mark.parametrize("chosen", [False, True])
def test_compiling_leaves_nothing_in_the_temp_directory(tmp_path, chosen):
    """PyTensor's numba linker keeps each compiled function's source in a new file in the temp
    directory unless `generated_src_dir` is set (120 files per quick gaussian run, never
    removed). Importing models sets it; a directory the user chose is kept."""
    tmp, compiledir, mine = tmp_path / "tmp", tmp_path / "compiledir", tmp_path / "mine"
    tmp.mkdir()
    flags = f"compiledir={compiledir}" + (f",generated_src_dir={mine}" if chosen else "")
    env = {**os.environ, "TMPDIR": str(tmp), "PYTENSOR_FLAGS": flags,
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    run = subprocess.run([sys.executable, "-c", COMPILE_ONE], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert list(tmp.iterdir()) == []
    where = Path(run.stdout.strip().splitlines()[-1])
    assert where == (mine if chosen else compiledir / "generated_src")
    assert any(where.glob("*.py"))  # the source is kept there, content-addressed
