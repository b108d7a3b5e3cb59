"""The README's UCI table from a ``uci_benchmark`` report's metrics.json (its ``summary``):
one markdown row per (data set, method), mean ± standard error over the splits, test LL in
nats and bits, each method's fitting seconds per split and its 'checks passed' count, so no
cell of a README table is typed by hand.

    python benchmarks/uci_table.py reports/uci_benchmark/metrics.json [more metrics.json ...]
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


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python benchmarks/uci_table.py METRICS_JSON [...]")
    print(table(sys.argv[1:]))
