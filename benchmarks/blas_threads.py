"""How much two processes sharing the cores lose to BLAS thread pools that each assume the
whole machine: the measurement behind ``workflows.cli.job_environment`` and the tests'
one-thread BLAS (``tests/conftest.py``).

    python benchmarks/blas_threads.py [--processes 2] [--rounds 2]

Each round runs the same linear algebra (40 eigendecompositions of a 401 x 401 Gram matrix,
the size of a 50-ReLU GGN Laplace on wine) in ``--processes`` concurrent processes, once with
the BLAS libraries' default thread pools (one thread per core) and once with one thread each
(``OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1``), alternating, and prints each
process's seconds. An environment that already sets those variables is overridden for the
one-thread runs and cleared for the default runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from workflows.cli import THREAD_VARIABLES as VARIABLES  # loads no numpy

WORK = """
import time, numpy as np
J = np.random.default_rng(0).normal(size=(300, 401))
t = time.perf_counter()
for _ in range(40):
    np.linalg.eigh(J.T @ J + np.eye(401))
print(f"{time.perf_counter() - t:.2f}")
"""


def run(processes: int, threads: str | None) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    if threads is not None:
        env.update({v: threads for v in VARIABLES})
    procs = [subprocess.Popen([sys.executable, "-c", WORK], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    return [float(p.communicate()[0]) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, {args.processes} processes at a time; seconds per process")
    for r in range(args.rounds):
        for label, threads in (("default threads", None), ("1 thread", "1")):
            secs = run(args.processes, threads)
            print(f"round {r + 1}, {label:15s}: " + ", ".join(f"{s:.2f}" for s in secs))


if __name__ == "__main__":
    main()
