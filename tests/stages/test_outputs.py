"""The stage modules declare their outputs once; dvc.yaml must say the same, and stages only wire."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from lira.config import STAGES, PathsParams
from lira.stages import declared_outputs

ROOT = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PATHS = PathsParams()


def _paths(entries: list) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


@pytest.mark.parametrize("stage", STAGES)
def test_declared_metrics_and_plots_match_dvc_yaml(stage):
    metrics, plots = declared_outputs(stage)
    spec = DVC[stage]
    declared = _paths(spec.get("metrics")) | _paths(spec.get("plots")) | _paths(spec.get("outs"))
    wanted = {f"{PATHS.metrics}/{m}" for m in metrics} | {f"{PATHS.plots}/{p}" for p in plots}
    assert wanted <= declared, f"{stage}: dvc.yaml lacks {sorted(wanted - declared)}"
    in_dvc = {p for p in declared if (p.startswith(f"{PATHS.metrics}/") and "/cost/" not in p
                                      and not p.endswith(("registry.json", "mlflow_run.json")))
              or p.startswith(f"{PATHS.plots}/")}
    assert in_dvc <= wanted, f"{stage}: dvc.yaml declares {sorted(in_dvc - wanted)} that {stage}.METRICS/PLOTS do not"


def test_evaluate_writes_the_distilled_student_under_a_declared_path():
    assert PATHS.distill in _paths(DVC["evaluate"]["outs"])


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_imports_another_stage(stage):
    module = importlib.import_module(f"lira.stages.{stage}")
    tree = ast.parse(Path(module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    others = {f"lira.stages.{s}" for s in STAGES if s != stage}
    assert not imported & others, f"lira.stages.{stage} imports {sorted(imported & others)}"
