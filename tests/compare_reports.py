"""Are two report trees the same numbers? ``python tests/compare_reports.py BEFORE AFTER``

Compares every ``metrics.json`` and ``summary.csv`` under two ``reports/`` folders written at
the same seed (e.g. ``mlebayes run all --quick`` before and after a refactor): the same files,
the same keys, and every number equal (exactly by default; ``--rtol`` to allow float noise).
Provenance that is not a result is skipped: wall-clock times, versions, dates and paths
(keys listed in ``SKIP``). Prints each difference and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

# Not results: how long it took, when, where, with which library versions.
SKIP = {"seconds", "wall_seconds", "fanout_seconds", "time", "timing", "timings", "versions", "date",
        "created", "elapsed", "python", "platform", "seconds_per_split", "wall"}


def _walk(a, b, path: str, rtol: float, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key in SKIP or any(s in str(key).lower() for s in ("seconds", "time")):
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'after' if key not in a else 'before'}")
                continue
            _walk(a[key], b[key], f"{path}.{key}", rtol, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} vs {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{path}[{i}]", rtol, out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        same = (math.isnan(a) and math.isnan(b)) if (isinstance(a, float) and math.isnan(a)) \
            else (a == b or abs(a - b) <= rtol * max(abs(a), abs(b)))
        if not same:
            out.append(f"{path}: {a!r} vs {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}"[:300])


def compare(before: Path, after: Path, rtol: float = 0.0) -> list[str]:
    out: list[str] = []
    names = sorted({p.relative_to(before) for p in before.rglob("metrics.json")}
                   | {p.relative_to(before) for p in before.rglob("summary.csv")}
                   | {p.relative_to(after) for p in after.rglob("metrics.json")}
                   | {p.relative_to(after) for p in after.rglob("summary.csv")})
    for rel in names:
        a, b = before / rel, after / rel
        if not a.exists() or not b.exists():
            out.append(f"{rel}: only in {'after' if not a.exists() else 'before'}")
            continue
        if rel.suffix == ".json":
            _walk(json.loads(a.read_text()), json.loads(b.read_text()), str(rel), rtol, out)
        else:
            fa, fb = pd.read_csv(a), pd.read_csv(b)
            if list(fa.columns) != list(fb.columns) or fa.shape != fb.shape:
                out.append(f"{rel}: columns/shape {list(fa.columns)} {fa.shape} vs "
                           f"{list(fb.columns)} {fb.shape}")
                continue
            _walk(fa.to_dict(orient="list"), fb.to_dict(orient="list"), str(rel), rtol, out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--rtol", type=float, default=0.0)
    args = p.parse_args(argv)
    diffs = compare(args.before, args.after, args.rtol)
    files = len(list(args.before.rglob("metrics.json")) + list(args.before.rglob("summary.csv")))
    for d in diffs:
        print(d)
    print(f"{files} files compared: " + ("identical" if not diffs else f"{len(diffs)} difference(s)"))
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
