"""Whether this process was asked to stop (SIGINT/SIGTERM), independent of any exception.

Samplers and compilers catch ``KeyboardInterrupt`` (nutpie returns the draws so far; numba's
compiler can swallow it in a callback, "Exception ignored in ..."), so an interrupt can vanish
before it reaches the command line. The command line's signal handler records it here as well,
and everything that would report or save a result checks :func:`interrupted` first.
"""

from __future__ import annotations

_INTERRUPTED = False


def note_interrupt() -> None:
    global _INTERRUPTED
    _INTERRUPTED = True


def interrupted() -> bool:
    return _INTERRUPTED


def reset() -> None:
    """Forget an interrupt (tests that simulate one in-process)."""
    global _INTERRUPTED
    _INTERRUPTED = False
