"""The ``lira-pipeline`` flow reproduces the real pipeline on a small slice, then reruns nothing.

A copy of the project (fresh git repo) runs every implemented stage through the flow with slicing
overrides; a second identical run must find everything up to date and leave every output's mtime
alone. Stages whose module does not exist yet are left out (and named in a warning).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from lira.config import STAGES

SLICE = {
    "build_dataset.max_per_language": 6,
    "train_arca.epochs": 2,
    "train_lasr.epochs": 2,
    "train_lasr.ablations": [],
    "evaluate.bootstrap_resamples": 200,
    "evaluate.distill_epochs": 2,
}


def implemented_stages(root: Path) -> list[str]:
    """The leading stages of dvc.yaml whose ``lira/stages/<name>.py`` exists (later ones need them)."""
    declared = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    assert declared == list(STAGES)
    out = []
    for name in declared:
        if not (root / "lira" / "stages" / f"{name}.py").is_file():
            break
        out.append(name)
    if len(out) < len(declared):
        warnings.warn(f"e2e: stages not implemented yet, not run: {declared[len(out):]}")
    return out


def slice_overrides(root: Path, n_languages: int = 2) -> dict:
    """SLICE plus ``shared.languages``: the first ``n_languages`` of params.yaml that the sample ships
    (two: what the flow checks - every stage ran, then none - does not grow with the languages)."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    have = {p.name for p in (root / "lira" / "sample" / "data").iterdir() if p.is_dir()}
    lacking = sorted(set(params["shared"]["languages"]) - have)
    if lacking:
        warnings.warn(f"e2e: the shipped sample lacks {lacking}")
    langs = [lang for lang in params["shared"]["languages"] if lang in have][:n_languages]
    return {**SLICE, "shared.languages": langs}


def stage_outputs(root: Path, stages: list[str]) -> list[Path]:
    """Every ``outs``/``metrics``/``plots`` path dvc.yaml declares for ``stages``."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    paths = []
    for name in stages:
        for field in ("outs", "metrics", "plots"):
            for entry in spec[name].get(field, []):
                paths.append(root / (entry if isinstance(entry, str) else next(iter(entry))))
    return paths


def mtimes(paths: list[Path]) -> dict[str, int]:
    out = {}
    for p in paths:
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            out[str(f)] = f.stat().st_mtime_ns
    return out


def artifact_keys(flow_run_id) -> set[str]:
    import asyncio

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )

    return {a.key for a in asyncio.run(read()) if a.key}


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_pipeline_runs_every_stage_then_nothing(prefect_harness, project_copy):
    from flows.pipeline import lira_pipeline

    root = project_copy
    stages = implemented_stages(root)
    assert stages, "no stage implemented"
    overrides = slice_overrides(root)
    params_before = (root / "params.yaml").read_bytes()

    state = lira_pipeline(overrides=overrides, stages=stages, root=str(root), return_state=True)
    assert state.is_completed(), state.message
    first = state.result()
    assert [r["stage"] for r in first["stages"]] == stages
    assert all(r["status"] == "ran" for r in first["stages"]), first["stages"]
    outputs = stage_outputs(root, stages)
    missing = [str(p.relative_to(root)) for p in outputs if not p.exists()]
    assert not missing, f"declared outputs not produced: {missing}"
    assert (root / "params.yaml").read_bytes() == params_before  # overrides were for this run only
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert lock["build_dataset"]["params"]["params.yaml"]["build_dataset"]["max_per_language"] == 6
    keys = artifact_keys(state.state_details.flow_run_id)
    assert "lira-stages" in keys
    if "evaluate" in stages:
        assert first["metrics"], "evaluate ran but no metrics were published"
        assert json.loads((root / "metrics" / "evaluate.json").read_text())
        assert "lira-metrics" in keys
        if (root / "metrics" / "mlflow_run.json").exists():
            assert first["mlflow_run"]["run_id"] and "lira-mlflow-run" in keys
        else:
            warnings.warn("e2e: evaluate wrote no metrics/mlflow_run.json yet: MLflow link not checked")

    before = mtimes(outputs)
    second = lira_pipeline(overrides=overrides, stages=stages, root=str(root))
    assert [r["status"] for r in second["stages"]] == ["skipped"] * len(stages), second["stages"]
    assert mtimes(outputs) == before
