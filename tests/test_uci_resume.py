"""A resumable UCI protocol: each split is saved as it finishes, a rerun loads it instead of
fitting again, a missing split is the only one fitted, and a directory that is not ours (or
holds another protocol's splits) is refused before any work."""

import pytest

from models.evaluation import bnn
from models.inference import SamplerConfig
from workflows.report import OutputError
from workflows.uci_benchmark import SPLITS_MARKER, SplitStore

TINY = bnn.BNNProtocol(bnn.NetworkSpec((2,), "tanh", "xavier_normal"),
                       SamplerConfig(draws=20, tune=20, chains=1, seed=0, init="prior"),
                       mle_maxiter=50)


def test_a_rerun_loads_finished_splits_and_fits_only_the_missing_one(tmp_path, monkeypatch):
    store = SplitStore.open(tmp_path / "splits", TINY)
    first, failures = bnn.uci_splits(["yacht"], 2, TINY, store=store)
    assert failures == [] and store.saved() == ["yacht-00.pkl", "yacht-01.pkl"]

    fitted = []
    real = bnn.evaluate

    def counting(d, protocol, **kw):
        fitted.append(protocol.sampler.seed)
        return real(d, protocol, **kw)

    monkeypatch.setattr(bnn, "evaluate", counting)
    again, _ = bnn.uci_splits(["yacht"], 2, TINY, store=SplitStore.open(tmp_path / "splits", TINY))
    assert fitted == []  # nothing fitted: both splits loaded
    for a, b in zip(first, again):
        assert (a.data, a.split) == (b.data, b.split) and a.metrics == b.metrics

    (tmp_path / "splits" / "yacht-01.pkl").unlink()  # as if killed during split 1
    third, _ = bnn.uci_splits(["yacht"], 2, TINY, store=SplitStore.open(tmp_path / "splits", TINY))
    assert fitted == [TINY.sampler.seed + 1]  # only split 1, with its own seed
    assert third[0].metrics == first[0].metrics


def test_split_store_refuses_what_is_not_its_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="did not write"):
        SplitStore.open(foreign, TINY)
    assert (foreign / "notes.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        SplitStore.open(a_file, TINY)
    ours = SplitStore.open(tmp_path / "ours", TINY)
    assert (ours.directory / SPLITS_MARKER).is_file()
    (ours.directory / "yacht-00.pkl").write_bytes(b"")  # something saved under TINY
    other = TINY.replace(sampler=TINY.sampler.replace(seed=1))
    with pytest.raises(OutputError, match="other settings"):
        SplitStore.open(ours.directory, other)
