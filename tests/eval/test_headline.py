"""The headline files: small flat rows that `dvc metrics show` prints as a readable table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lira.eval.headline import LANGUAGE_DIR, SYSTEM_DIR, file_stem, headline

ROOT = Path(__file__).resolve().parents[2]
EVALUATE = ROOT / "metrics" / "evaluate.json"


def _summary():
    sys_ = lambda nd, st, mc, langs: {
        "retrieval": {"ndcg@10": nd, "recall@10": 0.9}, "sts": {"pearson": st}, "mc": {"accuracy": mc},
        "per_language": {lang: {"ndcg@10": nd - i / 100, "sts_pearson": st, "mc_accuracy": mc} for i, lang in enumerate(langs)}}
    return {
        "systems": {"lira": sys_(0.9, 0.8, 0.7, ["vi", "th"]), "frozen": sys_(0.8, 0.7, 0.6, ["vi", "th"]),
                    "ablation:no_queue": sys_(0.88, 0.79, 0.7, ["vi", "th"]),
                    # a system added later (say by another helper's suite), with a task missing
                    "st_distill": {"retrieval": {"ndcg@10": 0.85}, "per_language": {}}},
        "lira_minus": {"frozen": {"retrieval.ndcg@10": {"diff": 0.1, "low": 0.05, "high": 0.15, "p_value": 0.0}}},
        "crosslingual": {"systems": {"lira": {"ndcg@10": 0.95}}},
    }


def test_one_row_per_system_and_per_language_with_the_same_few_columns():
    out = headline(_summary())
    assert set(out) == {f"{SYSTEM_DIR}/lira.json", f"{SYSTEM_DIR}/frozen.json", f"{SYSTEM_DIR}/ablation_no_queue.json",
                        f"{SYSTEM_DIR}/st_distill.json", f"{LANGUAGE_DIR}/vi.json", f"{LANGUAGE_DIR}/th.json"}
    assert out[f"{SYSTEM_DIR}/frozen.json"] == {"ndcg@10": 0.8, "recall@10": 0.9, "sts_pearson": 0.7, "mc_accuracy": 0.6,
                                                 "lira_minus.ndcg@10": 0.1, "lira_minus.ci_low": 0.05,
                                                 "lira_minus.ci_high": 0.15}
    assert out[f"{SYSTEM_DIR}/lira.json"]["xl_ndcg@10"] == 0.95
    assert out[f"{SYSTEM_DIR}/st_distill.json"] == {"ndcg@10": 0.85}  # missing tasks are absent, not 0
    assert out[f"{LANGUAGE_DIR}/th.json"]["ndcg@10"] == pytest.approx(0.89)
    for row in out.values():
        assert all(isinstance(v, float) for v in row.values())


def test_refuses_a_summary_without_systems_and_colliding_file_names():
    with pytest.raises(ValueError, match="no `systems`"):
        headline({})
    with pytest.raises(ValueError, match="same file name"):
        headline({"systems": {"a:b": {}, "a_b": {}}})
    assert file_stem("ablation:no_queue") == "ablation_no_queue"


def test_committed_evaluate_json_gives_a_narrow_table():
    """On the committed report (whatever systems it holds): at most a dozen columns."""
    out = headline(json.loads(EVALUATE.read_text()))
    columns = set().union(*out.values())
    assert len(columns) <= 12, sorted(columns)
    systems = json.loads(EVALUATE.read_text())["systems"]
    assert len([k for k in out if k.startswith(SYSTEM_DIR)]) == len(systems)


def test_write_headline_drops_rows_of_systems_that_are_gone(tmp_path):
    from lira.stages.evaluate import write_headline

    folder = tmp_path / "headline"
    write_headline(folder, _summary())
    assert (folder / SYSTEM_DIR / "st_distill.json").exists()
    s = _summary()
    del s["systems"]["st_distill"]
    write_headline(folder, s)
    assert not (folder / SYSTEM_DIR / "st_distill.json").exists()
    assert json.loads((folder / SYSTEM_DIR / "lira.json").read_text())["ndcg@10"] == 0.9


@pytest.mark.skipif(shutil.which("dvc", path=str(Path(sys.executable).parent)) is None, reason="dvc not installed")
def test_dvc_metrics_show_prints_the_headline_narrowly(tmp_path):
    """The real `dvc metrics show` on a copy of this project's dvc.yaml with headline files."""
    from lira.stages.evaluate import write_headline

    proj = tmp_path / "p"
    proj.mkdir()
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    write_headline(proj / "metrics" / "headline", json.loads(EVALUATE.read_text()))
    (proj / "metrics" / "evaluate.json").write_text(EVALUATE.read_text())  # present, but not a metric
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(tmp_path),
           "DVC_SITE_CACHE_DIR": str(tmp_path / "site")}
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=proj, check=True, env=env)
    out = subprocess.run([dvc, "metrics", "show"], check=False, cwd=proj, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    n_rows = len(headline(json.loads(EVALUATE.read_text())))
    assert len(lines) == n_rows + 1, out.stdout
    assert max(map(len, lines)) < 250
    assert "metrics/headline/system/lira.json" in out.stdout and "evaluate.json" not in out.stdout
