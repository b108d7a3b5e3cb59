"""Running a workflow as a command: signals and exit codes (:func:`entry`), progress lines,
and :func:`finish` (the verdicts, metrics.json, the atomic write, one summary line)."""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
import time
import weakref
from dataclasses import dataclass

import pandas as pd

from models.base import stopwatch
from models.base.interrupts import interrupted, note_interrupt
from workflows.options import Settings
from workflows.report import OutputError, Report


def entry(main, argv=None) -> int:
    """Run a workflow's ``main`` as a command: Ctrl-C / SIGTERM stop it with exit 130 and
    one line (no traceback), whatever phase they land in: the signal is recorded
    (:mod:`models.base.interrupts`) before the KeyboardInterrupt is raised, so a library that
    swallows the exception cannot make the run carry on to a report."""
    def handler(signum, frame):
        note_interrupt()
        raise KeyboardInterrupt

    def unraisable(hook_args):
        # A KeyboardInterrupt raised where Python cannot propagate it (a weakref or __del__
        # callback, e.g. during numba compilation) is printed as "Exception ignored ..." and
        # dropped. It is already recorded: print nothing, and deliver the signal once more so
        # that it lands in ordinary code and stops the run now.
        if issubclass(hook_args.exc_type, KeyboardInterrupt):
            # from another thread, a moment later: raised here it would be swallowed again
            threading.Timer(0.05, _thread.interrupt_main).start()
            return
        if interrupted():
            # An object whose constructor the interrupt cut short fails in its __del__ once it
            # is freed (llvmlite's PassBuilder during numba compilation: "'PassBuilder' object
            # has no attribute '_as_parameter_'", seen in CI). The run is already stopping with
            # its one line; this is a consequence of the stop, not a second error.
            return
        default_unraisable(hook_args)

    default_unraisable = sys.unraisablehook
    sys.unraisablehook = unraisable
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            signal.signal(sig, handler)
            installed.append(sig)
    stopwatch.reset()
    try:
        return _run(main, argv, installed)
    finally:
        _forget_unhandled_keyboard_interrupt()
        # a workflow that returned (or raised) prints no more progress lines, even where
        # something still holds its Progress (run all --jobs 1 runs the next one in this process)
        for progress in list(_LIVE):
            progress.close()


def _forget_unhandled_keyboard_interrupt() -> None:
    """Keep the exit code this command returns. CPython 3.12 marks a KeyboardInterrupt that
    leaves code run from a *string* (``exec``/``eval`` of source, i.e. ``PyRun_String``: how
    dataclasses, namedtuples and code generators build functions) as unhandled, even when a
    caller catches it; under ``python -m`` the interpreter then kills itself with SIGINT at
    exit (return code -2) instead of exiting 130. CI saw this once, the signal landing in
    such code while the MLE was being compiled. The mark is cleared at the start of every
    string evaluation, so evaluating an empty one clears it; there is no public API for it."""
    exec("pass", {})  # noqa: S102 - a constant string, run only to clear the interpreter's mark


def _run(main, argv, installed) -> int:
    def note_only(signum, frame):  # while stopping: a second Ctrl-C must not cut the exit
        note_interrupt()

    try:
        rc = main(argv)
        if interrupted():
            raise KeyboardInterrupt
        return rc
    except KeyboardInterrupt:
        for sig in installed:
            signal.signal(sig, note_only)
        print("interrupted: stopped, no report written (a previous report there is unchanged)",
              file=sys.stderr, flush=True)
        return 130
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


_LIVE: "weakref.WeakSet[Progress]" = weakref.WeakSet()  # closed when their workflow returns


class Progress:
    """One line per step on stderr: ``[regression 2/7] sampling logistic (wells)``; a step
    that runs longer than ``every`` seconds (a large data set) adds a line each ``every``
    seconds (``... still running, 60s after: sampling logistic (wells)``), so a long job is
    never silent for minutes."""

    def __init__(self, name: str, total: int, every: float = 30.0):
        self.name, self.total, self.step, self.start = name, total, 0, time.time()
        self.every, self._what, self._lock = every, "", threading.Lock()
        self._ticker: threading.Thread | None = None
        self._generation = 0
        _LIVE.add(self)

    def _line(self, text: str) -> None:
        print(f"[{self.name} {self.step}/{self.total} {time.time() - self.start:5.0f}s] {text}",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        """No more lines (the current step's ticker stops)."""
        with self._lock:
            self._generation += 1

    def __call__(self, what: str) -> None:
        with self._lock:
            self._generation += 1
            self.step += 1
            self._what = what
            self._line(what)
        if self.every:
            # the thread holds a weak reference: a Progress nobody uses any more (its workflow
            # returned) stops its lines instead of printing until the process ends
            self._ticker = threading.Thread(
                target=_tick, args=(weakref.ref(self), self._generation, self.every),
                daemon=True)
            self._ticker.start()


def _tick(ref, generation: int, every: float) -> None:
    """The heartbeat of one :class:`Progress` step: a line every ``every`` seconds until the
    next step, :meth:`Progress.close`, or the Progress is gone."""
    started = time.time()
    while True:
        time.sleep(every)
        progress = ref()
        if progress is None:
            return
        with progress._lock:
            if progress._generation != generation:
                return
            progress._line(f"... still running, {time.time() - started:.0f}s after: "
                           f"{progress._what}")
        del progress


@dataclass(frozen=True)
class Verdict:
    """A pass/fail check that is not a sampler diagnostic (an SBC family, a reference
    posterior), for :func:`finish`: ``passed`` and, when it failed, ``reason`` in words."""

    passed: bool
    reason: str = ""


def _failed_checks(d) -> str:
    """'convergence: r_hat_max = 1.51 (needs <= 1.01), ...' for a Diagnostics object."""
    return "convergence: " + d.failures() if hasattr(d, "failures") else "failed"


def finish(name: str, report: Report, s: Settings, diags: list, posteriors: dict,
           seed, data_sha: str, required: bool = False) -> int:
    """Write the report and print one line. ``diags``: (label, object with ``.passed``).

    ``required``: the checks are the workflow's purpose (validation): any failure prints FAIL
    and returns 1. Otherwise a failed check is a WARN (the report says why) and returns 0."""
    failed = [(label, d) for label, d in diags if not d.passed]
    reasons = [f"{label}: {getattr(d, 'reason', '') or _failed_checks(d)}" for label, d in failed]
    misfit = [v["model"] for v in report.verdicts
              if v["fit"] is not None and not v["fit"][0] and not v["expected"]]
    reasons += [f"{model}: the model does not fit the data (see its model-fit checks)"
                for model in misfit]
    report.provenance(seed, data_sha, s.as_dict())
    report.metrics["workflow"] = name
    report.metrics["settings"] = {**s.as_dict(), "seed": seed}
    report.metrics["data_sha256_16"] = data_sha
    report.metrics["diagnostics_passed"] = not failed
    report.metrics["fit_passed"] = not misfit
    report.metrics["checks"] = {label: bool(d.passed) for label, d in diags}
    report.metrics["failed_checks"] = reasons
    # seconds per stage so far (Report.write adds its own: writing the posterior files)
    report.metrics["timings"] = stopwatch.totals()
    path = report.write(s.out, posteriors, save=s.save)
    word = "FAIL" if required else "WARN"
    verdict = "PASS" if not reasons else f"{word} ({'; '.join(reasons)})"
    if not diags and not report.verdicts:  # nothing was checked: PASS could not have failed
        verdict = "no checks (nothing is sampled)"
    print(f"{name}: {verdict}  report: {path}", flush=True)
    return 1 if (failed and required) else 0


def sentence(text: str) -> str:
    """A message as a sentence: capitalised, one full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def summary_table(items: dict) -> pd.DataFrame:
    return pd.DataFrame({"value": list(items.values())}, index=pd.Index(list(items), name="quantity"))
