"""benchmarks/mclmc_probe.py: its per-split store resumes a run and refuses one run with other
settings (its chains are the library's, tested in test_mclmc.py)."""

import json

import pytest

import benchmark_scripts

mclmc_probe = benchmark_scripts.load("mclmc_probe")


def test_store_resumes_and_refuses_other_settings(tmp_path):
    """A split's stored result is loaded when its steps, keep, seed and sampler match; a file
    run with other settings stops the run with one line naming it; none stored: None."""
    r = {"data": "yacht", "split": 3, "steps": 400, "keep": 100, "seed": mclmc_probe.SEED + 3,
         "mclmc_ll": -1.0}  # written before --adjusted, --step-scale and --sigma existed
    (tmp_path / "yacht-3.json").write_text(json.dumps(r))
    same = {"steps": 400, "keep": 100, "adjusted": False, "step_scale": 1.0, "sigma": None}
    assert mclmc_probe.stored(tmp_path, "yacht", 3, same)["mclmc_ll"] == -1.0
    assert mclmc_probe.stored(tmp_path, "yacht", 4, same) is None
    assert mclmc_probe.stored(None, "yacht", 3, same) is None
    for other in ({"steps": 800}, {"keep": 50}, {"adjusted": True}, {"step_scale": 0.5},
                  {"sigma": 0.02}, {"sigma": "evidence"}):
        with pytest.raises(SystemExit, match="yacht-3.json was run with"):
            mclmc_probe.stored(tmp_path, "yacht", 3, {**same, **other})
    (tmp_path / "yacht-3.json").write_text(json.dumps({**r, "seed": mclmc_probe.SEED}))
    with pytest.raises(SystemExit, match="pass another --out"):
        mclmc_probe.stored(tmp_path, "yacht", 3, same)


@pytest.mark.parametrize("args, words", [
    (["--sigma", "0"], "--sigma must be a number > 0 or 'evidence', got 0"),
    (["--sigma", "evidnce"], "--sigma must be a number > 0 or 'evidence', got evidnce"),
    (["--adjusted", "--step-scale", "0.5"], "--step-scale must be in (0, 1], and 1 with"),
])
def test_bad_options_are_refused_in_one_line_before_anything_runs(tmp_path, args, words):
    """A bad option stops the probe with one line naming it, and no --out folder is made."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mclmc_probe.py"
    out = subprocess.run([sys.executable, str(script), "yacht", "1", "--out",
                          str(tmp_path / "o"), *args], capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {words}")
    assert not (tmp_path / "o").exists()


def test_whitened_probe_refuses_an_existing_out_file_before_anything_runs(tmp_path):
    """benchmarks/mclmc_whitened.py never overwrites a file: --out must be new."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mclmc_whitened.py"
    mine = tmp_path / "mine.json"
    mine.write_text("my notes")
    out = subprocess.run([sys.executable, str(script), "yacht", "0", "--out", str(mine)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"error: --out {mine} exists; pass a new file"]
    assert mine.read_text() == "my notes"
