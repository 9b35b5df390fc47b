"""The retrain and promote flows' wiring, on a tiny DVC project and a stand-in registry.

The six stages are one-line scripts; ``lira.tracking.registry.promote`` is replaced by a recorder,
so these tests check what the flows do around the pipeline (sync, evaluation check, promotion),
not the registry's gate (tested with lira.tracking).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lira.config import STAGES
from lira.tracking import registry

STAGE = """\
import json, sys
from pathlib import Path
name = sys.argv[1]
Path("out").mkdir(exist_ok=True)
Path("out", name + ".txt").write_text(name)
if name == "evaluate" and "--no-report" not in sys.argv:
    Path("metrics").mkdir(exist_ok=True)
    report = {"systems": {"lira": {"retrieval": {"ndcg@10": 0.61}}}, "sts": {"spearman": 0.5}}
    Path("metrics/evaluate.json").write_text(json.dumps(report))
"""


@pytest.fixture
def tiny(tmp_path, dvc_project) -> Path:
    root = dvc_project(tmp_path / "tiny", {s: f"python stage.py {s}" for s in STAGES})
    (root / "stage.py").write_text(STAGE, encoding="utf-8")
    return root


@pytest.fixture
def registry_calls(monkeypatch) -> list[dict]:
    calls: list[dict] = []

    def fake_promote(tracking, root=".", version=None, force=False, *, resamples, confidence, seed):
        calls.append({"root": Path(root), "version": version, "force": force, "seed": seed})
        return registry.Decision(promoted=force, message="forced" if force else "refused: not better", version="3")

    monkeypatch.setattr(registry, "promote", fake_promote)
    return calls


def test_retrain_runs_pipeline_checks_evaluation_then_promotes(prefect_harness, tiny, registry_calls, monkeypatch):
    from flows.retrain import retrain

    # $LIRA_DVC_REMOTE picks the remote; an unusable one costs a warning, never the run.
    monkeypatch.setenv("LIRA_DVC_REMOTE", "no-such-remote")
    out = retrain(overrides={"shared.seed": 5}, force=True, root=str(tiny))
    assert [s["stage"] for s in out["pipeline"]["stages"]] == list(STAGES)
    assert out["pull"]["remote"] == out["push"]["remote"] == "no-such-remote"
    assert out["push"]["done"] is False and "doesn't exist" in out["push"]["reason"]
    assert out["evaluation"] == {"gate_metric": "retrieval.ndcg@10", "value": 0.61, "n_metrics": 2}
    # The registry saw the run's params (overrides included) and the project root.
    assert registry_calls == [{"root": tiny.resolve(), "version": None, "force": True, "seed": 5}]
    assert out["promotion"]["promoted"] is True and out["promotion"]["version"] == "3"
    assert "seed: 13" in (tiny / "params.yaml").read_text()  # the override was for that run only


def test_retrain_without_evaluation_report_never_touches_the_registry(prefect_harness, tiny, registry_calls):
    from flows.retrain import retrain

    dvc = (tiny / "dvc.yaml").read_text().replace("python stage.py evaluate", "python stage.py evaluate --no-report")
    (tiny / "dvc.yaml").write_text(dvc)
    state = retrain(pull=False, push=False, root=str(tiny), return_state=True)
    assert state.is_failed()
    with pytest.raises(FileNotFoundError, match="evaluate.json"):
        state.result()
    assert registry_calls == []


def test_promote_flow_passes_version_and_force(prefect_harness, tiny, registry_calls):
    from flows.promote import promote

    state = promote(version="3", force=False, root=str(tiny), return_state=True)
    # a refusal is not green: the run ends Failed, named Refused, with the gate's reason
    assert state.is_failed() and state.name == "Refused"
    assert "refused: not better" in state.message and "version 3" in state.message
    out = state.result(raise_on_failure=False)
    assert out["promoted"] is False and out["message"] == "refused: not better"
    assert registry_calls[-1]["version"] == "3" and registry_calls[-1]["force"] is False
    assert json.dumps(out)  # plain data: it is the flow run's result in the UI
    forced = promote(version=7, force=True, root=str(tiny), return_state=True)  # `--param version=7`: an int
    assert forced.is_completed() and registry_calls[-1]["version"] == "7"


def test_a_retrain_the_gate_refuses_does_not_end_green(prefect_harness, tiny, registry_calls):
    from flows.retrain import retrain

    state = retrain(pull=False, push=False, root=str(tiny), return_state=True)
    assert state.is_failed() and state.name == "Refused"
    assert state.message.startswith("lira-retrain: the gate refused version 3: refused: not better")
    record = state.result(raise_on_failure=False)
    assert record["promotion"]["promoted"] is False and [s["stage"] for s in record["pipeline"]["stages"]] == list(STAGES)
