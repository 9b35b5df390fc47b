"""The pyfunc round trip: log + register a LiRA folder, load it from the registry, same embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lira.model import LiraModel
from lira.tracking import registry, runs
from lira.tracking.model import log_lira_model, validate_gate

TEST_SET = "ab" * 32
GATE = {
    "format": "lira-gate/2",
    "test_set_sha256": TEST_SET,
    "query_ids": ["q1", "q2", "q3"],
    "metrics": {"retrieval.ndcg@10": [0.5, 0.6, 0.7]},
    "baselines": {"frozen": {"retrieval.ndcg@10": [0.4, 0.5, 0.5]}},
}


def test_registered_pyfunc_predicts_the_in_process_embeddings(tracked, lira_folder):
    import mlflow

    params, root = tracked
    run_id = runs.log_stage(params.tracking, root, "evaluate", {"retrieval": {"ndcg@10": 0.6}}, config=params.resolved(), paths=params.shared.paths)
    version = log_lira_model(params.tracking, root, lira_folder, run_id, GATE)
    assert version == "1"
    c = runs.client(params.tracking, root)
    mv = c.get_model_version("lira-test", version)
    assert mv.run_id == run_id and mv.tags["gate.metric"] == "retrieval.ndcg@10"
    assert mv.tags["lira.test_set_sha256"] == TEST_SET and len(mv.tags["lira.manifest_sha256"]) == 64
    assert c.get_run(run_id).data.tags["lira.gate_sha256"] == mv.tags["lira.gate_sha256"]
    assert [a.path for a in c.list_artifacts(run_id)] == ["gate.json"]
    assert registry.read_gate(params.tracking, root, version)["metrics"] == GATE["metrics"]

    texts = ["Điện thoại này có pin rất tốt.", "โทรศัพท์เครื่องนี้แบตเตอรี่ดีมาก", "ốp lưng iphone", "sạc dự phòng", "a phone case"]
    langs = ["vi", "th", "vi", "vi", "en"]  # English text too: the same space (issue 13)
    kinds = ["query", "query", "passage", "query", "query"]
    trans = [None, None, None, "a power bank", None]
    with runs.using_tracking_uri(runs.tracking_uri(params.tracking, root)):
        loaded = mlflow.pyfunc.load_model(f"models:/lira-test/{version}")
    sig = loaded.metadata.signature
    assert {c.name: c.required for c in sig.inputs.inputs} == {
        "text": True,
        "lang": True,
        "kind": False,
        "translation": False,
    }
    got = loaded.predict(pd.DataFrame({"text": texts, "lang": langs, "kind": kinds, "translation": trans}))
    # only the required columns: kind defaults to query, no English path
    got_min = loaded.predict(pd.DataFrame({"text": texts[:2], "lang": langs[:2]}))

    m = LiraModel.load(lira_folder)
    want = np.concatenate(
        [
            m.embed(texts[:2], ["vi", "th"], kind="query"),
            m.embed([texts[2]], "vi", kind="passage"),
            m.embed([texts[3]], "vi", kind="query", translations=[trans[3]]),
            m.embed([texts[4]], "en", kind="query"),
        ]
    )
    assert got.shape == (5, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got_min, want[:2], atol=1e-5)
    # the translation and the kind really change the embedding (the test can tell them apart)
    assert not np.allclose(want[3], m.embed([texts[3]], "vi", kind="query"), atol=1e-4)
    assert not np.allclose(want[2], m.embed([texts[2]], "vi", kind="query"), atol=1e-4)


def test_logging_loads_the_model_once_and_pickles_no_weights(tracked, lira_folder, monkeypatch):
    """The signature is stated, not inferred: the model is loaded only by MLflow's serving check,
    the pickled pyfunc carries no LiraModel, and the signature equals what a prediction gives."""
    import cloudpickle
    import mlflow
    from mlflow.models import infer_signature

    import lira.model
    from lira.tracking.model import LiraPyfunc, input_example

    loads = []
    real = lira.model.LiraModel.load.__func__

    def counting(cls, *a, **k):
        loads.append(a[0])
        return real(cls, *a, **k)

    monkeypatch.setattr(lira.model.LiraModel, "load", classmethod(counting))
    params, root = tracked
    run_id = runs.log_stage(params.tracking, root, "evaluate", {"retrieval": {"ndcg@10": 0.6}}, config=params.resolved(), paths=params.shared.paths)
    version = log_lira_model(params.tracking, root, lira_folder, run_id, GATE)
    assert len(loads) <= 1  # at most MLflow's validation of the serving input example

    with runs.using_tracking_uri(runs.tracking_uri(params.tracking, root)):
        local = Path(mlflow.artifacts.download_artifacts(f"models:/lira-test/{version}"))
        logged = mlflow.models.get_model_info(f"models:/lira-test/{version}").signature
    assert (local / "python_model.pkl").stat().st_size < 100_000
    model = LiraPyfunc()
    model.model = LiraModel.load(lira_folder)
    assert not hasattr(cloudpickle.loads(cloudpickle.dumps(model)), "model")  # load_context rebuilds it
    example = input_example(lira_folder)
    assert logged == infer_signature(example, model.predict(None, example))


def test_the_serving_check_loads_the_model_from_the_given_cache(tracked, lira_folder, monkeypatch, tmp_path):
    """MLflow's input-example check reloads the logged copy; with ``cache_dir`` it reads the backbone
    from that cache (the pipeline's, warm), and LIRA_CACHE is as it was afterwards."""
    import lira.model

    seen = []
    real = lira.model.LiraModel.load.__func__

    def recording(cls, *a, **k):
        seen.append(lira.model.default_cache_dir())
        return real(cls, *a, **k)

    monkeypatch.setattr(lira.model.LiraModel, "load", classmethod(recording))
    monkeypatch.setenv("LIRA_CACHE", str(tmp_path / "elsewhere"))
    params, root = tracked
    run_id = runs.log_stage(params.tracking, root, "evaluate", {"retrieval": {"ndcg@10": 0.6}}, config=params.resolved(), paths=params.shared.paths)
    warm = tmp_path / "pipeline-cache"
    log_lira_model(params.tracking, root, lira_folder, run_id, GATE, cache_dir=warm)
    assert seen == [warm.resolve()]
    assert lira.model.default_cache_dir() == tmp_path / "elsewhere"


def test_log_lira_model_rejects_a_bad_gate_or_folder(tracked, lira_folder, tmp_path):
    params, root = tracked
    nd = "retrieval.ndcg@10"
    with pytest.raises(ValueError, match="has 2 values for 3 query_ids"):
        validate_gate({**GATE, "metrics": {nd: [0.1, 0.2]}})
    with pytest.raises(ValueError, match="baseline 'frozen'"):
        validate_gate({**GATE, "baselines": {"frozen": {nd: [0.1]}}})
    with pytest.raises(ValueError, match="finite"):
        validate_gate({**GATE, "metrics": {nd: [0.1, float("nan"), 0.2]}})
    with pytest.raises(ValueError, match="format"):
        validate_gate({"metric": nd, "query_ids": ["q1"], "values": [0.5]})  # the old, unhashed record
    with pytest.raises(ValueError, match="test_set_sha256"):
        validate_gate({**GATE, "test_set_sha256": "short"})
    with pytest.raises(FileNotFoundError, match="lira_model.json"):
        log_lira_model(params.tracking, root, tmp_path, "no-run", GATE)
    with pytest.raises(ValueError, match="tracking.gate_metric"):
        log_lira_model(params.tracking, root, lira_folder, "no-run", {**GATE, "metrics": {"retrieval.mrr@10": [0.1, 0.2, 0.3]}})
    assert json.loads(json.dumps(validate_gate(GATE))) == validate_gate(GATE)
