"""A workflow killed mid-sampling (SIGINT, SIGKILL) leaves the previous report intact and no
partial files; the next run completes normally."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _start(out: Path, *args: str):
    return subprocess.Popen(
        [sys.executable, "-m", "workflows.gaussian", "--quick", *args, "--out", str(out)],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for(proc, text: str, timeout: float = 300):
    deadline = time.time() + timeout
    for line in proc.stderr:
        if text in line:
            return
        if time.time() > deadline:
            break
    pytest.fail(f"never saw {text!r}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_run_keeps_the_previous_report(tmp_path, sig):
    out = tmp_path / "gaussian"
    out.mkdir()
    (out / "index.html").write_text("previous report")
    # many draws: sampling lasts far longer than the 1 s wait, so the signal lands mid-sampling
    # (with --quick alone a warm machine finishes the first model's sampling in under 1 s)
    proc = _start(out, "--draws", "90000", "--chains", "1")
    _wait_for(proc, "NUTS")  # sampling has started
    time.sleep(1.0)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert (out / "index.html").read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaussian"]  # no temp dirs left
    if sig == signal.SIGINT:  # the next run completes normally and replaces the report
        done = _start(out)
        stdout, _ = done.communicate(timeout=600)
        assert done.returncode == 0, stdout
        assert "Provenance" in (out / "index.html").read_text()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["gaussian"]
