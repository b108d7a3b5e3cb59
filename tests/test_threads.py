"""BLAS thread pools where processes share the cores: the tests' own processes and the
workflows `mlebayes run all` starts two at a time (benchmarks/blas_threads.py measures why)."""

import os

import pytest
import scipy.linalg  # noqa: F401  (loads scipy's BLAS too, so that it is counted below)
from threadpoolctl import threadpool_info

from workflows import cli


def test_every_blas_in_a_test_process_runs_one_thread():
    """tests/conftest.py sets the thread variables before numpy loads, and pytest-xdist's
    workers inherit them; without it OpenBLAS starts one thread per core in each."""
    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert pools, "no BLAS library loaded"
    assert {(p["internal_api"], p["num_threads"]) for p in pools} == {
        (p["internal_api"], 1) for p in pools}


@pytest.mark.parametrize("jobs, cores, threads", [(2, 2, "1"), (2, 8, "4"), (3, 2, "1"),
                                                  (1, 16, "16")])
def test_each_workflow_of_run_all_gets_its_share_of_the_cores(jobs, cores, threads):
    env = cli.job_environment({"PATH": "/bin"}, jobs, cores)
    assert env == {"PATH": "/bin", "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
                   "MKL_NUM_THREADS": threads}


def test_a_thread_count_the_user_set_is_kept():
    env = cli.job_environment({"OPENBLAS_NUM_THREADS": "3"}, 2, 2)
    assert env["OPENBLAS_NUM_THREADS"] == "3" and env["OMP_NUM_THREADS"] == "1"


def test_run_all_starts_each_workflow_with_that_environment(monkeypatch):
    """The processes `run all --jobs 2` starts are given the shared-core environment."""
    started = []

    class Finished:
        returncode = 0

        def __init__(self, cmd, env=None):
            started.append((cmd, env))

        def poll(self):
            return 0

    monkeypatch.setattr(cli, "WORKFLOWS", ["likelihood_basics", "gaussian"])
    for name in cli.WORKFLOWS:  # imported before Popen is replaced (PyTensor's import runs it)
        cli._module(name)
    monkeypatch.setattr(cli.subprocess, "Popen", Finished)
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    for variable in cli.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    results = cli._run_parallel([], 2)
    assert [r[0] for r in results] == ["likelihood_basics", "gaussian"]
    assert len(started) == 2
    for cmd, env in started:
        assert cmd[-1] in ("likelihood_basics", "gaussian")
        assert env is not None and env["PATH"] == os.environ["PATH"]
        assert [env[v] for v in cli.THREAD_VARIABLES] == ["1", "1", "1"]
