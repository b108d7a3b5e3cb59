"""One renderer for every workflow report: self-contained HTML, written atomically.

Workflows hand it text, tables (DataFrames), figures (matplotlib figures or ArviZ
``PlotCollection``), diagnostics and provenance, never HTML strings. Figures are embedded as
base64 PNG, so ``index.html`` opens offline with nothing beside it. The report directory is
assembled in a temporary sibling and swapped into place only when complete: an interrupted
or failing run leaves the previous report intact and no partial files.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from models.base import stopwatch
from models.base.interrupts import interrupted

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1320px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.5}
h1{border-bottom:2px solid #333}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.pass{background:#d9f2d9;color:#145214;font-weight:bold}.fail{background:#f8d7d7;color:#7a1010;font-weight:bold}
.warn{background:#fff3cd;border-left:4px solid #e0a800;padding:0.5em 1em}
.note{background:#eef4fb;border-left:4px solid #3874b8;padding:0.5em 1em}
pre.math{background:#f7f7f7;padding:0.8em;font-size:1em;overflow-x:auto}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:0.9em;color:#555}
.meta{font-size:0.85em;color:#555}
td.why{text-align:left;max-width:28em}table.verdict th{text-align:left}
div.scroll{overflow-x:auto;max-width:100%}
nav.links,nav.toc{font-size:0.9em;margin:0.4em 0}nav.toc{background:#f7f7f7;padding:0.4em 0.8em}
div.what{font-size:0.85em;color:#555;max-width:22em}
details.fold{margin:1em 0}details.fold summary{cursor:pointer;font-size:0.9em;color:#333}caption{max-width:75em}
p{max-width:75em}
th.group{text-align:center;border-bottom:3px solid #999}
th.mle{border-bottom-color:#d95f02}th.laplace{border-bottom-color:#7570b3}
th.posterior{border-bottom-color:#1b9e77}
"""


def data_hash(*frames) -> str:
    """SHA-256 (first 16 hex digits) of the data a workflow used, for the report's record."""
    h = hashlib.sha256()
    for f in frames:
        if isinstance(f, pd.DataFrame | pd.Series):
            h.update(pd.util.hash_pandas_object(f, index=True).values.tobytes())
        else:
            h.update(np.ascontiguousarray(np.asarray(f, dtype=float)).tobytes())
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    import arviz
    import pymc
    import pytensor

    out = {"python": platform.python_version(), "pymc": pymc.__version__,
           "pytensor": pytensor.__version__, "arviz": arviz.__version__,
           "numpy": np.__version__, "pandas": pd.__version__}
    try:
        import nutpie

        out["nutpie"] = nutpie.__version__
    except ImportError:
        pass
    return out


def _figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib Figure or an ArviZ PlotCollection (matplotlib backend)."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    figure = fig if isinstance(fig, Figure) else fig.get_viz("figure")
    if hasattr(figure, "item"):  # a 0-d DataArray/ndarray wrapping the Figure
        figure = figure.item()
    buf = io.BytesIO()
    with stopwatch.stage("rendering figures"):
        figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buf.getvalue()


def grouped(df: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """``df``'s columns ``columns.values()`` under the grouped headers ``columns.keys()``
    ((group, column) pairs; :meth:`Report.table` draws the groups as one header row)."""
    out = df[list(columns.values())]
    out.columns = pd.MultiIndex.from_tuples(list(columns))
    return out


# One colour per estimator in tables as in figures (workflows.plots' MLE/Laplace/posterior).
ESTIMATOR_CLASSES = {"MLE": "mle", "Laplace": "laplace", "NUTS posterior": "posterior"}


def _group_class(group) -> str:
    return ESTIMATOR_CLASSES.get(str(group), "")


# Tables longer than this fold (``<details>``): the page stays readable, nothing is cut.
FOLD_ROWS = 20


def _is_rhat(column) -> bool:
    name = str(column[-1] if isinstance(column, tuple) else column).lower().replace("-", "_")
    return "r_hat" in name or "rhat" in name


def _format_cell(v, digits: int, rhat: bool = False):
    if rhat and isinstance(v, float | np.floating) and np.isfinite(v):
        return f"<td>{v:.3f}</td>"  # R-hat: 1.004 vs 1.012 is the difference that matters
    if isinstance(v, bool | np.bool_):
        return f'<td class="{"pass" if v else "fail"}">{"PASS" if v else "FAIL"}</td>'
    if isinstance(v, float | np.floating):
        if np.isnan(v):
            return "<td>–</td>"
        if np.isinf(v):
            return f"<td>{'∞' if v > 0 else '−∞'}</td>"
        a = abs(v)
        text = f"{v:.{digits}g}" if (a >= 1e-3 and a < 1e6) or v == 0 else f"{v:.{digits - 1}e}"
        return f"<td>{text}</td>"
    return f"<td>{html.escape(str(v))}</td>"


@dataclass
class Report:
    """A report under construction; call :meth:`write` once at the end."""

    workflow: str
    title: str
    blocks: list[str] = field(default_factory=list)
    figures: int = 0
    alerts: list[str] = field(default_factory=list)  # shown at the top, in words
    metrics: dict = field(default_factory=dict)  # -> metrics.json
    summaries: list[pd.DataFrame] = field(default_factory=list)  # -> summary.csv
    summary_trees: dict = field(default_factory=dict)  # section -> the DataTree it summarises
    verdicts: list[dict] = field(default_factory=list)  # one per fitted model: first screen
    toc: list[tuple[str, str]] = field(default_factory=list)  # (anchor, heading)
    # what the numbers of a page without sampled models are, for its first-screen verdict
    unsampled: str = "closed forms and simulations"
    # a page that samples but judges its fits elsewhere than the verdict table (SBC, SMC):
    # where its checks are, said instead of "no model is sampled"
    judged_elsewhere: str = ""

    def section_record(self, title: str) -> dict:
        """The metrics.json record of one section (``metrics["sections"][title]``), made on
        first use: the one way a workflow writes or reads a section's numbers."""
        return self.metrics.setdefault("sections", {}).setdefault(title, {})

    def alert(self, text: str) -> None:
        """A failed check or a caveat, stated at the top of the report."""
        self.alerts.append(text)

    def add_summary(self, section: str, summary: pd.DataFrame, tree=None) -> None:
        """Rows for summary.csv; ``tree``: the posterior they summarise (its saved file name
        is recorded in metrics.json as ``summary_files[section]``, so anyone can recompute)."""
        if tree is not None:
            self.summary_trees[section] = tree
        frame = summary.copy()
        frame.insert(0, "section", section)
        frame.index.name = "parameter"
        self.summaries.append(frame)

    def verdict(self, model: str, convergence: tuple[bool, str], fit: tuple[bool, str] | None,
                mle: tuple[bool, str] | None, expected: bool = False, what: str = "") -> None:
        """One fitted model's verdict, shown first: (passed, reason in words) for convergence,
        model fit and whether the MLE exists; ``expected``: a failure shown on purpose;
        ``what``: one line under the model's name (its data and the numbers that matter)."""
        self.verdicts.append({"model": model, "convergence": convergence, "fit": fit,
                              "mle": mle, "expected": expected, "what": what})
        self.metrics.setdefault("verdicts", {})[model] = {
            key: (None if v is None else {"passed": bool(v[0]), "reason": v[1]})
            for key, v in (("convergence", convergence), ("fit", fit), ("mle", mle))}
        self.metrics["verdicts"][model]["expected_to_fail"] = expected

    def failed_verdicts(self) -> list[str]:
        """'model: what failed' for every model whose convergence or fit failed unexpectedly."""
        out = []
        for v in self.verdicts:
            bad = [f"{k} ({v[k][1]})" for k in ("convergence", "fit")
                   if v[k] is not None and not v[k][0]]
            if bad and not v["expected"]:
                out.append(f"{v['model']}: " + "; ".join(bad))
        return out

    def heading(self, text: str) -> None:
        """A section heading with an anchor; listed in the table of contents."""
        slug = "s-" + "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())
        while any(slug == t[0] for t in self.toc):
            slug += "-"
        self.toc.append((slug, text))
        self.blocks.append(f'<h2 id="{slug}">{html.escape(text)}</h2>')

    def text(self, text: str, kind: str | None = None) -> None:
        """A paragraph (plain text; blank lines separate paragraphs). ``kind``: note/warn."""
        paras = "".join(f"<p>{html.escape(p.strip())}</p>" for p in text.strip().split("\n\n"))
        self.blocks.append(f'<div class="{kind}">{paras}</div>' if kind else paras)

    def math(self, text: str) -> None:
        """A model written out in plain-text mathematical notation (no network for MathJax)."""
        self.blocks.append(f'<pre class="math">{html.escape(text.strip())}</pre>')

    def table(self, df: pd.DataFrame, caption: str = "", digits: int = 4,
              index: bool = True, fold: int = FOLD_ROWS, csv: str | None = None) -> None:
        """A table; numbers to ``digits`` significant digits (R-hat columns: 3 decimals).
        Longer than ``fold`` rows: folded (``<details>``, every row still there) with its
        caption and row count outside, and a link to ``csv`` (a result file) if given."""
        if index and isinstance(df.index, pd.MultiIndex):  # one column per level
            df, index = df.reset_index(), False
        fixed = [_is_rhat(c) for c in df.columns]
        if isinstance(df.columns, pd.MultiIndex):  # grouped header: a row of groups above
            # a column without a sub-label (an index level moved into the columns) spans both
            # header rows; the others sit under their group
            pairs = [(str(g), str(c)) for g, c in df.columns]
            top = ('<th rowspan="2">' + html.escape(df.index.name or "") + "</th>" if index else "")
            for _, run in itertools.groupby(pairs, key=lambda p: p[0] if p[1] else ("", p)):
                run = list(run)
                if not run[0][1]:
                    top += f'<th rowspan="2">{html.escape(run[0][0])}</th>'
                elif len(run) > 1 or run[0][0]:
                    top += (f'<th colspan="{len(run)}" class="group {_group_class(run[0][0])}">'
                            f"{html.escape(run[0][0])}</th>")
                else:
                    top += "<th></th>"
            sub = "".join(f"<th>{html.escape(c)}</th>" for _, c in pairs if c)
            head = top + "</tr><tr>" + sub
        else:
            cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
            head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        rows = []
        # object dtype: iterrows would upcast an int column to float in a numeric row
        # (counts printed as 1.000 or 2.093e+04)
        for idx, row in df.astype(object).iterrows():
            cells = ([f"<td>{html.escape(str(idx))}</td>"] if index else [])
            cells += [_format_cell(v, digits, rhat) for v, rhat in zip(row.to_list(), fixed)]
            rows.append("<tr>" + "".join(cells) + "</tr>")
        body = f"<thead><tr>{head}</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
        if len(df) > fold:
            link = (f' (all rows also in <a href="{html.escape(csv)}">{html.escape(csv)}</a>)'
                    if csv else "")
            self.blocks.append(
                f'<details class="fold"><summary>{html.escape(caption)} <b>[{len(df)} rows: '
                f"click to show]</b></summary>{link}<div class=\"scroll\"><table>{body}</details>")
            return
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.blocks.append(f'<div class="scroll"><table>{cap}{body}')

    def figure(self, fig, caption: str) -> None:
        data = base64.b64encode(_figure_png(fig)).decode("ascii")
        self.figures += 1
        self.blocks.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>Figure {self.figures}. {html.escape(caption)}</figcaption></figure>")

    def diagnostics(self, diag, label: str = "") -> None:
        frame = diag.to_frame()
        verdict = "PASS" if diag.passed else "WARN"
        self.table(frame, caption=f"Convergence diagnostics {label}: {verdict}")

    def provenance(self, seed, data_sha: str, settings: dict) -> None:
        self.heading("Provenance")
        rows = {**versions(), "seed": seed, "data sha256[:16]": data_sha,
                **{k: v for k, v in settings.items()},
                "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        self.table(pd.DataFrame({"value": [str(v) for v in rows.values()]},
                                index=pd.Index(list(rows), name="item")))

    def render(self, files: list[tuple[str, int]] | None = None, index_link: bool = False) -> str:
        """The page. First screen: the title, links (``index_link``: to the reports' index
        one level up; ``files``: each result file beside this page, with its size), the
        table of contents, the verdict per model and what to read first."""
        links = ['<a href="../index.html">&larr; all reports</a>'] if index_link else []
        if files:
            links.append("results: " + ", ".join(
                f'<a href="{html.escape(n)}">{html.escape(n)}</a> ({_size(b)})' for n, b in files))
        saved = self.metrics.get("saved_groups") or {}
        kinds = {}
        for groups in saved.values():
            for group, how in groups.items():
                kinds.setdefault(how, set()).add(group)
        if kinds:  # what the .nc files hold, in one line
            links.append("the .nc files hold " + ", ".join(sorted(kinds.get("saved", ())))
                         + (f"; not saved: {', '.join(sorted(kinds['not saved']))} (recomputed "
                            "from the posterior by pm.compute_log_likelihood and "
                            "pm.sample_posterior_predictive; --save full keeps them)"
                            if "not saved" in kinds else ""))
        nav = f'<nav class="links">{" &middot; ".join(links)}</nav>' if links else ""
        toc = ([("verdict", "Verdict per model")] if self.verdicts else []) + self.toc
        toc_html = ('<nav class="toc" id="toc"><b>Contents:</b> ' + " &middot; ".join(
            f'<a href="#{a}">{html.escape(t)}</a>' for a, t in toc) + "</nav>") if toc else ""
        return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1>" + nav + toc_html + self._alerts_html()
                + "\n".join(self.blocks) + "</body></html>")

    def _alerts_html(self) -> str:
        out = ""
        if self.verdicts:
            def cell(v, ok_word="PASS"):
                if v is None:  # the header gives each check two columns (verdict, why)
                    return '<td colspan="2">–</td>'
                ok, reason = v
                return (f'<td class="{"pass" if ok else "fail"}">{ok_word if ok else "WARN"}</td>'
                        f'<td class="why">{html.escape(reason)}</td>')
            rows = "".join(
                f"<tr><td>{html.escape(v['model'])}"
                + (" <i>(failure expected: shown on purpose)</i>" if v["expected"] else "")
                + (f'<div class="what">{html.escape(v["what"])}</div>' if v.get("what") else "")
                + "</td>" + cell(v["convergence"]) + cell(v["fit"]) + cell(v["mle"], "exists")
                + "</tr>" for v in self.verdicts)
            head = ("<tr><th>model</th><th colspan=2>convergence (R-hat, ESS, divergences, "
                    "E-BFMI)</th><th colspan=2>model fit (LOO-PIT, Pareto k, predictive "
                    "checks)</th><th colspan=2>MLE</th></tr>")
            out += (f'<table class="verdict" id="verdict"><caption>Verdict per model</caption>'
                    f"{head}{rows}</table>")
        elif self.judged_elsewhere:
            out += ('<div class="note" id="verdict"><p><b>Verdict:</b> no verdict table: '
                    f"{html.escape(self.judged_elsewhere)}</p></div>")
        else:
            out += ('<div class="note" id="verdict"><p><b>Verdict:</b> no model is sampled in '
                    "this report, so there is no convergence or model-fit verdict"
                    + (": see what to read first below." if self.alerts else
                       f"; its numbers are {html.escape(self.unsampled)}, stated with their "
                       "checks where they are shown.") + "</p></div>")
        if self.alerts:
            items = "".join(f"<li>{html.escape(a)}</li>" for a in self.alerts)
            out += f'<div class="warn"><p><b>Read first:</b></p><ul>{items}</ul></div>'
        elif self.verdicts and not self.failed_verdicts():
            out += f'<div class="note"><p>{html.escape(self.all_passed_sentence())}</p></div>'
        return out

    def all_passed_sentence(self) -> str:
        """The banner above a page whose checks all passed, saying only what the verdict table
        shows: a model without model-fit checks (a '–' cell) did not 'pass' them, and an MLE
        flagged in its column is named (it does not enter the sampler's verdict)."""
        sampled = [v for v in self.verdicts if v["convergence"] is not None]
        fitted = [v for v in self.verdicts if v["fit"] is not None]
        if sampled and len(fitted) == len(self.verdicts):
            text = "Every model in this report converged and passed its model-fit checks."
        elif sampled and fitted:
            text = (f"Every model in this report converged; the {len(fitted)} with model-fit "
                    "checks passed them (the others have none: '–' in the table).")
        elif sampled:
            text = ("Every model in this report converged. " + ("It has" if len(sampled) == 1
                    else "They have") + " no model-fit checks ('–' in the table).")
        else:
            text = "Every model-fit check in this report passed."
        flagged = [v["model"] for v in self.verdicts if v["mle"] is not None and not v["mle"][0]]
        if flagged:
            text += (" The MLE column warns for " + ", ".join(flagged) + ": that is the MLE's "
                     "own status, which the posterior's verdict does not depend on.")
        return text

    def write(self, out_dir: str | os.PathLike, posteriors: dict | None = None,
              save: str = "small") -> Path:
        """Write ``index.html``, ``metrics.json``, ``summary.csv`` and each posterior DataTree
        as ``<name>.nc`` (as :func:`save_tree` stores it, ``save`` "small" or "full"),
        atomically (all or nothing), into a directory marked as ours.

        Refuses (:class:`OutputError`) to replace anything this tool did not write, and
        (KeyboardInterrupt) to write at all after an interrupt that a library swallowed."""
        if interrupted():
            raise KeyboardInterrupt("interrupted earlier in this run; no report written")
        out_dir = check_out_dir(out_dir)
        files = {id(tree): f"{name}.nc" for name, tree in (posteriors or {}).items()}
        self.metrics["summary_files"] = {section: files.get(id(tree)) for section, tree
                                         in self.summary_trees.items()}
        clean_stale(out_dir.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-",
                                    dir=out_dir.parent))
        try:
            # mkdtemp makes the directory 0700; a report is an ordinary directory (umask)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            _mark(tmp, self.workflow)
            if posteriors:
                self.metrics["saved_groups"] = {name: saved_groups(tree, save)
                                                for name, tree in posteriors.items()}
            # the posterior files and the summary table first, so that metrics.json (written
            # after them, as is the page) can say how long they took
            with stopwatch.stage("writing files"):
                if self.summaries:
                    pd.concat(self.summaries).to_csv(tmp / "summary.csv")
                for name, tree in (posteriors or {}).items():
                    save_tree(tree, tmp / f"{name}.nc", save)
            if isinstance(self.metrics.get("timings"), dict):
                self.metrics["timings"]["writing files"] = stopwatch.totals().get(
                    "writing files", 0.0)
            (tmp / "metrics.json").write_text(json.dumps(_jsonable(self.metrics), indent=2,
                                                         allow_nan=False), encoding="utf-8")
            files = [(p.name, p.stat().st_size) for p in sorted(tmp.iterdir())
                     if p.name != MARKER]
            index_link = (out_dir.resolve().parent / "index.html").is_file() or bool(
                os.environ.get("MLEBAYES_RUN_ALL"))
            (tmp / "index.html").write_text(self.render(files, index_link), encoding="utf-8")
            if interrupted():
                raise KeyboardInterrupt("interrupted while writing; no report written")
            replace_dir(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out_dir / "index.html"


# What a saved posterior file holds with save="small" (the default; "full" keeps every group,
# as before). Kept: what reuse needs and only sampling again could recreate (posterior,
# sample_stats, the data). Left out: what is rows x draws and recomputed from the saved
# posterior and the model in seconds: the pointwise log-likelihood (pm.compute_log_likelihood;
# then az.loo) and the predictive and prior draws (pm.sample_posterior_predictive). The
# pointwise log-likelihood alone was most of each file: wells, 3,020 rows x 4,000 draws, is
# 97 MB of float64, most of the 59 MB its compressed file took (random mantissas do not
# compress).
SAVE = ("small", "full")
OPTIONAL_GROUPS = ("log_likelihood", "posterior_predictive", "prior", "prior_predictive")


def saved_groups(tree, save: str = "small") -> dict:
    """Which groups :func:`save_tree` writes: {group: "saved" | "not saved"}."""
    if save not in SAVE:
        raise ValueError(f"save must be one of {SAVE}, got {save!r}")
    return {group: "not saved" if save == "small" and group in OPTIONAL_GROUPS else "saved"
            for group in tree.children}


def save_tree(tree, path: Path, save: str = "small") -> None:
    """Write a DataTree as netCDF4, every array compressed losslessly (zlib level 4 with the
    byte shuffle filter: every value reads back identical). ``save="small"`` leaves out the
    OPTIONAL_GROUPS (recomputable from the posterior and the model); ``"full"`` keeps all."""
    import xarray as xr

    kept = {group: tree[group].to_dataset()
            for group, how in saved_groups(tree, save).items() if how == "saved"}
    out = xr.DataTree.from_dict(kept)
    out.attrs = dict(tree.attrs)
    encoding = {f"/{group}": {v: {"zlib": True, "complevel": 4, "shuffle": True}
                              for v in ds.data_vars if ds[v].ndim}
                for group, ds in kept.items()}
    out.to_netcdf(path, encoding=encoding)


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n} GB"


# ------------------------------------------------------------------ output safety
MARKER = ".mlebayes-report"  # written into every report directory: "this one is ours"


class OutputError(ValueError):
    """An output path this tool must not write to (it would replace a user's files)."""


def _mark(directory: Path, workflow: str) -> None:
    (directory / MARKER).write_text(json.dumps({"tool": "mlebayes", "workflow": workflow}) + "\n",
                                    encoding="utf-8")


def is_ours(directory: Path) -> bool:
    """A directory this tool wrote: it holds the marker (and is not a symlink), or it is a
    report written before the marker existed (only index.html, metrics.json naming its
    workflow, summary.csv and .nc files)."""
    if not directory.is_dir() or directory.is_symlink():
        return False
    if (directory / MARKER).is_file():
        return True
    names = [p.name for p in directory.iterdir()]
    if "index.html" not in names or "metrics.json" not in names:
        return False
    if any(n not in ("index.html", "metrics.json", "summary.csv") and not n.endswith(".nc")
           for n in names):
        return False
    try:
        return "workflow" in json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """The report directory, if this tool may (re)place it; else :class:`OutputError`.

    Allowed: a path that does not exist yet, an empty directory, or a directory holding this
    tool's marker (an earlier report). Refused: a file, a directory with anything else in it,
    the working directory or any directory above it, the home directory or above it, and
    anything that cannot be written (tested by writing, so read-only and immutable
    directories are caught here, before any work)."""
    out = Path(out_dir)
    resolved = out.resolve()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(f"--out {out}: that is the working directory or a directory above it; "
                          "reports go into a directory of their own, e.g. --out reports/mine")
    if resolved == home or resolved in home.parents:
        raise OutputError(f"--out {out}: that is the home directory or above it; give a new "
                          "directory, e.g. --out reports/mine")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputError(f"--out {out}: exists and is not a directory; give a new directory "
                          "(nothing was changed)")
    if out.is_dir():
        try:
            entries = sorted(p.name for p in out.iterdir())
        except OSError as exc:
            raise OutputError(f"--out {out}: cannot be read ({exc.strerror})") from None
        if entries and not is_ours(out):
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise OutputError(f"--out {out}: holds files this tool did not write ({shown}); "
                              "give a new or empty directory (nothing was changed)")
        _probe(out, "--out")
    parent = resolved.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create {parent} ({exc.strerror})") from None
    _probe(parent, "--out")
    return out


def _probe(directory: Path, what: str) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".mlebayes-write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {directory} ({exc.strerror})") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(parent: Path) -> list[Path]:
    """Remove this tool's temp/old directories that a killed run left in ``parent``: hidden
    ``.NAME.tmp-PID-*`` / ``.NAME.old-PID`` directories, holding the marker (or empty), whose
    process is gone. Nothing else is touched."""
    removed = []
    if not parent.is_dir():
        return removed
    for p in parent.iterdir():
        name = p.name
        if not name.startswith(".") or not p.is_dir() or p.is_symlink():
            continue
        if not (is_ours(p) or not any(p.iterdir())):  # ours, or empty (killed before marking)
            continue
        for tag in (".tmp-", ".old-"):
            if tag in name:
                pid = name.split(tag, 1)[1].split("-", 1)[0]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
    return removed


def replace_dir(new: Path, target: Path) -> None:
    """Swap a finished directory into place; the old one (ours: checked again here, in case
    files appeared since the run started) is removed only afterwards."""
    old = None
    if target.exists():
        if not target.is_dir() or (any(target.iterdir()) and not is_ours(target)):
            raise OutputError(f"--out {target}: files this tool did not write appeared there "
                              "during the run; the new report is not written")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _jsonable(value):
    """numpy/pandas values -> plain JSON (NaN/inf -> null, which strict JSON requires)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return {str(i): _jsonable(r.to_dict()) for i, r in value.iterrows()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)
