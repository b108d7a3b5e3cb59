"""Benchmarks, measured side by side in one run; writes ``benchmarks/results.md`` (``make
bench``; every table comes from that one run, none is edited by hand or merged from another).

    python benchmarks/run.py            # full (about an hour on 2 cores)
    python benchmarks/run.py --quick    # quicker: --quick workflows, 2 models, fewer draws
    python benchmarks/run.py --sections mle,setup   # some sections only

Sections:

0. Set-up: a fresh clone's install before (pip) and after (uv sync from uv.lock), with an
   empty and a warm package cache.
0. The main job: ``mlebayes run all`` before (one workflow at a time, every .nc group saved
   lossless) and after (two at a time, small files): wall time, seconds per stage of each
   workflow, the size of reports/, and whether both runs wrote the same numbers.
1. Samplers (nutpie, pymc, numpyro; blackjax on request) on the models ``make run`` samples,
   at its settings (4 chains x 1000 draws after 1000 tuning): compile time with a
   fresh and a warm cache, sampling time, minimum bulk ESS per second (sampling only and end
   to end), divergences, and the overhead over the gradient floor: sampling time / (gradient
   evaluations x time of one compiled logp+gradient call in the sampler's own backend); then
   each sampler's end-to-end ESS/s relative to nutpie's, per model. Each
   (model, sampler) runs in a child process twice: with an empty PyTensor/numba compile
   directory ("fresh") and then with the one the first run filled ("warm"); JAX keeps no
   cache between processes, so its fresh and warm compile times measure the same thing.
   The JAX gradient floor is timed inside one jitted loop (as numpyro/blackjax run it).
2. Gradient floor: one logp+gradient call per backend side by side (numba, C, JAX from
   Python, JAX inside a jitted loop): how much of a Python-timed JAX call is dispatch.
3. MLE: fit_mle vs statsmodels on three data sets the tests do not use (Logit, Poisson, OLS),
   each in a fresh process: first, second and repeated calls, estimates and SEs compared.
4. Compile once vs naive: N fits of the wells logistic regression on bootstrap data sets,
   build + pm.sample per fit vs one compiled nutpie model with swapped data.
5. SBC wall time (the validation workflow's families) on 1 vs 2 Dask workers.
6. Large data: ``mlebayes run regression --family logistic`` at default settings on the wells
   data resampled (seeded, with replacement) to 20,000 and 200,000 rows, each in a fresh
   process: wall time, peak resident memory of that process, verdict, size of the saved
   posterior, and how many rows the pointwise checks used.

No number here is asserted by a test; timings belong to this machine and this run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ["logistic", "linear", "eight_schools", "varying_intercepts", "bnn_1x8", "bnn_2x8"]
# nutpie_c: nutpie on PyTensor's cached C functions (models.inference.compile_nutpie, backend "c")
SAMPLERS = ["nutpie", "nutpie_c", "pymc", "numpyro", "blackjax"]
# The default sampler comparison: the models `make run` samples most, at its settings (4 chains
# x 1000 draws after 1000 tuning), for the three samplers the issue asks about. The BNNs are
# measured with --models bnn_1x8,bnn_2x8 (PyMC's own NUTS needs many minutes on them).
DEFAULT_MODELS = ["logistic", "linear", "eight_schools", "varying_intercepts"]
DEFAULT_SAMPLERS = ["nutpie", "nutpie_c", "pymc", "numpyro"]


def build(name: str):
    from models import bnn, datasets, hierarchical, linear, logistic

    if name == "logistic":
        return logistic.build(*datasets.wells())
    if name == "linear":
        return linear.build(*datasets.kidiq())
    if name == "eight_schools":
        d = datasets.eight_schools()
        return hierarchical.build(d["y"].to_numpy(), d["sigma"].to_numpy(), d["school"])
    if name == "varying_intercepts":
        d = datasets.radon()
        return hierarchical.build_varying_intercept(d[["floor"]], d["log_radon"], d["county"])
    if name.startswith("bnn_"):
        layers, width = name[4:].split("x")
        d = datasets.uci("yacht", 0)
        return bnn.build(d["X_train"], d["y_train"], hidden=(int(width),) * int(layers),
                         activation="tanh", prior="xavier_normal")
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def _value_vars(model):
    import numpy as np

    ip = model.initial_point()
    return [np.asarray(ip[v.name]) for v in model.value_vars]


def _jax_grad_time_in_loop(model, n: int = 2000) -> float:
    """Seconds per logp+gradient call INSIDE one jitted loop (``lax.fori_loop``), as the JAX
    samplers call it: no Python dispatch per call. Each iteration moves the point by 1e-30 x
    the gradient, so the calls depend on each other and cannot be hoisted out of the loop."""
    import jax
    import jax.numpy as jnp
    from pymc.sampling.jax import get_jaxified_logp

    logp = get_jaxified_logp(model)
    value_and_grad = jax.value_and_grad(lambda xs: logp(xs))

    def body(_, carry):
        xs, acc = carry
        v, g = value_and_grad(xs)
        return [x + 1e-30 * gi for x, gi in zip(xs, g)], acc + v

    loop = jax.jit(lambda xs: jax.lax.fori_loop(0, n, body, (xs, jnp.zeros(()))))
    xs = [jnp.asarray(v) for v in _value_vars(model)]
    jax.block_until_ready(loop(xs))  # compile
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(loop(xs))
        best = min(best, time.perf_counter() - start)
    return best / n


def _grad_time(model, sampler: str) -> float:
    """Seconds per logp+gradient call, compiled in the sampler's backend, at the initial point.

    C (pymc): timed per call from Python, as PyMC's sampler calls it. numba (nutpie): also
    timed from Python through PyMC's wrapper, which costs a few microseconds per call that
    nutpie, calling the compiled function from Rust, does not pay: for small models
    (eight schools: 8 us here vs 0.08 us for JAX in a loop) nutpie's floor is overstated and
    its overhead understated. JAX (numpyro/blackjax): timed inside one jitted loop, as their
    samplers run it."""
    import numpy as np

    if sampler in ("numpyro", "blackjax"):
        return _jax_grad_time_in_loop(model)
    vals = _value_vars(model)
    mode = {"mode": "NUMBA"} if sampler == "nutpie" else {}  # nutpie_c and pymc: C
    f = model.logp_dlogp_function(ravel_inputs=True, **mode)
    f.set_extra_values({})
    x = np.concatenate([v.ravel() for v in vals])
    f(x)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.5 or n < 20:
        f(x)
        n += 1
    return (time.perf_counter() - start) / n


def _jax_grad_time_from_python(model) -> float:
    """Seconds per jitted logp+gradient call made from Python (includes JAX's dispatch)."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    vals = _value_vars(model)
    logp = get_jaxified_logp(model)
    f = jax.jit(jax.value_and_grad(lambda *a: logp(list(a)), argnums=tuple(range(len(vals)))))
    jax.block_until_ready(f(*vals))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.5 or n < 20:
        jax.block_until_ready(f(*vals))
        n += 1
    return (time.perf_counter() - start) / n


def gradient_floor_section(models) -> list[dict]:
    """One logp+gradient evaluation per backend, side by side in this process (microseconds)."""
    import warnings

    warnings.filterwarnings("ignore")
    rows = []
    for name in models:
        model = build(name)
        row = {"model": name, "numba us (nutpie)": 1e6 * _grad_time(model, "nutpie"),
               "C us (pymc)": 1e6 * _grad_time(model, "pymc"),
               "JAX us, called from Python": 1e6 * _jax_grad_time_from_python(model),
               "JAX us, inside a jitted loop": 1e6 * _jax_grad_time_in_loop(model)}
        row["JAX dispatch share"] = 1 - row["JAX us, inside a jitted loop"] / row["JAX us, called from Python"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def child(model_name: str, sampler: str, draws: int, tune: int, chains: int, seed: int) -> dict:
    """One measurement (runs in its own process, compile directory set by the parent)."""
    import warnings

    import arviz as az
    import numpy as np
    import pymc as pm

    warnings.filterwarnings("ignore")
    model = build(model_name)
    start = time.perf_counter()
    if sampler == "nutpie_c":  # as sample_posterior runs it (one core: the chains hold the GIL)
        import nutpie

        from models.inference.sampling import compile_nutpie

        compiled = compile_nutpie(model, backend="c")
        t0 = time.perf_counter()
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=1, seed=seed,
                              save_warmup=True, progress_bar=False)
        idata["posterior"].attrs["sampling_time"] = time.perf_counter() - t0
    else:
        idata = pm.sample(draws=draws, tune=tune, chains=chains, nuts_sampler=sampler,
                          model=model, random_seed=seed, progressbar=False,
                          discard_tuned_samples=False, compute_convergence_checks=False)
    total = time.perf_counter() - start
    sampling = float(idata["posterior"].attrs.get("sampling_time", np.nan))
    stats = idata["sample_stats"]
    steps = float(stats["n_steps"].sum())
    if "warmup_sample_stats" in idata.children:
        steps += float(idata["warmup_sample_stats"]["n_steps"].sum())
        estimated = False
    else:  # numpyro/blackjax through PyMC keep no warmup stats: estimate from the draws' mean
        steps += float(stats["n_steps"].mean()) * tune * chains
        estimated = True
    names = ["sigma"] if model_name.startswith("bnn") else [rv.name for rv in model.free_RVs]
    ess = az.ess(idata, var_names=names, method="bulk").dataset
    ess_min = float(min(np.min(ess[v].values) for v in ess.data_vars))
    div = "diverging" if "diverging" in stats else None
    t_grad = _grad_time(model, sampler)
    return {"model": model_name, "sampler": sampler, "total_s": total, "sampling_s": sampling,
            "compile_s": total - sampling, "ess_bulk_min": ess_min,
            "ess_per_s_sampling": ess_min / sampling, "ess_per_s_end_to_end": ess_min / total,
            "divergences": int(stats[div].sum()) if div else -1, "grad_evals": steps,
            "grad_evals_estimated": estimated, "t_grad_us": 1e6 * t_grad,
            "overhead": sampling / (steps * t_grad)}


def run_child(model_name, sampler, args, cache_dir: Path) -> dict:
    env = dict(os.environ,
               PYTENSOR_FLAGS=f"compiledir={cache_dir / 'pytensor'}",
               NUMBA_CACHE_DIR=str(cache_dir / "numba"), PYTHONWARNINGS="ignore")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", model_name, sampler,
           "--draws", str(args.draws), "--tune", str(args.tune), "--chains", str(args.chains)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"model": model_name, "sampler": sampler, "error": tail[0][:200]}
    return json.loads(lines[-1])


# The benchmark's models come from the regression and hierarchical workflows, which run nutpie
# on the C backend by default (workflows/regression.py, workflows/hierarchical.py).
MAKE_RUN_USES = {"logistic": "nutpie_c", "linear": "nutpie_c", "eight_schools": "nutpie_c",
                 "varying_intercepts": "nutpie_c"}


def sampler_choice(rows: list[dict]) -> list[dict]:
    """Per model: each sampler's end-to-end ESS/s over nutpie's, and the fastest."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["sampler"]: r.get("ess_per_s_end_to_end") for r in rows
              if r["model"] == model and not r.get("error")}
        base = by.get("nutpie")
        row = {"model": model, "make run uses": MAKE_RUN_USES.get(model, "nutpie")}
        for sampler, v in by.items():
            row[sampler] = v / base if base and v is not None else float("nan")
        ok = {k: v for k, v in by.items() if v is not None}
        row["fastest"] = max(ok, key=ok.get) if ok else ""
        out.append(row)
    return out


def samplers_section(args) -> list[dict]:
    rows = []
    for model_name in args.models:
        for sampler in args.samplers:
            with tempfile.TemporaryDirectory(prefix="mlebayes-bench-") as tmp:
                fresh = run_child(model_name, sampler, args, Path(tmp))
                warm = run_child(model_name, sampler, args, Path(tmp))
            row = {**warm, "compile_fresh_s": fresh.get("compile_s", float("nan"))}
            if "error" in fresh or "error" in warm:
                row["error"] = fresh.get("error") or warm.get("error")
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# Data sets the tests do not use (statsmodels' bundled copies, so they need no download):
# Fair's affairs survey (Logit, 6,366 women), the RAND health insurance experiment (Poisson,
# 20,190 person-years) and US state crime rates (OLS, 51 states).
MLE_CASES = {
    "Logit (fair, 6,366 rows)": ("fair", "logistic"),
    "Poisson (randhie, 20,190 rows)": ("randhie", "poisson"),
    "OLS (statecrime, 51 rows)": ("statecrime", "linear"),
}


def _mle_case(label: str):
    """(model, statsmodels fit function) for one of MLE_CASES."""
    import statsmodels.api as sm

    from models import linear, logistic, poisson

    data, family = MLE_CASES[label]
    if data == "fair":
        d = sm.datasets.fair.load_pandas().data
        y = (d["affairs"] > 0).astype(int)
        X = d[["rate_marriage", "age", "yrs_married", "children", "religious", "educ",
               "occupation", "occupation_husb"]]
        return logistic.build(X, y), lambda: sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    if data == "randhie":
        d = sm.datasets.randhie.load_pandas()
        X, y = d.exog, d.endog
        return poisson.build(X, y), lambda: sm.GLM(y, sm.add_constant(X),
                                                   family=sm.families.Poisson()).fit()
    d = sm.datasets.statecrime.load_pandas().data
    X, y = d[["poverty", "hs_grad", "urban", "single"]], d["violent"]
    return linear.build(X, y), lambda: sm.OLS(y, sm.add_constant(X)).fit()


def mle_child(label: str) -> dict:
    """One MLE case in a fresh process: the first fit_mle call in the process (imports and
    model building excluded, compilation included), the second (which compiles the numba
    function and the symbolic Hessian of a GLM), then the median of 5 repeated fits, beside
    the median of 5 statsmodels fits; estimates and SEs compared."""
    import statistics

    import numpy as np

    from models.inference import fit_mle

    model, ref_fit = _mle_case(label)
    start = time.perf_counter()
    fit_mle(model, warn=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    fit_mle(model, warn=False)
    second = time.perf_counter() - start
    again = []
    for _ in range(5):
        start = time.perf_counter()
        mle = fit_mle(model, warn=False)
        again.append(time.perf_counter() - start)
    t_sm = []
    for _ in range(5):
        start = time.perf_counter()
        ref = ref_fit()
        t_sm.append(time.perf_counter() - start)
    ours = np.r_[mle.params["intercept"], mle.params["beta"]]
    ours_se = np.r_[mle.se["intercept"], mle.se["beta"]]
    if "sigma" in mle.params:  # OLS: statsmodels' scale is RSS/(n-k); the MLE's is RSS/n
        ref_se = np.asarray(ref.bse) * np.sqrt((ref.nobs - ref.df_model - 1) / ref.nobs)
    else:
        ref_se = np.asarray(ref.bse)
    repeat, sm_s = statistics.median(again), statistics.median(t_sm)
    return {"model": label, "fit_mle 1st call s": first, "2nd call s": second,
            "repeated s": repeat, "statsmodels s": sm_s, "ratio": repeat / sm_s,
            "max rel. diff estimates": float(np.max(np.abs(ours - ref.params.values)
                                                    / np.abs(ref.params.values))),
            "max rel. diff SEs": float(np.max(np.abs(ours_se - ref_se) / ref_se)),
            "loglik diff": float(mle.loglik - ref.llf), "status": mle.status}


def mle_section() -> list[dict]:
    rows = []
    for label in MLE_CASES:
        p = subprocess.run([sys.executable, __file__, "--mle-child", label], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        rows.append(json.loads(lines[-1]) if p.returncode == 0 and lines
                    else {"model": label, "status": f"error: {p.stderr.strip()[-200:]}"})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _timed(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip()[-300:]}")
    return time.perf_counter() - start


def setup_section() -> list[dict]:
    """Fresh-clone install time, before (pip into a venv, as `make setup` did) and after (uv
    from uv.lock, as it does now), each with an empty and then a warm package cache. The
    committed tree (git archive HEAD) is installed into temporary directories; the machine's
    own caches are not touched (each method gets a cache directory of its own)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlebayes-setup-") as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        src.mkdir()
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x"], cwd=src, input=archive, check=True)
        python = sys.executable if sys.prefix == sys.base_prefix else str(
            Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_PYTHON_DOWNLOADS": "never"}
        env.pop("VIRTUAL_ENV", None)
        for cache in ("empty", "warm"):
            venv = tmp / f"pip-{cache}"
            e = {**env, "PIP_CACHE_DIR": str(tmp / "pip-cache")}
            t = _timed([python, "-m", "venv", str(venv)], src, e)
            t += _timed([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--upgrade",
                         "pip"], src, e)
            t += _timed([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "-e", ".",
                         "--group", "dev"], src, e)
            rows.append({"method": "before: pip install -e . (dev group), resolved at install",
                         "cache": cache, "seconds": t})
            print(json.dumps(rows[-1]), flush=True)
        for cache in ("empty", "warm"):
            work = tmp / f"uv-{cache}"
            subprocess.run(["cp", "-r", str(src), str(work)], check=True)
            e = {**env, "UV_CACHE_DIR": str(tmp / "uv-cache"), "PIP_CACHE_DIR": str(tmp / "uvpip")}
            t = _timed(["make", "setup", f"PYTHON={python}"], work, e)
            rows.append({"method": "after: make setup = uv sync --frozen from uv.lock (uv "
                                   "bootstrapped by pip)", "cache": cache, "seconds": t})
            print(json.dumps(rows[-1]), flush=True)
    return rows


MAIN_JOB = {"before": ["--jobs", "1", "--save", "full"], "after": []}


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main_job_section(extra: list[str]) -> tuple[list[dict], list[dict], str]:
    """`mlebayes run all` (what `make run` runs) before and after, in this one bench run:
    before = one workflow at a time with every .nc group saved lossless (`--jobs 1 --save
    full`, how make run ran until now); after = the defaults (two workflows at a time, `--save
    small`). Each run in an empty working directory (run all writes ./reports). Returns the
    per-workflow rows, the per-run rows and what tests/compare_reports.py says of the two."""
    rows, runs = [], []
    with tempfile.TemporaryDirectory(prefix="mlebayes-mainjob-") as tmp:
        for label, options in MAIN_JOB.items():
            work = Path(tmp) / label
            work.mkdir()
            cmd = [sys.executable, "-m", "workflows.cli", "run", "all", *options, *extra]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            start = time.perf_counter()
            p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                               timeout=5400)
            wall = time.perf_counter() - start
            record = json.loads((work / "reports" / "run_all.json").read_text()) \
                if (work / "reports" / "run_all.json").is_file() else []
            for r in record:
                t = r["timings"]
                rows.append({"run": label, "workflow": r["workflow"], "seconds": r["seconds"],
                             **{k: t.get(k, 0.0) for k in STAGES},
                             "other": r["seconds"] - sum(t.values()),
                             "status": r["status"].split(":")[0]})
            nc = sorted((work / "reports").rglob("*.nc"), key=lambda f: -f.stat().st_size)
            runs.append({"run": label, "options": " ".join(options) or "(defaults)",
                         "wall s": wall, "workflow s summed": sum(r["seconds"] for r in record),
                         "reports MB": _dir_size(work / "reports") / 1e6,
                         "largest file": f"{nc[0].relative_to(work / 'reports')} "
                                         f"{nc[0].stat().st_size / 1e6:.1f} MB" if nc else "",
                         "returncode": p.returncode})
            print(json.dumps(runs[-1]), flush=True)
        cmp = subprocess.run([sys.executable, str(ROOT / "tests" / "compare_reports.py"),
                              str(Path(tmp) / "before" / "reports"),
                              str(Path(tmp) / "after" / "reports")],
                             capture_output=True, text=True)
        lines = [ln for ln in cmp.stdout.splitlines() if ln.strip()]
        numbers = [ln for ln in lines if "saved_groups" not in ln and ".save" not in ln
                   and "compared" not in ln]
        verdict = (lines[-1] if lines else "no output") + (
            "; the only differences are the files' declared groups and the save setting"
            if not numbers else "; differences in numbers: " + " | ".join(numbers[:5]))
    return rows, runs, verdict


STAGES = ["compile", "sampling", "pointwise log-likelihood", "predictive draws", "MLE",
          "Laplace", "LOO", "prior sensitivity", "model-fit checks", "summaries and diagnostics",
          "SMC (compile + sampling)", "many fits (fan-out)", "rendering figures", "writing files"]


def compile_once_section(n_fits: int, draws: int, tune: int) -> dict:
    import warnings

    import numpy as np
    import pymc as pm

    from models import datasets, logistic
    from models.inference import CompiledSampler, SamplerConfig

    warnings.filterwarnings("ignore")
    X, y = datasets.wells()
    rng = np.random.default_rng(1)
    boots = [rng.integers(0, len(y), len(y)) for _ in range(n_fits)]
    start = time.perf_counter()
    for k, idx in enumerate(boots):
        model = logistic.build(X.iloc[idx].reset_index(drop=True), y.iloc[idx].reset_index(drop=True))
        pm.sample(draws=draws, tune=tune, chains=2, nuts_sampler="nutpie", model=model,
                  random_seed=k, progressbar=False, compute_convergence_checks=False)
    naive = time.perf_counter() - start
    start = time.perf_counter()
    sampler = CompiledSampler(logistic.build(X, y), SamplerConfig(draws=draws, tune=tune, chains=2))
    for k, idx in enumerate(boots):
        sampler.sample(k, X=X.to_numpy()[idx], y=y.to_numpy()[idx])
    once = time.perf_counter() - start
    out = {"fits": n_fits, "naive_s": naive, "compile_once_s": once, "speedup": naive / once}
    print(json.dumps(out), flush=True)
    return out


def sbc_section(sims: int) -> list[dict]:
    rows = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(prefix="mlebayes-sbc-") as tmp:
            cmd = [sys.executable, "-m", "workflows.validation", "--sims", str(sims),
                   "--workers", str(workers), "--out", tmp + "/report"]
            start = time.perf_counter()
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=7200)
            wall = time.perf_counter() - start
            m = json.loads((Path(tmp) / "report" / "metrics.json").read_text()) if p.returncode == 0 else {}
        rows.append({"workers": workers, "sims per family": sims, "SBC wall s": m.get("sbc_seconds"),
                     "whole validation run s": wall, "returncode": p.returncode})
        print(json.dumps(rows[-1]), flush=True)
    return rows


LARGE_ROWS = (20_000, 200_000)


def large_data_section(sizes=LARGE_ROWS) -> list[dict]:
    """Time and peak memory of a logistic regression on a large CSV (the wells data resampled
    with replacement, seeded), each run in a fresh process whose peak RSS is read with
    ``getrusage(RUSAGE_CHILDREN)`` by a wrapper process of its own."""
    import numpy as np

    from models.base import datasets

    X, y = datasets.wells()
    frame = X.assign(switch=y.to_numpy())
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlebayes-large-") as tmp:
        tmp = Path(tmp)
        for n in sizes:
            rng = np.random.default_rng(n)
            csv = tmp / f"wells_{n}.csv"
            frame.iloc[rng.integers(0, len(frame), n)].to_csv(csv, index=False)
            out = tmp / f"out_{n}"
            cmd = [sys.executable, "-m", "workflows.cli", "run", "regression", "--data", str(csv),
                   "--target", "switch", "--family", "logistic", "--out", str(out)]
            wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                       "rc = subprocess.run(sys.argv[1:], capture_output=True).returncode; "
                       "print(rc, time.perf_counter() - t, "
                       "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
            p = subprocess.run([sys.executable, "-c", wrapper, *cmd], cwd=ROOT,
                               capture_output=True, text=True, timeout=7200)
            rc, wall, rss_kb = p.stdout.split()[-3:]
            row = {"rows": n, "status": "error" if int(rc) else "ok", "wall s": float(wall),
                   "peak RSS GB": int(rss_kb) / 2**20}
            metrics = out / "metrics.json"
            if metrics.is_file():
                m = json.loads(metrics.read_text())
                loo = m["sections"]["Logistic regression"].get("loo", {})  # {posterior: row}
                used = [r["rows_used"] for r in loo.values()
                        if isinstance(r, dict) and r.get("rows_used")]
                row.update({"verdict": "PASS" if m["diagnostics_passed"] and m["fit_passed"]
                            else "WARN",
                            "training rows": m["sections"]["Logistic regression"]["split"]["train"],
                            "pointwise rows": int(used[0]) if used else "all",
                            "posterior .nc MB": sum(f.stat().st_size for f in out.glob("*.nc")) / 1e6})
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _md_table(rows: list[dict], columns: list[str], digits: int = 3) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.{digits}g}" if abs(v) < 1e5 else f"{v:.3e}"
        return str(v)
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out)


def versions() -> str:
    from importlib import metadata

    names = ["pymc", "pytensor", "nutpie", "arviz", "jax", "numpyro", "blackjax", "dask", "numba"]
    found = []
    for n in names:
        try:
            found.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            found.append(f"{n} (not installed)")
    return ", ".join(found)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 models, 300 draws, 10 fits, 20 SBC sims")
    p.add_argument("--models", default=None, help=f"comma-separated from {MODELS}")
    p.add_argument("--samplers", default=",".join(DEFAULT_SAMPLERS), help=f"from {SAMPLERS}")
    p.add_argument("--draws", type=int, default=None)
    p.add_argument("--tune", type=int, default=None)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--fits", type=int, default=None, help="fits in the compile-once comparison (default 30)")
    p.add_argument("--sbc-sims", type=int, default=None, help="SBC simulations per family (default 200)")
    p.add_argument("--sections",
                   default="setup,main_job,samplers,gradient_floor,mle,compile_once,sbc,large_data")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md")
    p.add_argument("--child", nargs=2, metavar=("MODEL", "SAMPLER"), help=argparse.SUPPRESS)
    p.add_argument("--mle-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.draws = args.draws or (300 if args.quick else 1000)
    args.tune = args.tune or (300 if args.quick else 1000)
    if args.mle_child:
        print(json.dumps(mle_child(args.mle_child)))
        return 0
    if args.child:
        print(json.dumps(child(*args.child, args.draws, args.tune, args.chains, seed=1)))
        return 0
    args.models = (args.models.split(",") if args.models
                   else (["logistic", "bnn_1x8"] if args.quick else DEFAULT_MODELS))
    args.samplers = args.samplers.split(",")
    bad = [m for m in args.models if m not in MODELS] + [s for s in args.samplers if s not in SAMPLERS]
    if bad:
        raise SystemExit(f"error: unknown model or sampler {bad}; models: {MODELS}; samplers: {SAMPLERS}")
    sections = args.sections.split(",")
    fits = args.fits or (10 if args.quick else 30)
    sims = args.sbc_sims or (20 if args.quick else 200)
    started = time.time()
    md = [f"# Benchmarks\n\n`python benchmarks/run.py {' '.join(argv or sys.argv[1:])}` on "
          f"{datetime.date.today().isoformat()}: {platform.platform()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {versions()}.\n"]
    if "setup" in sections:
        rows = setup_section()
        md.append("## Set-up: a fresh clone's install, before (pip) and after (uv.lock)\n")
        md.append(_md_table(rows, ["method", "cache", "seconds"]))
        md.append("\nempty: no package cache (every wheel downloaded); warm: the same method's "
                  "cache from the run above. Both install the runtime and the dev group (tests, "
                  "statsmodels, JAX); the uv rows include installing uv itself into .tools/.\n")
    if "main_job" in sections:
        rows, runs, verdict = main_job_section(["--quick"] if args.quick else [])
        md.append("## The main job: `mlebayes run all` (= `make run`), before and after\n")
        md.append(_md_table(runs, list(runs[0].keys())))
        md.append(f"\nSame seed, same numbers? `tests/compare_reports.py before after`: {verdict}.\n")
        md.append("Per workflow, seconds per stage (other: imports and each workflow's own "
                  "steps outside these stages; "
                  "two workflows at a time share the two cores, so each stage of the after run "
                  "takes longer than alone):\n")
        md.append(_md_table(rows, ["run", "workflow", "seconds", *STAGES, "other", "status"],
                            digits=3))
        md.append("")
    if "samplers" in sections:
        rows = samplers_section(args)
        md.append(f"## Samplers ({args.chains} chains x {args.draws} draws after {args.tune} tuning)\n")
        md.append(_md_table(rows, ["model", "sampler", "compile_fresh_s", "compile_s", "sampling_s",
                                   "ess_bulk_min", "ess_per_s_sampling", "ess_per_s_end_to_end",
                                   "divergences", "grad_evals", "t_grad_us", "overhead", "error"]))
        md.append("\ncompile_fresh_s / compile_s: end-to-end minus sampling time with an empty / a "
                  "warm compile cache. ess: minimum bulk ESS over the free variables (BNNs: of "
                  "sigma; network weights are not identified). overhead: sampling time / "
                  "(gradient evaluations x one compiled logp+gradient call in the sampler's "
                  "backend: numba for nutpie, C for nutpie_c and pymc, JAX for numpyro/blackjax, "
                  "the JAX call "
                  "timed inside a jitted loop as their samplers run it); for numpyro/blackjax the "
                  "warm-up's gradient evaluations are estimated as tune x the draws' mean steps "
                  "(PyMC keeps no warm-up stats for them).\n")
        md.append("### Sampler choice per model: end-to-end ESS/s (warm cache) relative to nutpie\n")
        md.append(_md_table(sampler_choice(rows), ["model", *args.samplers, "fastest",
                                                   "make run uses"]))
        md.append("\nA ratio above 1: that sampler gives more effective draws per second of "
                  "compiling plus sampling than nutpie on numba. nutpie_c: nutpie on PyTensor's "
                  "cached C functions (one core; `--backend c`), the default of the regression "
                  "and hierarchical workflows these models come from.\n")
    if "gradient_floor" in sections:
        rows = gradient_floor_section(args.models)
        md.append("## Gradient floor: one logp+gradient evaluation per backend (microseconds)\n")
        md.append(_md_table(rows, list(rows[0].keys())))
        md.append("\nJAX called from Python pays a dispatch cost per call that numpyro/blackjax, "
                  "whose whole sampling loop is jitted, do not pay; the jitted-loop time is their "
                  "floor. The numba and C columns are also timed from Python through PyMC's "
                  "wrapper (a few microseconds per call): right for PyMC's sampler, which calls "
                  "from Python, an overstatement for nutpie, which calls from Rust; for the "
                  "small models most of those microseconds are that wrapper.\n")
    if "mle" in sections:
        rows = mle_section()
        md.append("## MLE: fit_mle vs statsmodels\n")
        md.append(_md_table(rows, list(rows[0].keys()) if rows else []))
        md.append("\nEach row in a fresh process, on data the tests do not use. fit_mle on these "
                  "GLMs: one start (the builders declare the likelihood unimodal), Newton steps, "
                  "observed information, the existence and identifiability checks. 1st call: "
                  "compiles the log-likelihood and gradient for PyTensor's Python linker "
                  "(imports and model building excluded; no numba), Hessian by differences of "
                  "that gradient; 2nd call: compiles the numba log-likelihood, gradient and "
                  "symbolic Hessian that a sweep reuses; repeated: median of 5 later fits; "
                  "statsmodels: median of 5 fits; ratio = repeated / statsmodels. SEs: OLS's compared on the "
                  "MLE's scale (RSS/n).\n")
    if "compile_once" in sections:
        r = compile_once_section(fits, 300, 300)
        md.append(f"## Compile once vs naive ({fits} bootstrap fits of the wells logistic regression, "
                  "2 chains x 300 draws after 300 tuning, nutpie)\n")
        md.append(_md_table([r], list(r.keys())))
        md.append("")
    if "sbc" in sections:
        rows = sbc_section(sims)
        md.append(f"## SBC on Dask: 1 vs 2 workers ({sims} simulations x 9 families)\n")
        md.append(_md_table(rows, list(rows[0].keys())))
        md.append("")
    if "large_data" in sections:
        rows = large_data_section()
        md.append("## Large data: logistic regression at 20,000 and 200,000 rows (default settings)\n")
        md.append(_md_table(rows, ["rows", "training rows", "status", "verdict", "wall s",
                                   "peak RSS GB", "pointwise rows", "posterior .nc MB"]))
        md.append("\n`mlebayes run regression --data wells_N.csv --target switch --family logistic` "
                  "(the wells data resampled with replacement to N rows, seeded), each in a fresh "
                  "process; peak RSS: that process's maximum resident memory. Above 10,000 "
                  "training rows the pointwise checks (LOO, LOO-PIT, predictive plots, Pareto k) "
                  "use a 5,000-row seeded subsample and the held-out scores are accumulated one "
                  "draw at a time (models/inference/pointwise.py).\n")
    md.append(f"\nTotal benchmark time: {time.time() - started:.0f} s.\n")
    args.out.write_text("\n".join(md))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
