"""``mlebayes``: list and run the workflows.

    mlebayes list
    mlebayes run <workflow> [options]     # options: mlebayes run <workflow> --help
    mlebayes run all [--quick] [--jobs N] [...]   # every workflow, then reports/index.html
"""

from __future__ import annotations

import argparse
import html
import importlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

from workflows import EXTRA, WORKFLOWS

# PyTensor's C backend warns once per process that pip's numpy BLAS cannot be linked; the
# default backend here (numba) does not use it, so the warning is noise for a CLI user.
warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")


def _module(name: str):
    return importlib.import_module(f"workflows.{name}")


def _status(root: Path, name: str, rc: int) -> str:
    """FAILED (no report), "no checks" (nothing sampled, nothing to fail), else PASS/WARN
    with every reason, from the report's own metrics.json."""
    if rc != 0:  # no report written this run (an older metrics.json is not this run's)
        return "FAILED"
    try:
        metrics = json.loads((root / name / "metrics.json").read_text())
    except (OSError, ValueError):
        return "FAILED"
    reasons = metrics.get("failed_checks") or []
    if not reasons and not metrics.get("checks") and not metrics.get("verdicts"):
        return "no checks (nothing is sampled; closed forms and simulations)"
    if not reasons and metrics.get("diagnostics_passed", True):
        return "PASS"
    return "WARN: " + ("; ".join(reasons) if reasons else "a check failed (see the report)")


def _settings(root: Path, names) -> str:
    """The run's sampler settings, from the first report that records them."""
    for name in names:
        try:
            s = json.loads((root / name / "metrics.json").read_text()).get("settings")
        except (OSError, ValueError):
            continue
        if s:
            return ", ".join(f"{k} = {v}" for k, v in s.items())
    return "unknown"


def _timings(root: Path, name: str) -> dict:
    """Seconds per stage of one workflow's run, from its metrics.json ({} if none)."""
    try:
        return json.loads((root / name / "metrics.json").read_text()).get("timings") or {}
    except (OSError, ValueError):
        return {}


def _time_cell(seconds: float, timings: dict) -> str:
    parts = [f"{k} {v:.0f}" for k, v in timings.items() if v >= 0.5]
    return (f"{seconds:.0f} s" + (f'<div class="meta">{html.escape(", ".join(parts))}</div>'
                                   if parts else ""))


def write_index(results: list[tuple[str, str, float, int]], root: Path = Path("reports")) -> Path:
    """``reports/index.html``: date, settings, versions, one row per workflow with its status
    and every WARN reason (or "no checks"), and links to the other reports present
    (``mlebayes run validation`` writes reports/validation/)."""
    from datetime import datetime, timezone

    from workflows.report import versions

    def cell(status: str) -> str:
        if not status.startswith("WARN: "):
            return html.escape(status)
        items = status[len("WARN: "):].split("; ")
        return "<b>WARN</b><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"

    rows = "".join(
        f"<tr><td><a href=\"{n}/index.html\">{n}</a></td><td>{html.escape(d)}</td>"
        f"<td>{_time_cell(t, _timings(root, n))}</td>"
        f"<td class=\"why\">{cell(_status(root, n, rc))}</td></tr>"
        for n, d, t, rc in results)
    others = [n for n in EXTRA if (root / n / "index.html").is_file()]
    extra = ("<p>Other reports here: " + ", ".join(
        f'<a href="{n}/index.html">{n}</a>' for n in others) + " (written by <code>mlebayes run "
        "NAME</code>, not by <code>run all</code>).</p>") if others else (
        "<p>Not run here: " + ", ".join(EXTRA) + " (<code>mlebayes run validation</code> checks "
        "the samplers against simulation-based calibration and reference posteriors).</p>")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mlebayes "
            "reports</title><style>body{font-family:system-ui,sans-serif;max-width:1320px;"
            "margin:2em auto;padding:0 1em}td,th{border:1px solid #ccc;padding:4px 8px;"
            "vertical-align:top}table{border-collapse:collapse}td.why{min-width:28em}td.why ul{margin:0;padding-left:1.2em}"
            ".meta{color:#555;font-size:0.9em}</style>"
            "</head><body><h1>MLE vs posterior: workflow reports</h1>"
            f'<p class="meta">Written {stamp}; settings: {html.escape(_settings(root, [r[0] for r in results]))};'
            f" {html.escape(vers)}.</p><table><tr><th>workflow</th>"
            f"<th>what it shows</th><th>time (seconds per stage)</th><th>status</th></tr>{rows}</table>"
            "<p class=\"meta\">Stages: compile (PyTensor/numba, nutpie), sampling, pointwise "
            "log-likelihood, predictive draws, MLE, Laplace, rendering figures; the rest of a "
            "workflow's time (imports, summaries, LOO, drawing, writing) is not split.</p>"
            f"{extra}"
            "</body></html>")
    root.mkdir(parents=True, exist_ok=True)
    record = [{"workflow": n, "seconds": t, "returncode": rc, "status": _status(root, n, rc),
               "timings": _timings(root, n)} for n, d, t, rc in results]
    (root / "run_all.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp = root / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(root / "index.html")
    return root / "index.html"


RUN_ALL_HELP = """usage: mlebayes run all [--jobs N] [--quick] [sampling options]

Run every workflow (not uci_benchmark) on its bundled data, each into reports/<workflow>/,
then write reports/index.html with every workflow's status.

options:
  --jobs N    workflows at a time, each in its own process (default: the number of cores,
              at most 2); --jobs 1 runs them one after another in this process
  --quick     smoke run: 300 draws, 300 tune, 2 chains, fewer sweep steps

Any other option (--draws, --tune, --chains, --seed, --sampler, --save, --config) is passed
to every workflow: see mlebayes run <workflow> --help. run all takes no --data, --target,
--predictors or --out."""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="mlebayes", description="MLE vs Bayesian posterior workflows "
                                "on PyMC and ArviZ.", epilog="Workflow options: mlebayes run "
                                "<workflow> --help")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the workflows")
    run = sub.add_parser("run", help="run a workflow (or 'all'), writing reports/<workflow>/",
                         add_help=False)
    run.add_argument("workflow", choices=[*WORKFLOWS, *EXTRA, "all"])
    args, rest = p.parse_known_args(argv)
    if args.command == "list":
        for name in WORKFLOWS + EXTRA:
            note = "  [not in 'run all']" if name in EXTRA else ""
            print(f"{name:18s} {_module(name).DESCRIPTION}{note}")
        return 0
    from workflows.running import entry

    if args.workflow != "all":
        return entry(_module(args.workflow).main, rest)
    if any(a in ("-h", "--help") for a in rest):
        print(RUN_ALL_HELP)
        return 0
    if any(a in ("--data", "--out", "--target", "--predictors") for a in rest):
        p.error("run all takes no --data/--target/--predictors/--out; run one workflow for that")
    jobs, rest = _jobs(p, rest)
    os.environ["MLEBAYES_RUN_ALL"] = "1"  # each report links to reports/index.html, written last
    os.environ["MLEBAYES_JOBS"] = str(jobs)  # workflows that fan out share the cores (options)
    start = time.time()
    results = _run_parallel(rest, jobs) if jobs > 1 else _run_in_process(rest, entry)
    if results is None or any(r[3] == 130 for r in results):
        return 130  # interrupted: stop here, leave the index as it was
    index = write_index(results)
    print(f"all workflows done in {time.time() - start:.0f} s ({jobs} at a time; "
          f"{sum(r[2] for r in results):.0f} s summed); open {index.resolve()}")
    return max(r[3] for r in results)


def _jobs(p: argparse.ArgumentParser, rest: list[str]) -> tuple[int, list[str]]:
    """``--jobs N`` (workflows at a time; default: the number of cores, at most 2)."""
    jobs = min(2, os.cpu_count() or 1)
    out, it = [], iter(rest)
    for a in it:
        if a == "--jobs" or a.startswith("--jobs="):
            value = a.split("=", 1)[1] if "=" in a else next(it, "")
            if not value.isdigit() or not 1 <= int(value) <= 16:
                p.error(f"--jobs must be a whole number from 1 to 16, got {value!r}")
            jobs = int(value)
        else:
            out.append(a)
    return jobs, out


def _run_in_process(rest: list[str], entry) -> list:
    results = []
    for name in WORKFLOWS:
        start = time.time()
        rc = entry(_module(name).main, rest)
        results.append((name, _module(name).DESCRIPTION, time.time() - start, rc))
        if rc == 130:
            break
    return results


# Longest first (seconds measured at the default settings on 2 cores), so that the last
# workflow to start is a short one and the two processes finish close together. bnn: since
# its chains start at ensemble members with 4000 draws each, 90-180 s (measured only on a
# shared machine, 2026-11-26), so it goes first.
EXPECTED_SECONDS = {"small_data": 144, "evidence": 107, "regression": 93, "bnn": 180,
                    "hierarchical": 54, "gaussian": 31, "signal_propagation": 12,
                    "likelihood_basics": 3}


# the thread pools of numpy's and scipy's BLAS (OpenBLAS, or MKL/OpenMP builds); read once,
# when the library loads, so they are set in a child's environment before it starts
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def job_environment(environ: dict, jobs: int, cores: int) -> dict:
    """The environment of one of ``jobs`` workflow processes sharing ``cores``: its BLAS
    thread pools get ``cores // jobs`` threads (at least 1), unless ``environ`` sets them.
    OpenBLAS's default, one thread per core in every process, oversubscribes the cores as
    soon as two processes share them, and its threads then wait on each other. On this
    project's 2-core machine (``python benchmarks/blas_threads.py``), two processes doing 40
    eigendecompositions of a 401 x 401 matrix took 5.6-8.0 s each with the default and
    0.57-0.71 s with one thread on an otherwise idle machine, and 214-234 s against 1.6-2.3 s
    beside a 2-worker UCI run; one process alone, 0.43-0.46 s with the default and 0.56-0.58 s
    with one thread, so a workflow run on its own keeps the default. Dask's nanny sets its
    workers to 1 thread for the same reason."""
    threads = str(max(1, cores // max(1, jobs)))
    return {**{v: threads for v in THREAD_VARIABLES}, **environ}


def _run_parallel(rest: list[str], jobs: int) -> list | None:
    """Each workflow in its own process, ``jobs`` at a time, so that one workflow's
    single-threaded steps (graph rewriting, plotting) overlap another's. Measured on 2 cores
    (``make bench``, main job): 689 s one at a time, 606 s two at a time; each workflow then
    takes about twice as long, so most of a run already keeps both cores busy. The results do
    not depend on it (every workflow seeds its own samplers). Progress lines interleave; each
    carries its workflow's name. Returns None if interrupted."""
    order = sorted(WORKFLOWS, key=lambda n: -EXPECTED_SECONDS.get(n, 60))
    running, done = {}, {}
    try:
        while order or running:
            while order and len(running) < jobs:
                name = order.pop(0)
                cmd = [sys.executable, "-m", "workflows.cli", "run", name, *rest]
                env = job_environment(dict(os.environ), jobs, os.cpu_count() or 1)
                running[name] = (subprocess.Popen(cmd, env=env), time.time())
            time.sleep(0.2)
            for name, (proc, start) in list(running.items()):
                if proc.poll() is not None:
                    done[name] = (time.time() - start, proc.returncode)
                    del running[name]
                    if proc.returncode == 130:
                        order.clear()
    except KeyboardInterrupt:  # the children got the same Ctrl-C: let them stop cleanly
        for proc, _ in running.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        return None
    return [(n, _module(n).DESCRIPTION, *done[n]) for n in WORKFLOWS if n in done]


if __name__ == "__main__":
    raise SystemExit(main())
