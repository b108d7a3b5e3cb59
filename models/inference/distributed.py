"""Fan-out of many fits on Dask distributed: the same code on this machine (a ``LocalCluster``,
``workers=N``) or on an existing cluster (``scheduler="tcp://host:port"``).

A task is a plain function call ``fn(*args)`` (for SBC: a model, a chunk of simulated data
sets and their seeds). :func:`run_tasks` submits every task with ``retries=1``, so a task that
raises is retried once by Dask; one that fails twice is REPORTED in the returned failures
(index, error), never silently dropped. Results come back in task order.

Compile once per worker: :func:`worker_cached` keeps compiled objects (nutpie's compiled
model) in the worker process, keyed by the caller, so a worker compiles a model once however
many chunks it runs. PyTensor's and numba's on-disk caches are shared by all workers on a
machine; PyTensor serialises writers with a lock in its compile directory, which is what
makes several worker processes safe (tested with 2 workers from an empty cache).

Without a client (``client=None``) the same task functions run in this process, in order,
with the same retry-once rule: the serial and the distributed path share their code.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence

from models.base import stopwatch

_CACHE: dict = {}
_CACHE_SIZE = 4  # compiled models kept per process; older ones are dropped (dicts keep order)


def worker_cached(key, factory: Callable[[], object]):
    """The object stored under ``key`` in this process, created by ``factory()`` on first use.

    At most the ``_CACHE_SIZE`` most recently created objects are kept, so a long-lived
    process (a worker serving many SBC runs, or the serial path) does not accumulate every
    compiled model it ever built."""
    if key not in _CACHE:
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = factory()
    return _CACHE[key]


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None,
                quiet: bool = False) -> Iterator:
    """A ``dask.distributed.Client``: on ``scheduler`` if given, else on a new LocalCluster of
    ``workers`` single-threaded worker processes (default: one per core). Prints the
    dashboard address. Workers inherit this process's environment (PyTensor flags, caches)."""
    from dask.distributed import Client, LocalCluster

    if scheduler and workers:
        raise ValueError("give either workers (a LocalCluster) or scheduler (an existing "
                         "cluster), not both")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers}")
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        # one thread per worker: nutpie and PyTensor release the GIL only partly, and SBC
        # chunks are independent, so processes, not threads, give the parallelism
        cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1,
                               processes=True, dashboard_address=":0", silence_logs=50)
        client = Client(cluster)
    if not quiet:
        n = len(client.scheduler_info().get("workers", {}))
        print(f"Dask: {n} worker(s), dashboard {client.dashboard_link}", file=sys.stderr, flush=True)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _call(fn, args):
    return fn(*args)


@stopwatch.timed("many fits (fan-out)")
def run_tasks(fn: Callable, tasks: Sequence[tuple], client=None, retries: int = 1,
              on_done: Callable[[int, int], None] | None = None):
    """Run ``fn(*task)`` for every task; returns ``(results, failures)``.

    ``results[i]`` is task i's result or None if it failed after ``1 + retries`` attempts;
    ``failures`` lists ``(i, "ExceptionType: message")`` for each of those. ``on_done(done,
    total)`` is called in this process after each task ends (for progress lines in long jobs).
    """
    results, failures = [None] * len(tasks), []
    if client is None:
        for i, args in enumerate(tasks):
            for attempt in range(retries + 1):
                try:
                    results[i] = fn(*args)
                    break
                except Exception as exc:  # noqa: BLE001 - reported below, never dropped
                    if attempt == retries:
                        failures.append((i, f"{type(exc).__name__}: {exc}"))
            if on_done is not None:
                on_done(i + 1, len(tasks))
        return results, failures
    from dask.distributed import as_completed

    futures = [client.submit(_call, fn, args, retries=retries, pure=False) for args in tasks]
    index = {fut.key: i for i, fut in enumerate(futures)}
    for done, fut in enumerate(as_completed(futures), start=1):
        i = index[fut.key]
        if fut.status == "finished":
            results[i] = fut.result()
        else:
            exc = fut.exception()
            failures.append((i, f"{type(exc).__name__}: {exc}" if exc is not None
                             else f"task {fut.status}"))
        if on_done is not None:
            on_done(done, len(tasks))
    failures.sort()
    return results, failures


def format_failures(failures) -> str:
    return "; ".join(f"task {i}: {msg}" for i, msg in failures)


__all__ = ["dask_client", "run_tasks", "worker_cached", "default_workers", "format_failures"]
