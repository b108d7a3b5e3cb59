"""Fan-out on Dask distributed: same ranks as in process, failed tasks retried once and then
reported (never dropped), compile cache shared by worker processes."""

import numpy as np
import pytest

from models import gaussian, sbc
from models.distributed import dask_client, run_tasks


def _flaky(path, i):
    """Fails on its first attempt (marker file absent), succeeds on the retry."""
    import pathlib

    marker = pathlib.Path(path) / f"attempted-{i}"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError(f"first attempt of task {i}")
    return i * 10


def _broken(i):
    if i == 2:
        raise ValueError("task 2 always fails")
    return i


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, quiet=True) as c:
        yield c


@pytest.mark.parametrize("use_client", [False, True])
def test_failed_task_is_retried_once_then_reported(tmp_path, client, use_client):
    c = client if use_client else None
    results, failures = run_tasks(_flaky, [(str(tmp_path), i) for i in range(4)], client=c)
    assert results == [0, 10, 20, 30] and failures == []
    results, failures = run_tasks(_broken, [(i,) for i in range(4)], client=c)
    assert results == [0, 1, None, 3]
    assert len(failures) == 1 and failures[0][0] == 2 and "task 2 always fails" in failures[0][1]


def test_sbc_on_two_workers_gives_the_in_process_ranks(client, tmp_path, monkeypatch):
    """Same seeds -> identical ranks whether the simulations run here or on 2 Dask workers.
    Both worker processes compile the model into the one on-disk PyTensor cache."""
    model = gaussian.build(np.random.default_rng(0).normal(size=12))
    here = sbc.run_sbc(model, n_sims=12, draws=100, tune=100, thin=5, seed=4)
    there = sbc.run_sbc(model, n_sims=12, draws=100, tune=100, thin=5, seed=4, client=client)
    assert there.failures == []
    assert here.ranks.equals(there.ranks)
    assert here.ranks.shape == (12, 2)


def test_client_arguments_are_checked():
    with pytest.raises(ValueError, match="not both"):
        with dask_client(workers=2, scheduler="tcp://127.0.0.1:1"):
            pass
    with pytest.raises(ValueError, match="workers must be a positive"):
        with dask_client(workers=0):
            pass


def test_worker_cache_is_bounded():
    from models import distributed

    built = []
    for k in range(distributed._CACHE_SIZE + 3):
        distributed.worker_cached(("test", k), lambda k=k: built.append(k) or k)
    assert len(distributed._CACHE) <= distributed._CACHE_SIZE
    assert distributed.worker_cached(("test", 0), lambda: "rebuilt") == "rebuilt"  # evicted
    last = distributed._CACHE_SIZE + 2
    assert distributed.worker_cached(("test", last), lambda: "rebuilt") == last  # kept
