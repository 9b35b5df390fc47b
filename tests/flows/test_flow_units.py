"""The pipeline flow's pure pieces: overrides, params writing, tags, DVC output parsing, artifacts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from flows.pipeline import (
    StageError,
    classify,
    flatten_metrics,
    flatten_overrides,
    mlflow_run_url,
    needs_gpu,
    project_root,
    resolve_params,
    select_stages,
    stage_env,
    stage_tags,
    write_overrides,
)
from flows.pipeline import (
    set_dotted as _set_dotted,
)
from lira.config import STAGES, ConfigError, parse_params

MAIN = Path(__file__).resolve().parents[2]


def test_flatten_overrides_accepts_dotted_nested_and_cli_forms():
    assert flatten_overrides({"train_arca.lr": 0.005}) == {"train_arca.lr": 0.005}
    assert flatten_overrides({"train_arca": {"lr": 0.005, "epochs": 3}}) == {"train_arca.lr": 0.005, "train_arca.epochs": 3}
    assert flatten_overrides(["train_lasr.ablations=[]", "shared.seed=7"]) == {"train_lasr.ablations": [], "shared.seed": 7}
    assert flatten_overrides(None, preset="base") == {"shared.preset": "base"}
    # An empty dict value is a value (e.g. clearing a mapping), not "no override".
    assert flatten_overrides({"a.b": {}}) == {"a.b": {}}


def test_set_dotted_walks_lists_and_creates_null_mappings():
    data = {"translate": {"agents": [{"name": "a", "noise": 0.1}]}, "critic_score": {"llm": None}}
    _set_dotted(data, "translate.agents.0.noise", 0.9)
    _set_dotted(data, "critic_score.llm.model", "m")
    assert data["translate"]["agents"][0]["noise"] == 0.9
    assert data["critic_score"]["llm"] == {"model": "m"}
    with pytest.raises(ConfigError, match="not an index"):
        _set_dotted(data, "translate.agents.5.noise", 1)
    with pytest.raises(ConfigError, match="not a mapping"):
        _set_dotted(data, "translate.agents.0.noise.x", 1)


def test_resolve_params_validates_before_anything_runs(tmp_path):
    (tmp_path / "params.yaml").write_text((MAIN / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    params = resolve_params(tmp_path, {"train_arca.lr": 0.005, "train_lasr.ablations": [], "shared.preset": "base"})
    assert params.train_arca.lr == 0.005 and params.train_lasr.ablations == [] and params.shared.preset == "base"
    with pytest.raises(ConfigError, match=r"train_arca\.lr"):
        resolve_params(tmp_path, {"train_arca.lr": -1})
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_params(tmp_path, {"train_arca.learning_rate": 0.1})


def test_write_overrides_keeps_comments_and_sets_values(tmp_path):
    p = tmp_path / "params.yaml"
    # params.yaml explains nothing inline (lira config explain does); a user's own comment must survive
    text = (MAIN / "params.yaml").read_text(encoding="utf-8").replace("  device: cpu\n", "  device: cpu  # cpu | cuda | auto\n")
    assert "# cpu | cuda | auto" in text
    p.write_text(text, encoding="utf-8")
    flat = {
        "train_arca.epochs": 2,
        "train_lasr.ablations": [],
        "shared.languages": ["vi", "th"],
        "critic_score.llm": {"backend": "openai", "model": "m"},
        "shared.preset": None,
    }
    write_overrides(p, flat)
    text = p.read_text(encoding="utf-8")
    assert "# lira's parameters" in text and "# cpu | cuda | auto" in text  # comments survive
    data = yaml.safe_load(text)
    assert data["train_arca"]["epochs"] == 2
    assert data["train_lasr"]["ablations"] == []
    assert data["shared"]["languages"] == ["vi", "th"]
    assert data["critic_score"]["llm"] == {"backend": "openai", "model": "m"}
    assert data["shared"]["preset"] is None and "preset: null" in text
    # Everything else is untouched and still valid.
    assert data["train_arca"]["lr"] == yaml.safe_load((MAIN / "params.yaml").read_text())["train_arca"]["lr"]
    parse_params(data)


def _params(**sections):
    return parse_params(sections)


def test_gpu_tags_follow_device_and_in_process_backends():
    cpu = _params()
    assert [t for s in STAGES for t in stage_tags(s, cpu) if t in ("gpu", "cpu")] == ["cpu"] * 6
    cuda = _params(shared={"device": "cuda"})
    assert {s for s in STAGES if needs_gpu(s, cuda)} == {"translate", "critic_score", "train_arca", "train_lasr"}
    hf = _params(translate={"agents": [{"name": "qwen", "backend": "transformers", "model": "x"}]})
    assert needs_gpu("translate", hf) and not needs_gpu("train_arca", hf)
    http = _params(translate={"agents": [{"name": "qwen", "backend": "openai", "model": "x"}]},
                   critic_score={"llm": {"backend": "vllm", "model": "y"}})
    assert not needs_gpu("translate", http)  # the server has the GPU, not the task
    assert needs_gpu("critic_score", http)
    assert stage_tags("evaluate", cuda) == ["lira", "stage:evaluate", "cpu"]


def test_classify_reads_dvc_messages():
    assert classify("translate", ["Running stage 'translate':", "> lira stage translate"]) == "ran"
    assert classify("translate", ["Stage 'translate' didn't change, skipping"]) == "skipped"
    assert classify("translate", ["Stage 'translate' is cached - skipping run, checking out outputs"]) == "restored"
    assert classify("translate", ["Stage 'critic_score' didn't change, skipping"]) == "unknown"


def test_stage_error_keeps_stderr_tail_and_knows_what_to_retry():
    err = StageError("translate", 255, ["boom: server down",
                                        "ERROR: failed to reproduce 'translate': failed to run: lira stage translate, exited with 1"])
    assert "boom: server down" in str(err) and "'translate'" in str(err)
    assert err.stage_exit_code == 1 and err.retryable
    usage = StageError("translate", 255, ["ERROR: failed to reproduce 'translate': failed to run: x, exited with 2"])
    assert not usage.retryable
    assert not StageError("translate", 255, ["ERROR: failed to reproduce 'translate': missing dependencies"]).retryable
    assert StageError("translate", 255, ["ERROR: Unable to acquire lock"]).retryable


def test_select_stages_keeps_dvc_order_and_rejects_unknown():
    assert select_stages(None) == list(STAGES)
    assert select_stages(["evaluate", "build_dataset"]) == ["build_dataset", "evaluate"]
    with pytest.raises(ValueError, match="unknown stage"):
        select_stages(["train"])


def test_flatten_metrics_rows():
    rows = flatten_metrics({"retrieval": {"ndcg@10": {"lira": 0.51234567, "frozen": 0.4}}, "k": [1, 5], "n": 3})
    assert rows == [
        {"metric": "retrieval.ndcg@10.lira", "value": 0.512346},
        {"metric": "retrieval.ndcg@10.frozen", "value": 0.4},
        {"metric": "k[0]", "value": 1},
        {"metric": "k[1]", "value": 5},
        {"metric": "n", "value": 3},
    ]


def test_mlflow_link_only_for_a_server(monkeypatch):
    monkeypatch.delenv("LIRA_MLFLOW_UI_URL", raising=False)
    run = {"run_id": "abc", "experiment_id": "3", "tracking_uri": "http://127.0.0.1:5000/"}
    assert mlflow_run_url(run) == "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert mlflow_run_url({**run, "tracking_uri": "sqlite:///mlruns.db"}) is None
    assert mlflow_run_url({**run, "run_id": None}) is None
    # A worker tracks to http://mlflow:5000; the reader's browser gets the published UI.
    monkeypatch.setenv("LIRA_MLFLOW_UI_URL", "http://127.0.0.1:5001")
    inside = {**run, "tracking_uri": "http://mlflow:5000"}
    assert mlflow_run_url(inside) == "http://127.0.0.1:5001/#/experiments/3/runs/abc?workflowType=machine_learning"


def test_stage_env_puts_this_venv_first(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    env = stage_env({"PATH": "/usr/bin", "HF_HUB_OFFLINE": "0"})
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["DVC_NO_ANALYTICS"] == "1" and env["HF_HUB_OFFLINE"] == "0"  # a worker's choice wins


def test_project_root_needs_dvc_yaml(tmp_path, monkeypatch):
    monkeypatch.delenv("LIRA_ROOT", raising=False)
    assert project_root(None) == MAIN
    with pytest.raises(FileNotFoundError, match="dvc.yaml"):
        project_root(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LIRA_ROOT", str(tmp_path))
    assert project_root(None) == tmp_path.resolve()


HOLD_LOCK = """\
import fcntl, sys, time
from pathlib import Path
p = Path(sys.argv[1]) / ".dvc" / "tmp"
p.mkdir(parents=True, exist_ok=True)
fh = open(p / "lira-flow.lock", "a+")
fcntl.flock(fh, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(30)
"""


def test_workspace_lock_excludes_other_processes_and_is_reentrant(tmp_path):
    import subprocess
    import time

    from flows import pipeline

    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="held by another lira run"), pipeline.workspace_lock(tmp_path, timeout=1.0):
            pass
        assert time.monotonic() - t0 >= 1.0
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # Re-entrant within a process (retrain holds it around the pipeline subflow), free afterwards.
    with pipeline.workspace_lock(tmp_path, timeout=1.0), pipeline.workspace_lock(tmp_path, timeout=1.0):
        assert pipeline._held
    assert not pipeline._held
