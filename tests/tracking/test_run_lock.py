"""``lira run`` takes the workspace locks before it touches tracking (issue 17 item 15).

Reproduction: a second ``lira run`` refused by DVC's lock still created an empty MLflow parent run
and repointed ``.cache/lira/mlflow_parent.json``. A holder process keeps either DVC's repository
lock (as a running ``dvc repro`` does) or lira's workspace lock (as a running ``lira run`` or flow
run does); the refused run must leave no MLflow store, no parent run and no parent record.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lira.cli import app

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

HOLD = """\
import sys, time
from pathlib import Path
p = Path(sys.argv[1])
p.parent.mkdir(parents=True, exist_ok=True)
if sys.argv[2] == "dvc":
    import zc.lockfile
    lock = zc.lockfile.LockFile(str(p))  # what dvc's Lock does
else:
    import fcntl
    fh = open(p, "a+")
    fcntl.flock(fh, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["tracking"].update(enabled=True, tracking_uri=f"sqlite:///{root / 'mlruns.db'}")
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    # One harmless stage: without the fix the refused run would reach `dvc repro`.
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"hello": {"cmd": "echo hello"}}}))
    subprocess.run([str(VENV_BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, check=True, capture_output=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LIRA_MLFLOW_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    return root


@pytest.mark.parametrize("held", ["dvc", "lira"])
def test_a_refused_run_touches_no_tracking(project, held):
    lock = project / ".dvc" / "tmp" / ("lock" if held == "dvc" else "lira-flow.lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), held], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = CliRunner().invoke(app, ["run"])
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert result.exit_code != 0
    assert "held by" in result.output or "is running" in result.output, result.output
    assert not (project / ".cache" / "lira" / "mlflow_parent.json").exists()
    assert not (project / "mlruns.db").exists(), "an MLflow store (and a parent run) was created"


# A stand-in for `lira stage build_dataset` that logs to MLflow exactly as a stage does, at no cost.
FAKE_STAGE = ("python -c \"from lira.config import load_params; from lira.tracking.runs import log_stage; p = load_params(); "
              "log_stage(p.tracking, '.', 'build_dataset', {'rows': 1}, config=p.resolved(), paths=p.shared.paths)\" && echo done > out.txt")


def test_an_unlocked_run_tracks_once_and_a_no_change_run_creates_no_run(project, monkeypatch):
    import mlflow

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"build": {"cmd": FAKE_STAGE, "outs": ["out.txt"]}}}))
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 0, result.output
    assert (project / ".cache" / "lira" / "mlflow_parent.json").exists()
    assert (project / "dvc.lock").exists()
    c = mlflow.MlflowClient(f"sqlite:///{project / 'mlruns.db'}")
    exp = c.get_experiment_by_name("lira")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # not the GenAI view
    runs = c.search_runs([exp.experiment_id])
    assert len(runs) == 2
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert parent.info.run_name.startswith("pipeline ") and parent.info.run_name != "pipeline"
    assert child.info.run_name == "build_dataset"
    # the parent spans the pipeline: it starts before its stage and ends after it
    assert parent.info.status == "FINISHED"
    assert parent.info.start_time <= child.info.start_time and parent.info.end_time >= child.info.end_time

    again = CliRunner().invoke(app, ["run"])  # nothing changed: DVC reruns nothing
    assert again.exit_code == 0, again.output
    assert len(c.search_runs([exp.experiment_id])) == 2, "a no-change `lira run` created a run"
