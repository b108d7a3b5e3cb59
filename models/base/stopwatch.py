"""Where a run's time goes: seconds accumulated per stage (compile, sampling, MLE, ...).

Library calls wrap their work in ``stage(name)``; a workflow run resets the totals first and
records them at the end (metrics.json ``timings``; ``make bench`` puts them side by side).
Nested stages count once, in the outermost one, so the stages never add up to more than the
wall time. Process-local, no PyMC: floor 0.
"""

from __future__ import annotations

import contextlib
import time

_TOTALS: dict[str, float] = {}
_DEPTH = [0]


def reset() -> None:
    _TOTALS.clear()


def add(name: str, seconds: float) -> None:
    """Count ``seconds`` to stage ``name`` (for times a library measured itself)."""
    _TOTALS[name] = _TOTALS.get(name, 0.0) + float(seconds)


@contextlib.contextmanager
def stage(name: str):
    """Time the block as stage ``name`` (unless it runs inside another stage)."""
    outer = _DEPTH[0] == 0
    _DEPTH[0] += 1
    start = time.perf_counter()
    try:
        yield
    finally:
        _DEPTH[0] -= 1
        if outer:
            add(name, time.perf_counter() - start)


def timed(name: str):
    """Decorator: every call of the function is stage ``name``."""
    import functools

    def wrap(f):
        @functools.wraps(f)
        def inner(*args, **kwargs):
            with stage(name):
                return f(*args, **kwargs)
        return inner
    return wrap


def outermost() -> bool:
    """True outside any stage (a library splitting its own time checks this first)."""
    return _DEPTH[0] == 0


def totals() -> dict[str, float]:
    """Seconds per stage so far, largest first."""
    return dict(sorted(_TOTALS.items(), key=lambda kv: -kv[1]))
