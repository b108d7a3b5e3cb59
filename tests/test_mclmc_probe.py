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
         "mclmc_ll": -1.0}  # written before --adjusted and --step-scale existed
    (tmp_path / "yacht-3.json").write_text(json.dumps(r))
    same = {"steps": 400, "keep": 100, "adjusted": False, "step_scale": 1.0}
    assert mclmc_probe.stored(tmp_path, "yacht", 3, same)["mclmc_ll"] == -1.0
    assert mclmc_probe.stored(tmp_path, "yacht", 4, same) is None
    assert mclmc_probe.stored(None, "yacht", 3, same) is None
    for other in ({"steps": 800}, {"keep": 50}, {"adjusted": True}, {"step_scale": 0.5}):
        with pytest.raises(SystemExit, match="yacht-3.json was run with"):
            mclmc_probe.stored(tmp_path, "yacht", 3, {**same, **other})
    (tmp_path / "yacht-3.json").write_text(json.dumps({**r, "seed": mclmc_probe.SEED}))
    with pytest.raises(SystemExit, match="pass another --out"):
        mclmc_probe.stored(tmp_path, "yacht", 3, same)
