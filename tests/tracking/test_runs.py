"""Nested stage runs under one pipeline parent, params within MLflow's limits, provenance tags."""

from __future__ import annotations

import hashlib
import json

import pytest

from lira.config import parse_params
from lira.tracking import runs


def _client(params, root):
    return runs.client(params.tracking, root)


def test_two_stages_nest_under_one_parent_with_params_metrics_tags_artifacts(tracked, tmp_path, monkeypatch):
    params, root = tracked
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # nothing may land in the CWD (MLflow's ./mlruns default)
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (root / "data.dvc").write_text("outs:\n- md5: abc123.dir\n  path: data/raw\n")
    report = root / "metrics" / "arca.json"
    report.parent.mkdir()
    report.write_text('{"loss": 0.25}')

    r1 = runs.log_stage(params.tracking, root, "build_dataset", {"rows": 120, "note": "ok"}, config=params.resolved(), paths=params.shared.paths)
    r2 = runs.log_stage(
        params.tracking,
        root,
        "train_arca",
        {
            "loss": 0.25,
            "dev": {"ndcg@10": 0.61, "langs": {"vi": 0.7}},
            "bad": float("nan"),
            "flag": True,
            "xs": [1, 2],
        },
        artifacts=[report],
        config=params.resolved(),
        paths=params.shared.paths,
    )
    c = _client(params, root)
    run1, run2 = c.get_run(r1), c.get_run(r2)
    parent = run1.data.tags["mlflow.parentRunId"]
    assert run2.data.tags["mlflow.parentRunId"] == parent  # one parent for both stages
    assert c.get_run(parent).data.tags["mlflow.runName"].startswith("pipeline ")  # + commit and params hash
    assert run1.info.run_name == "build_dataset" and run2.info.run_name == "train_arca"

    # params: the stage's own section + shared, dotted; nothing from other stages
    p2 = run2.data.params
    assert p2["train_arca.reward.alpha"] == "0.5"
    assert p2["shared.s_feat"] == "2"
    assert json.loads(p2["shared.languages"]) == ["vi", "th"]
    assert not any(k.startswith("train_lasr.") for k in p2)
    assert not any(k.startswith("train_arca.") for k in run1.data.params)
    assert run1.data.params["build_dataset.split.train"] == "0.6"

    # metrics: finite numeric leaves only, dotted, '@' made legal
    assert run2.data.metrics == {"loss": 0.25, "dev.ndcg_at_10": 0.61, "dev.langs.vi": 0.7}
    assert run1.data.metrics == {"rows": 120.0}

    tags = run2.data.tags
    assert tags["lira.stage"] == "train_arca"
    assert tags["lira.git_commit"] == "unknown"  # root is not a git repo
    assert tags["lira.dvc_lock_sha256"] == hashlib.sha256((root / "dvc.lock").read_bytes()).hexdigest()
    assert tags["lira.data_version"] == "abc123.dir"
    assert [a.path for a in c.list_artifacts(r2)] == ["arca.json"]
    assert run2.info.status == "FINISHED"
    assert not (cwd / "mlruns").exists() and not list(cwd.iterdir())


def test_parent_run_logs_more_than_100_params_in_chunks(tracked):
    params, root = tracked
    parent = runs.start_pipeline(params.tracking, root, config=params.resolved(), paths=params.shared.paths)
    logged = _client(params, root).get_run(parent).data.params
    expected, _ = runs.param_entries(params.resolved())
    assert len(expected) > 100  # more than one log_batch can carry
    assert logged == expected


def test_long_values_are_truncated_with_a_tag(tracked):
    params, root = tracked
    c = _client(params, root)
    run = c.create_run(runs.experiment_id(params.tracking, root, c))
    tree = {"a": {f"k{i}": i for i in range(230)}, "long": "x" * 7000}
    runs.log_params(c, run.info.run_id, tree)
    got = c.get_run(run.info.run_id).data
    assert len(got.params) == 231 and got.params["a.k229"] == "229"
    assert len(got.params["long"]) == runs.MAX_PARAM_VALUE and got.params["long"].endswith("...")
    assert "long" in got.tags[runs.TAG_TRUNCATED]


def test_parent_is_reused_until_params_change_and_env_wins(tracked, monkeypatch):
    params, root = tracked
    first = runs.parent_run_id(params.tracking, root, config=params.resolved(), paths=params.shared.paths)
    assert runs.parent_run_id(params.tracking, root, config=params.resolved(), paths=params.shared.paths) == first  # recorded in <cache>/mlflow_parent.json
    assert json.loads((root / params.shared.paths.cache / runs.PARENT_FILE).read_text())["run_id"] == first
    changed = parse_params({**params.model_dump(mode="json"), "train_arca": {"lr": 0.01}})
    second = runs.parent_run_id(changed.tracking, root, config=changed.resolved(), paths=changed.shared.paths)
    assert second != first  # a new params hash starts a new pipeline run
    monkeypatch.setenv(runs.PARENT_ENV, first)
    child = runs.log_stage(changed.tracking, root, "evaluate", {"x": 1.0}, config=changed.resolved(), paths=changed.shared.paths)
    assert _client(params, root).get_run(child).data.tags["mlflow.parentRunId"] == first


def test_disabled_tracking_logs_nothing(tracked):
    params, root = tracked
    off = parse_params(
        {**params.model_dump(mode="json"), "tracking": {**params.tracking.model_dump(), "enabled": False}}
    )
    assert runs.log_stage(off.tracking, root, "evaluate", {"x": 1.0}, config=off.resolved(), paths=off.shared.paths) is None
    assert _client(params, root).get_experiment_by_name(params.tracking.experiment) is None
    assert not (root / params.shared.paths.cache / runs.PARENT_FILE).exists()


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = parse_params({})
    uri = runs.tracking_uri(params.tracking, tmp_path)
    assert uri == f"sqlite:///{(tmp_path / 'mlruns.db').resolve()}"
    assert runs.artifact_location(uri) == (tmp_path / "mlartifacts").resolve().as_uri()
    assert (
        runs.tracking_uri(parse_params({"tracking": {"tracking_uri": "http://x:5000"}}).tracking, tmp_path)
        == "http://x:5000"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert (
        runs.tracking_uri(parse_params({"tracking": {"tracking_uri": "http://x:5000"}}).tracking, tmp_path)
        == "sqlite:////elsewhere.db"
    )


@pytest.mark.parametrize(
    ("name", "key"), [("retrieval.ndcg@10", "retrieval.ndcg_at_10"), ("a b/c:d", "a b/c:d"), ("x(1)", "x_1_")]
)
def test_metric_key_is_legal(name, key):
    assert runs.metric_key(name) == key


def test_portable_uri_records_a_store_inside_the_checkout_relative_to_it(tmp_path):
    from lira.tracking.runs import portable_uri

    inside = f"sqlite:///{(tmp_path / 'mlruns.db').resolve()}"
    assert portable_uri(inside, tmp_path) == "sqlite:///mlruns.db"
    nested = f"sqlite:///{(tmp_path / 'stores' / 'a.db').resolve()}"
    assert portable_uri(nested, tmp_path) == "sqlite:///stores/a.db"
    elsewhere = "sqlite:////srv/mlflow/mlruns.db"
    assert portable_uri(elsewhere, tmp_path) == elsewhere  # named by the user: kept as written
    assert portable_uri("http://mlflow:5000", tmp_path) == "http://mlflow:5000"


def test_stages_under_a_token_are_recorded_then_logged_in_their_order_as_they_ran(tracked, monkeypatch):
    """Under a pipeline token a stage writes its record (no MLflow import); finish_pipeline logs
    them all, each with the time, metrics and dvc.lock of its own stage; a failure keeps the rest."""
    params, root = tracked
    token = runs.pipeline_token()
    monkeypatch.setenv(runs.PIPELINE_ENV, token)
    report = root / "metrics" / "translate.json"
    report.parent.mkdir()
    report.write_text('{"rows": 2}')
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {a: 1}\n")
    cfg = params.resolved()
    first = runs.defer_stage(params.tracking, root, "build_dataset", {"rows": 1}, config=cfg, paths=params.shared.paths,
                             start_ms=1_000_000)
    lock_then = hashlib.sha256((root / "dvc.lock").read_bytes()).hexdigest()
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {a: 1, b: 2}\n")  # DVC records the first stage
    second = runs.defer_stage(params.tracking, root, "translate", {"rows": 2, "dev": {"ndcg@10": 0.5}}, [report],
                              config=cfg, paths=params.shared.paths, start_ms=2_000_000)
    assert first.exists() and second.exists() and first.parent == root / params.shared.paths.cache / runs.PENDING_DIR
    assert not (root / params.shared.paths.cache / runs.PARENT_FILE).exists()  # nothing logged yet: no parent

    parent = runs.finish_pipeline(params.tracking, root, token, ok=True, paths=params.shared.paths)
    c = _client(params, root)
    kids = {r.info.run_name: r for r in c.search_runs([c.get_run(parent).info.experiment_id],
                                                      f"tags.mlflow.parentRunId = '{parent}'")}
    assert set(kids) == {"build_dataset", "translate"} and not list(first.parent.glob("*.json"))
    a, b = kids["build_dataset"], kids["translate"]
    assert a.info.start_time == 1_000_000 and b.info.start_time == 2_000_000 and a.info.end_time <= b.info.end_time
    assert a.data.tags["lira.dvc_lock_sha256"] == lock_then != b.data.tags["lira.dvc_lock_sha256"]
    assert b.data.metrics == {"rows": 2.0, "dev.ndcg_at_10": 0.5} and [x.path for x in c.list_artifacts(b.info.run_id)] == ["translate.json"]
    assert c.get_run(parent).info.status == "FINISHED" and c.get_run(parent).data.tags[runs.TAG_PIPELINE] == token

    # A record that cannot be logged stays (with those after it) for the next flush; it is never dropped.
    bad = runs.defer_stage(params.tracking, root, "translate", {"rows": 3}, [report], config=cfg, paths=params.shared.paths)
    later = runs.defer_stage(params.tracking, root, "critic_score", {"rows": 4}, config=cfg, paths=params.shared.paths)
    report.unlink()
    with pytest.raises(FileNotFoundError, match="translate.json"):
        runs.flush_pending(params.tracking, root, paths=params.shared.paths)
    assert bad.exists() and later.exists()

    # Without a token (a plain dvc repro / lira stage) a stage logs at once, as before.
    monkeypatch.delenv(runs.PIPELINE_ENV)
    bad.unlink()
    assert runs.defer_stage(params.tracking, root, "build_dataset", {"rows": 5}, config=cfg, paths=params.shared.paths) is None
    assert later.exists() and len(list(later.parent.glob("*.json"))) == 1


def test_recording_a_stage_imports_no_mlflow(tracked, tmp_path):
    import subprocess
    import sys

    params, root = tracked
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from lira.config import parse_params\n"
        "from lira.tracking import runs\n"
        f"p = parse_params(json.loads({json.dumps(json.dumps({'tracking': {'tracking_uri': params.tracking.tracking_uri}}))}))\n"
        f"path = runs.defer_stage(p.tracking, Path({str(root)!r}), 'build_dataset', {{'rows': 1}}, config=p.resolved(), paths=p.shared.paths)\n"
        "assert path is not None and path.exists(), path\n"
        "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={
        **__import__("os").environ, runs.PIPELINE_ENV: runs.pipeline_token()}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_parent_closed_by_evaluate_is_finished_without_opening_mlflow(tracked, monkeypatch):
    params, root = tracked
    token = runs.pipeline_token()
    monkeypatch.setenv(runs.PIPELINE_ENV, token)
    cfg = params.resolved()
    runs.log_stage(params.tracking, root, "build_dataset", {"rows": 1}, config=cfg, paths=params.shared.paths)
    parent = runs.close_parent(params.tracking, root, paths=params.shared.paths)
    assert _client(params, root).get_run(parent).info.status == "FINISHED"
    opened = []
    monkeypatch.setattr(runs, "client", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(AssertionError("opened")))
    assert runs.finish_pipeline(params.tracking, root, token, ok=True, paths=params.shared.paths) == parent and not opened
    monkeypatch.undo()
    monkeypatch.setenv(runs.PIPELINE_ENV, token)
    # a failure after it still marks the pipeline FAILED
    assert runs.finish_pipeline(params.tracking, root, token, ok=False, paths=params.shared.paths) == parent
    assert _client(params, root).get_run(parent).info.status == "FAILED"
    monkeypatch.delenv(runs.PIPELINE_ENV)
    assert runs.close_parent(params.tracking, root, paths=params.shared.paths) is None  # no token: nothing to close


def test_a_record_naming_a_file_outside_the_project_is_not_logged(tracked, monkeypatch, tmp_path):
    params, root = tracked
    monkeypatch.setenv(runs.PIPELINE_ENV, runs.pipeline_token())
    outside = tmp_path / "secret.txt"
    outside.write_text("not the project's")
    path = runs.defer_stage(params.tracking, root, "build_dataset", {"rows": 1}, config=params.resolved(),
                            paths=params.shared.paths)
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "artifacts": [str(outside)]}))  # a tampered record
    with pytest.raises(ValueError, match="outside the project"):
        runs.flush_pending(params.tracking, root, paths=params.shared.paths)
    assert path.exists()  # kept, never dropped silently
