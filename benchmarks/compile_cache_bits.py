"""Same seed, same bits? A UCI split's deep-ensemble members and NUTS draws (energy split 0,
3 tanh units, the 3-unit protocol's settings) fitted three times in fresh processes: twice on
an empty PyTensor/numba compile cache (cold) and once more on the second run's cache (warm).
Prints a hash of the members and of the draws, and the seconds, per run.

    python benchmarks/compile_cache_bits.py numba   # nutpie on numba, PyTensor's default linker
    python benchmarks/compile_cache_bits.py c       # PyTensor's C linker (cvm) and --backend c

Each cache lives in a new temporary directory of its own, removed at the end (nothing else is
touched). A run takes a few minutes on 2 cores.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fit(backend: str) -> str:
    """One fit in this process: members by find_MAP, one NUTS chain from each member."""
    import numpy as np
    import pymc as pm

    from models.base import datasets
    from models.evaluation import bnn
    from models.inference import SamplerConfig
    from models.inference.sampling import CompiledSampler

    d = datasets.uci("energy", 0)
    config = SamplerConfig(seed=20261124, init="prior", draws=4000, tune=2000, chains=4,
                           adaptation="low_rank", target_accept=0.98, backend=backend)
    net = bnn.NetworkSpec((3,), "tanh", "xavier_normal")
    model = net.build_model(d["X_train"], d["y_train"])
    start = time.perf_counter()
    members = []
    for point in bnn.prior_starts(model, 4, seed=config.seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = pm.find_MAP(model=model, initvals=point, return_inferencedata=True,
                               jitter=False, progressbar=False, maxiter=3000)
        members.append({n: np.asarray(tree["posterior"][n].values[0, 0])
                        for n in tree["posterior"].data_vars})
    map_s = time.perf_counter() - start
    start = time.perf_counter()
    draws = CompiledSampler(model, config).sample_from(members, cores=1)
    nuts_s = time.perf_counter() - start
    m_hash = hashlib.sha256(b"".join(np.ascontiguousarray(m[k]).tobytes()
                                     for m in members for k in sorted(m))).hexdigest()[:12]
    d_hash = hashlib.sha256(np.ascontiguousarray(draws["posterior"]["w1"].values)
                            .tobytes()).hexdigest()[:12]
    sigmas = ", ".join(f"{float(m['sigma']):.6f}" for m in members)
    return (f"members {m_hash} (sigma {sigmas}), draws {d_hash}; find_MAP {map_s:.0f} s, "
            f"compile + NUTS {nuts_s:.0f} s")


def main(backend: str) -> None:
    if backend not in ("numba", "c"):
        raise SystemExit("usage: python benchmarks/compile_cache_bits.py numba|c")
    with tempfile.TemporaryDirectory(prefix="mlebayes-cache-bits-") as tmp:
        for label, cache in (("cold", "a"), ("cold", "b"), ("warm", "b")):
            flags = f"base_compiledir={tmp}/{cache}/pytensor"
            if backend == "c":
                flags = "linker=cvm," + flags
            env = {**os.environ, "PYTENSOR_FLAGS": flags, "NUMBA_CACHE_DIR": f"{tmp}/{cache}/numba",
                   "PYTHONPATH": str(ROOT)}
            out = subprocess.run([sys.executable, __file__, "--fit", backend], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip()
            print(f"{backend} {label} cache {cache}: {out.splitlines()[-1]}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fit"]:
        print(fit(sys.argv[2]))
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "")
