"""The README's UCI table from a ``uci_benchmark`` report's metrics.json (its ``summary``):
one markdown row per (data set, method), mean ± standard error over the splits, test LL in
nats and bits, each method's fitting seconds per split and its 'checks passed' count, so no
cell of a README table is typed by hand.

    python benchmarks/uci_table.py reports/uci_benchmark/metrics.json [more metrics.json ...]
    python benchmarks/uci_table.py --causes METRICS_JSON [...]   # why chains failed, per data set
"""

from __future__ import annotations

import json
import math
import sys


def _pm(mean, se) -> str:
    if se is None or (isinstance(se, float) and math.isnan(se)):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {se:.3f}"


def table(paths) -> str:
    lines = ["| data | method | checks passed | RMSE | test LL (nats) | test LL (bits) | fit s/split |",
             "|---|---|---|---|---|---|---|"]
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            summary = json.load(fh)["summary"]
        for r in summary:
            if r["method"].startswith("published"):
                continue
            passed = r["checks passed"]
            if passed != "no checks":
                passed = f"**{passed}**"
            lines.append(f"| {r['data']} | {r['method']} | {passed} | {_pm(r['RMSE'], r['RMSE se'])} "
                         f"| {_pm(r['test LL'], r['test LL se'])} "
                         f"| {_pm(r['test LL bits'], r['test LL bits se'])} "
                         f"| {r['fit s/split']:.0f} |")
    return "\n".join(lines)


def causes(paths) -> str:
    """The page's 'why chains failed' table (metrics.json's ``failure_causes``), one row per
    data set; a metrics.json without it (a run before the table existed, or no NUTS) is
    refused by name."""
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            rows = json.load(fh).get("failure_causes")
        if rows is None:
            raise SystemExit(f"{path}: no failure_causes (rerun the benchmark with the same "
                             "--splits-dir to tabulate its saved splits again)")
        if not lines:
            lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args == ["--causes"]:
        raise SystemExit("usage: python benchmarks/uci_table.py [--causes] METRICS_JSON [...]")
    print(causes(args[1:]) if args[0] == "--causes" else table(args))
