"""Render a report in headless Chromium and measure its DOM: where the verdict box and the
table of contents start, which tables are wider than the page (with every folded table
opened), which images did not load, and which links do not resolve.

Used by the tests (``audit(path)``) and by hand::

    python tests/report_audit.py reports/*/index.html

Chromium's ``--dump-dom`` prints the DOM after scripts ran; a copy of the page with a small
script appended (beside the original, removed afterwards, so relative links behave the same)
writes its measurements into a ``<pre id="audit">`` there. No browser driver is needed."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

WIDTH, HEIGHT = 1400, 900

SCRIPT = """<script>
window.addEventListener('load', () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const de = document.documentElement;
  const top = el => el ? el.getBoundingClientRect().top + window.scrollY : null;
  const label = t => (t.caption ? t.caption.textContent :
      (t.closest('details') ? t.closest('details').querySelector('summary').textContent : '')
    ).trim().slice(0, 90);
  const out = {
    width: de.clientWidth,
    verdict_top: top(document.getElementById('verdict')),
    toc_top: top(document.getElementById('toc')),
    wide_tables: [...document.querySelectorAll('table')]
      .filter(t => t.getBoundingClientRect().right > de.clientWidth + 1
                   || t.scrollWidth > t.parentElement.clientWidth + 1)
      .map(t => [label(t), Math.round(t.getBoundingClientRect().width)]),
    images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
    wide_images: [...document.images]
      .filter(i => i.getBoundingClientRect().right > de.clientWidth + 1).length,
    anchors_missing: [...document.querySelectorAll('a[href^="#"]')]
      .map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id)),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))
      .filter(h => !h.startsWith('#')),
  };
  const pre = document.createElement('pre');
  pre.id = 'audit';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which(
        "google-chrome")


def audit(page: Path, timeout: float = 120) -> dict:
    """Measurements of ``page`` (an index.html) at 1400 x 900 px, plus ``broken_links``:
    relative links that name no existing file."""
    page = Path(page).resolve()
    text = page.read_text(encoding="utf-8")
    fd, name = tempfile.mkstemp(prefix=".audit-", suffix=".html", dir=page.parent)
    copy = Path(name)
    profile = tempfile.mkdtemp(prefix="audit-chromium-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text.replace("</body>", SCRIPT + "</body>"))
        run = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
             "--virtual-time-budget=20000", "--dump-dom", copy.as_uri()],
            capture_output=True, text=True, timeout=timeout)
    finally:
        copy.unlink(missing_ok=True)
        shutil.rmtree(profile, ignore_errors=True)
    found = re.search(r'<pre id="audit">(.*?)</pre>', run.stdout, flags=re.S)
    if not found:
        raise RuntimeError(f"{page}: Chromium printed no audit (rc {run.returncode}): "
                           f"{run.stderr[-500:]}")
    out = json.loads(html.unescape(found.group(1)))
    broken = []
    for href in out["links"]:
        url = urlparse(href)
        if url.scheme in ("http", "https", "mailto", "data"):
            continue
        if not (page.parent / unquote(url.path)).exists():
            broken.append(href)
    out["broken_links"] = broken
    return out


def problems(out: dict, first_screen: int = 1000) -> list[str]:
    """What the issue's reader would complain about, in words (empty: none)."""
    bad = []
    for key, what in (("verdict_top", "verdict box"), ("toc_top", "table of contents")):
        if out[key] is None:
            bad.append(f"no {what}")
        elif out[key] > first_screen:
            bad.append(f"{what} starts at {out[key]:.0f} px (> {first_screen})")
    bad += [f"table wider than the page: {t!r} ({w} px)" for t, w in out["wide_tables"]]
    if not all(out["images"]):
        bad.append(f"{out['images'].count(False)} of {len(out['images'])} images did not load")
    if out["wide_images"]:
        bad.append(f"{out['wide_images']} images wider than the page")
    bad += [f"link to a missing anchor: #{a}" for a in out["anchors_missing"]]
    bad += [f"link to a missing file: {h}" for h in out["broken_links"]]
    return bad


if __name__ == "__main__":
    status = 0
    for arg in sys.argv[1:]:
        issues = problems(audit(Path(arg)))
        print(f"{arg}: " + ("OK" if not issues else "; ".join(issues)))
        status |= bool(issues)
    raise SystemExit(status)
