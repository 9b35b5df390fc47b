"""A no-change ``lira run`` asks DVC in-process and, with nothing to reproduce, makes no MLflow run.

Reproduction (issue 15, rerun <= 3 s): every rerun started ``dvc repro`` in a second interpreter and
created an MLflow parent run (importing MLflow and opening its store) before DVC found that nothing
had changed: 6-8 s for nothing. Each test here can fail: the old code printed ``$ dvc repro`` and
added a parent run on the second call.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lira.cli import app

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["tracking"].update(enabled=True, tracking_uri=f"sqlite:///{root / 'mlruns.db'}")
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    (root / "in.txt").write_text("one\n")
    # A stage with a dep and an out (DVC treats a stage without deps as always changed) that logs
    # to MLflow as a lira stage does (the first stage that logs makes the pipeline's parent run).
    (root / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {"copy": {"cmd": LOGGING_COPY, "deps": ["in.txt"], "outs": ["out.txt"]}}}))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    subprocess.run([str(VENV_BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, check=True, capture_output=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LIRA_MLFLOW_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("PATH", str(VENV_BIN) + ":" + __import__("os").environ.get("PATH", ""))
    return root


LOGGING_COPY = ("python -c \"from lira.config import load_params; from lira.tracking.runs import log_stage; p = load_params(); "
                "log_stage(p.tracking, '.', 'build_dataset', {'rows': 1}, config=p.resolved(), paths=p.shared.paths)\" && cp in.txt out.txt")


def parent_runs(root: Path) -> int:
    """Pipeline parent runs in the project's store (named ``pipeline <commit> params <hash>``)."""
    if not (root / "mlruns.db").exists():
        return 0
    with sqlite3.connect(root / "mlruns.db") as db:
        if not db.execute("select name from sqlite_master where type = 'table' and name = 'runs'").fetchone():
            return 0
        return db.execute("select count(*) from runs where name like 'pipeline%'").fetchone()[0]


def test_a_no_change_rerun_skips_dvc_repro_and_mlflow(project):
    first = CliRunner().invoke(app, ["run"])
    assert first.exit_code == 0, first.output
    assert "$ dvc repro" in first.output and (project / "out.txt").read_text() == "one\n"
    assert parent_runs(project) == 1

    again = CliRunner().invoke(app, ["run"])
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output and "$ dvc repro" not in again.output, again.output
    assert parent_runs(project) == 1, "a no-change rerun made an MLflow parent run"


def test_a_changed_dep_still_reproduces_and_tracks(project):
    assert CliRunner().invoke(app, ["run"]).exit_code == 0
    (project / "in.txt").write_text("two\n")
    again = CliRunner().invoke(app, ["run"])
    assert again.exit_code == 0, again.output
    assert "$ dvc repro" in again.output and (project / "out.txt").read_text() == "two\n"
    assert parent_runs(project) == 2


def test_a_deleted_output_is_reproduced(project):
    assert CliRunner().invoke(app, ["run"]).exit_code == 0
    (project / "out.txt").unlink()
    again = CliRunner().invoke(app, ["run"])
    assert again.exit_code == 0, again.output
    assert "$ dvc repro" in again.output and (project / "out.txt").exists()


def test_force_always_reproduces(project):
    assert CliRunner().invoke(app, ["run"]).exit_code == 0
    again = CliRunner().invoke(app, ["run", "--force"])
    assert again.exit_code == 0, again.output
    assert "$ dvc repro --force" in again.output
    assert parent_runs(project) == 2


def test_a_clean_status_is_remembered_and_any_change_asks_dvc_again(project, monkeypatch):
    from lira import pipeline_status as S

    assert CliRunner().invoke(app, ["run"]).exit_code == 0
    assert not (project / S.MEMO).exists()  # the first run reproduced: nothing clean to remember
    assert "nothing to reproduce" in CliRunner().invoke(app, ["run"]).output
    assert (project / S.MEMO).exists()

    calls = []
    real = S.dvc_up_to_date
    monkeypatch.setattr(S, "dvc_up_to_date", lambda root, target: calls.append(target) or real(root, target))
    assert "nothing to reproduce" in CliRunner().invoke(app, ["run"]).output
    assert calls == [], "an unchanged workspace asked DVC again"

    # Same bytes, new mtime: DVC is asked (and says clean), the memo is renewed.
    (project / "in.txt").write_text("one\n")
    assert "nothing to reproduce" in CliRunner().invoke(app, ["run"]).output and calls == [None]

    # New bytes: DVC is asked and the stage reruns - the memo never hides a change.
    (project / "in.txt").write_text("three\n")
    out = CliRunner().invoke(app, ["run"]).output
    assert "$ dvc repro" in out and (project / "out.txt").read_text() == "three\n" and len(calls) == 2


def test_the_fingerprint_sees_every_file_under_a_tracked_folder(project):
    from lira.pipeline_status import fingerprint

    (project / "dvc.lock").write_text(yaml.safe_dump(
        {"schema": "2.0", "stages": {"s": {"cmd": "x", "deps": [{"path": "dir"}], "outs": [{"path": "o.txt"}],
                                           "params": {"params.yaml": {}}}}}))
    (project / "dir" / "sub").mkdir(parents=True)
    (project / "dir" / "sub" / "a.txt").write_text("a")
    first = fingerprint(project)
    assert fingerprint(project) == first
    (project / "dir" / "sub" / "b.txt").write_text("b")  # a new file deep in a dep folder
    second = fingerprint(project)
    assert second != first
    (project / "o.txt").write_text("out")  # an output appearing
    assert fingerprint(project) != second
    third = fingerprint(project)
    (project / "params.yaml").write_text((project / "params.yaml").read_text() + "\n")
    assert fingerprint(project) != third
