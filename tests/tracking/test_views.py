"""What a person sees in MLflow: a model-training experiment, named runs, training curves per
step, the training data as datasets, the headline on the parent, and a moved store refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lira.tracking import runs

ROOT = Path(__file__).resolve().parents[2]


def _project(root: Path) -> None:
    (root / "plots").mkdir(parents=True)
    pd.DataFrame({"epoch": [-1, 0, 1, 2], "dev_anchor_error": [0.4, 0.35, 0.31, 0.3],
                  "loss": [float("nan"), 0.7, 0.4, 0.36]}).to_csv(root / "plots" / "arca_curve.csv", index=False)
    (root / "data" / "prepared").mkdir(parents=True)
    pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "lang": ["vi", "th"]}).to_parquet(
        root / "data" / "prepared" / "texts.parquet")


def test_experiment_kind_names_curves_and_datasets(tracked):
    params, root = tracked
    _project(root)
    run_id = runs.log_stage(params.tracking, root, "train_arca", {"best_epoch": 2}, config=params.resolved(), paths=params.shared.paths)
    c = runs.client(params.tracking, root)
    run = c.get_run(run_id)
    exp = c.get_experiment(run.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = c.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.run_name.startswith("pipeline ") and parent.info.run_name != "pipeline"
    # the curve, one point per epoch (step = epoch + 1), NaN skipped
    hist = c.get_metric_history(run_id, "curve.dev_anchor_error")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == [(0, 0.4), (1, 0.35), (2, 0.31), (3, 0.3)]
    assert [m.step for m in c.get_metric_history(run_id, "curve.loss")] == [1, 2, 3]
    # the prepared table as a dataset, its digest the file's sha256
    inputs = run.inputs.dataset_inputs
    assert [d.dataset.name for d in inputs] == ["texts"]
    sha = runs._sha256(root / "data" / "prepared" / "texts.parquet")
    assert inputs[0].dataset.digest == sha[:32]
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags == {"mlflow.data.context": "training", "lira.sha256": sha}


def test_lazy_parent_per_token_and_headline_on_it(tracked, monkeypatch):
    params, root = tracked
    token = runs.pipeline_token()
    monkeypatch.setenv(runs.PIPELINE_ENV, token)
    assert runs.finish_pipeline(params.tracking, root, token, ok=True, paths=params.shared.paths) is None  # nothing logged: no run
    a = runs.log_stage(params.tracking, root, "build_dataset", {"rows": 1}, config=params.resolved(), paths=params.shared.paths)
    b = runs.log_stage(params.tracking, root, "translate", {"rows": 2}, config=params.resolved(), paths=params.shared.paths)
    c = runs.client(params.tracking, root)
    parent = c.get_run(a).data.tags["mlflow.parentRunId"]
    assert c.get_run(b).data.tags["mlflow.parentRunId"] == parent
    assert c.get_run(parent).info.status == "RUNNING"
    summary = json.loads((ROOT / "metrics" / "evaluate.json").read_text())
    runs.log_headline(params.tracking, root, summary, config=params.resolved(), paths=params.shared.paths)
    m = c.get_run(parent).data.metrics
    assert m["lira.ndcg_at_10"] == pytest.approx(summary["systems"]["lira"]["retrieval"]["ndcg@10"], abs=1e-4)
    assert m["frozen.lira_minus.ndcg_at_10"] == pytest.approx(
        summary["lira_minus"]["frozen"]["retrieval.ndcg@10"]["diff"], abs=1e-4)
    assert "lira_by_language.vi.ndcg_at_10" in m
    assert runs.finish_pipeline(params.tracking, root, token, ok=False, paths=params.shared.paths) == parent
    assert c.get_run(parent).info.status == "FAILED"
    assert c.get_run(parent).info.start_time == int(token.split(":")[1])


def test_a_copied_store_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    from lira.config import parse_params

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(runs.PARENT_ENV, raising=False)
    monkeypatch.delenv(runs.PIPELINE_ENV, raising=False)
    first, second = tmp_path / "checkout", tmp_path / "moved"
    first.mkdir()
    params = parse_params({"shared": {"languages": ["vi", "th"]}})
    monkeypatch.chdir(first)
    runs.log_stage(params.tracking, first, "build_dataset", {"rows": 1}, config=params.resolved(), paths=params.shared.paths)  # default store: <root>/mlruns.db
    shutil.copytree(first, second)
    monkeypatch.chdir(second)
    with pytest.raises(runs.StoreMoved, match="moved or copied") as e:
        runs.log_stage(params.tracking, second, "build_dataset", {"rows": 1}, config=params.resolved(), paths=params.shared.paths)
    assert str(first / "mlartifacts") in str(e.value) and str(second / "mlartifacts") in str(e.value)
    # nothing was written into the original store by the refused call
    c = runs.client(params.tracking, first)
    assert len(c.search_runs([runs.experiment_id(params.tracking, first, c)])) == 2  # its parent + its stage
