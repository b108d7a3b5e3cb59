"""UCI benchmark: the published protocol (one hidden layer of 50 ReLU units, standardised by the
training split, metrics in original units, the standard 20 splits) for the MLE net, the MAP
net and the NUTS BNN, mean ± standard error over splits next to PBP, MC dropout and deep
ensembles."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from models import bnn, datasets
from models.inference import CompiledSampler
from models.report import Report, data_hash
from models.uci_reference import PUBLISHED
from workflows._common import Progress, finish, parser, settings

NAME = "uci_benchmark"
DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())
METHODS = ["MLE net", "MAP net", "NUTS posterior"]


def main(argv=None) -> int:
    p = parser(NAME, __doc__)
    g = p.add_argument_group("benchmark")
    g.add_argument("--datasets", default="yacht,energy",
                   help=f"comma-separated, from {', '.join(datasets.UCI)} (default yacht,energy)")
    g.add_argument("--splits", type=int, default=None,
                   help="use splits 0..N-1 (default all 20; --quick: 2)")
    g.add_argument("--hidden", type=int, default=None, help="hidden units (default 50; --quick: 10)")
    args = p.parse_args(argv)
    s = settings(NAME, args)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in datasets.UCI]
    if unknown:
        raise SystemExit(f"error: --datasets: unknown {unknown}; choose from {datasets.UCI}")
    n_splits = args.splits or (2 if s.quick else 20)
    if not 1 <= n_splits <= 20:
        raise SystemExit(f"error: --splits must be between 1 and 20, got {n_splits}")
    hidden = args.hidden or (10 if s.quick else 50)
    progress = Progress(NAME, len(names) * n_splits)
    report = Report(NAME, "UCI regression benchmark: MLE net, MAP net and NUTS BNN")
    report.text(f"Protocol: one hidden layer of {hidden} ReLU units with He-normal weight priors "
                f"(bias sd 0.1, noise σ ~ HalfNormal(1) on the standardised target), splits "
                f"0..{n_splits - 1} of the standard 20, inputs and target standardised by the "
                f"training split, metrics in original units. NUTS: {s.chains} chains x {s.draws} "
                f"draws after {s.tune} tuning steps ({s.sampler}).")
    rows, diags, hashes, timing = [], [], [], {}
    for name in names:
        start = time.time()
        compiled = None
        for split in range(n_splits):
            progress(f"{name} split {split}")
            d = datasets.uci(name, split)
            hashes += [d["X_train"], d["y_train"]]
            if compiled is None and s.sampler == "nutpie":
                # compile once per data set; every split swaps its data into the same model
                compiled = CompiledSampler(bnn.build(d["X_train"], d["y_train"], hidden=(hidden,),
                                                     activation="relu", prior="he_normal"))
            r = bnn.evaluate(d, (hidden,), "relu", "he_normal", s.draws, s.tune, s.chains,
                             s.seed + split, s.sampler, compiled=compiled)
            for method in METHODS:
                rows.append({"data": name, "split": split, "method": method, **r["metrics"][method]})
            fs = r["function_space"]
            rows[-1].update({"f_rhat_max": fs["f_rhat_max"], "f_ess_bulk_min": fs["f_ess_bulk_min"],
                             "divergences": fs["divergences"]})
            diags.append((f"{name} split {split}", r["diagnostics"]))
        timing[name] = time.time() - start
    per_split = pd.DataFrame(rows)
    summary = []
    for (name, method), g in per_split.groupby(["data", "method"], sort=False):
        n = len(g)
        summary.append({"data": name, "method": method, "splits": n,
                        "RMSE": g["rmse"].mean(), "RMSE se": g["rmse"].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                        "test LL": g["test_ll_nats"].mean(),
                        "test LL se": g["test_ll_nats"].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan})
        if method == "NUTS posterior":
            for ref, (rmse, ll) in PUBLISHED[name].items():
                summary.append({"data": name, "method": f"published: {ref}", "splits": 20,
                                "RMSE": rmse, "RMSE se": np.nan, "test LL": ll, "test LL se": np.nan})
    summary = pd.DataFrame(summary).set_index(["data", "method"])
    report.table(summary, digits=3, caption="Mean ± standard error over splits (test LL: nats "
                 "per point, higher is better). Published rows: the papers' 20-split means.")
    nuts = per_split[per_split["method"] == "NUTS posterior"]
    report.table(nuts.groupby("data")[["f_rhat_max", "f_ess_bulk_min", "divergences"]].agg(["max", "min"]),
                 digits=3, caption="NUTS function-space diagnostics across splits (R-hat and bulk "
                 "ESS of the predictions at the test points).")
    report.table(pd.DataFrame({"seconds": timing, "splits": n_splits}).rename_axis("data"),
                 digits=4, caption="Wall time on this machine (all three fits per split).")
    report.table(per_split.set_index(["data", "split", "method"]), digits=3, caption="Every split.")
    report.metrics.update({"summary": summary.reset_index().to_dict(orient="records"),
                           "per_split": per_split.to_dict(orient="records"), "seconds": timing})
    failed = [label for label, dg in diags if not dg.passed]
    if failed:
        report.alert(f"Function-space diagnostics failed on {len(failed)} of {len(diags)} splits "
                     f"({', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}): their posterior "
                     "numbers are less reliable.")
    return finish(NAME, report, s, diags, {}, s.seed, data_hash(*hashes))


if __name__ == "__main__":
    raise SystemExit(main())
