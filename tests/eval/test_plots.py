"""The evaluate plots: a few series per chart, the DVC templates fill, the PNG is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lira.eval.plots import per_language_frame, systems_frame, write_plots

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = json.loads((ROOT / "metrics" / "evaluate.json").read_text())
LANGS = list(SUMMARY["systems"]["lira"]["per_language"])


def test_per_language_groups_ablations_apart_so_no_panel_has_many_series():
    # The default run has no ablations (`make ablations` adds them): add four, as that table has.
    systems = {**SUMMARY["systems"], **{f"ablation:{a}": SUMMARY["systems"]["lira"] for a in
                                        ("no_queue", "no_llm_critic", "no_embedding_critic", "separate_adaptors")}}
    df = per_language_frame(systems, LANGS)
    assert len(df) == len(systems) * len(LANGS)
    for _, g in df.groupby("group"):
        assert g["system"].nunique() <= 6
    assert set(df[df.system.str.startswith("ablation:")]["group"]) == {"ablation"}
    overall = systems_frame(SUMMARY["systems"])
    assert overall["task"].nunique() == 3


def test_write_plots_writes_csvs_and_png(tmp_path):
    write_plots(tmp_path, SUMMARY["systems"], LANGS)
    assert pd.read_csv(tmp_path / "systems.csv").shape[0] == 3 * len(SUMMARY["systems"])
    assert (tmp_path / "per_language.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not Path(sys.executable).with_name("dvc").exists(), reason="dvc not installed")
def test_dvc_plots_show_fills_the_templates(tmp_path):
    """The real `dvc plots show --show-vega` on this project's plot definitions and templates."""
    proj = tmp_path / "p"
    proj.mkdir()
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(tmp_path),
           "DVC_SITE_CACHE_DIR": str(tmp_path / "site")}
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=proj, check=True, env=env)
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    shutil.copytree(ROOT / ".dvc" / "plots", proj / ".dvc" / "plots")
    write_plots(proj / "plots", SUMMARY["systems"], LANGS)
    for plot, series in (("nDCG@10 per language", "system"), ("all systems, whole test split", "task")):
        out = subprocess.run([dvc, "plots", "show", "--show-vega", plot], check=False, cwd=proj, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        spec = json.loads(out.stdout)
        enc = spec["spec"]["encoding"]
        assert enc["xOffset"]["field"] == enc["color"]["field"] == series
        assert not any("<DVC_METRIC" in json.dumps(v) for v in (spec["spec"], spec["title"]))
        assert len(spec["data"]["values"]) > 0
    html = subprocess.run([dvc, "plots", "show", "-o", str(tmp_path / "html")], check=False, cwd=proj, env=env,
                          capture_output=True, text=True, timeout=120)
    assert html.returncode == 0, html.stderr
    assert "per_language.png" in (tmp_path / "html" / "index.html").read_text()
