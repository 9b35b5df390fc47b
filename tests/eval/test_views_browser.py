"""`dvc plots show` opened in a real headless browser (chromium): the page is not blank.

DVC draws its charts with vega from a CDN; offline they cannot load, and DVC's own page then shows
nothing for them. lira's page template (.dvc/plots/page.html, set in .dvc/config) says so and the
static PNG still renders. Skips without chromium (Debian: apt-get install chromium) or dvc.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lira.eval.plots import write_plots

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
V = importlib.import_module("views")
BROWSER = V.find_browser()
DVC = Path(sys.executable).with_name("dvc")
pytestmark = [pytest.mark.skipif(BROWSER is None, reason="no headless chromium (apt-get install chromium)"),
              pytest.mark.skipif(not DVC.exists(), reason="dvc not installed")]


def _project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git + DVC project with this repo's plot definitions, templates and DVC config (no remote)."""
    summary = json.loads((ROOT / "metrics" / "evaluate.json").read_text())
    proj = tmp_path / "p"
    proj.mkdir()
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(tmp_path),
           "DVC_SITE_CACHE_DIR": str(tmp_path / "site")}
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    subprocess.run([str(DVC), "init", "-q"], cwd=proj, check=True, env=env)
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    shutil.copytree(ROOT / ".dvc" / "plots", proj / ".dvc" / "plots")
    html_template = subprocess.run([str(DVC), "config", "plots.html_template"], cwd=ROOT, env=env, capture_output=True,
                                   text=True, check=True).stdout.strip()
    subprocess.run([str(DVC), "config", "plots.html_template", html_template], cwd=proj, env=env, check=True)
    write_plots(proj / "plots", summary["systems"], list(summary["systems"]["lira"]["per_language"]))
    return proj, env


def test_dvc_plots_page_reads_in_a_browser(tmp_path):
    proj, env = _project(tmp_path)
    res = V.dvc_page(BROWSER, proj, tmp_path / "shots", env=env)
    assert res["vega_charts"] >= 4  # the four lira charts (plus the training curves when present)
    assert res["images"] >= 1  # plots/per_language.png, drawn by the evaluate stage
    if res["vega_charts_drawn"] < res["vega_charts"]:  # vega did not load (no network): the page must say so
        assert res["offline_notice_shown"], res
    assert res["ink"] >= V.MIN_INK and res["readable"], res


def test_a_blank_page_is_not_counted_readable(tmp_path):
    """The ink check can fail: an empty page scores ~0."""
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    png = V.screenshot(BROWSER, page.as_uri(), tmp_path / "blank.png", size="800,600", budget_ms=1000)
    assert V.ink(png) < V.MIN_INK
