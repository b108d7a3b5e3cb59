"""The README's UCI table from a ``uci_benchmark`` report's metrics.json (its ``summary``):
one markdown row per (data set, method), mean ± standard error over the splits, test LL in
nats and bits, each method's fitting seconds per split and its 'checks passed' count, so no
cell of a README table is typed by hand.

    python benchmarks/uci_table.py reports/uci_benchmark/metrics.json [more metrics.json ...]
    python benchmarks/uci_table.py --causes METRICS_JSON [...]   # why chains failed, per data set
    python benchmarks/uci_table.py --paired BASE_JSON OTHER_JSON  # OTHER - BASE, split by split
    python benchmarks/uci_table.py --psis LABEL=METRICS_JSON [...]  # the PSIS posterior checks
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


def paired(base_path, other_path) -> str:
    """Test LL of two runs on the same splits, method by method: the mean over splits of
    OTHER - BASE (nats per point) and its standard error (sd of the differences / sqrt(n)),
    over the (data set, split) pairs both runs have. Pairing removes the split-to-split
    spread that the two runs share, which the separate means ± se in the table keep."""
    def rows(path):
        with open(path, encoding="utf-8") as fh:
            return {(r["data"], r["method"], r["split"]): r["test_ll_nats"]
                    for r in json.load(fh)["per_split"]}
    base, other = rows(base_path), rows(other_path)
    groups: dict = {}
    for key in base:  # the base run's order: data sets, then its methods' table order
        if key in other:
            groups.setdefault(key[:2], []).append(other[key] - base[key])
    lines = ["| data | method | splits | test LL, other - base (nats) |", "|---|---|---|---|"]
    for (data, method), diffs in groups.items():
        n = len(diffs)
        mean = sum(diffs) / n
        se = (math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1
              else float("nan"))
        lines.append(f"| {data} | {method} | {n} | {mean:+.3f} ± {se:.3f} |"
                     if n > 1 else f"| {data} | {method} | {n} | {mean:+.3f} |")
    return "\n".join(lines)


def _k(k) -> str:
    return "∞" if k is None or k == math.inf else f"{k:.3g}"


def psis(labelled) -> str:
    """The PSIS posterior checks per data set (``LABEL=metrics.json``, LABEL naming the net):
    splits where the GGN Laplace's Gaussian passed, its k-hat median and range over splits
    (metrics.json writes an infinite k-hat as null: "∞ on n" when every split's is), the
    median importance ESS, the ensemble's passing splits and ADVI's passing splits with its
    median k-hat ("not run" without ADVI)."""
    lines = ["| data | net | GGN Laplace: splits passing | its k̂, median (range) | importance "
             "ESS of 2000, median | GGN Laplace ensemble: splits passing | ADVI: splits "
             "passing (k̂ median) |", "|---|---|---|---|---|---|---|"]
    for item in labelled:
        label, path = item.split("=", 1)
        with open(path, encoding="utf-8") as fh:
            m = json.load(fh)
        for row in m["laplace_posterior_check"]:
            data = row["data"]
            ks = [r["pareto_k_max"] for r in m["per_split"]
                  if r["data"] == data and r["method"] == "GGN Laplace (linearised)"
                  and "pareto_k_max" in r]
            ks = [math.inf if k is None else k for k in ks]
            finite = [k for k in ks if k < math.inf]
            spread = (f"∞ on {len(ks)}" if not finite else
                      f"{_k(row['GGN Laplace: k̂ median'])} ({_k(min(ks))}-{_k(max(ks))})")
            n = row["splits"]
            advi = (f"{row['ADVI: passed']}/{n} ({_k(row['ADVI: k̂ median'])})"
                    if "ADVI: passed" in row else "not run")
            passed = row["GGN Laplace: passed"]
            lines.append(f"| {data} | {label} | {f'**{passed}/{n}**' if passed else f'0/{n}'} "
                         f"| {spread} | {row['GGN Laplace: importance ESS median']:.2g} "
                         f"| {row['GGN Laplace ensemble: passed']}/{n} | {advi} |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args == ["--causes"] or (args[0] == "--paired" and len(args) != 3):
        raise SystemExit("usage: python benchmarks/uci_table.py [--causes] METRICS_JSON [...] | "
                         "--paired BASE_JSON OTHER_JSON | --psis LABEL=METRICS_JSON [...]")
    if args[0] == "--paired":
        print(paired(args[1], args[2]))
    elif args[0] == "--psis":
        print(psis(args[1:]))
    else:
        print(causes(args[1:]) if args[0] == "--causes" else table(args))
