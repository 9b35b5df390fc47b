"""A failing stage is retried (server stages only, transient failures only), then reported with its error.

Runs real flows on the Prefect test harness against a tiny DVC project whose ``translate`` stage is a
script that counts its attempts and fails.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from flows import pipeline

FAIL = """\
import sys
from pathlib import Path
with Path("attempts.txt").open("a") as fh:
    fh.write("x\\n")
print("translating...")
print("boom: translator server at http://127.0.0.1:9 refused the connection", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def failing_project(tmp_path, monkeypatch, dvc_project) -> Path:
    # Keep the retry policy (2 retries) but not its minutes of waiting.
    monkeypatch.setattr(pipeline, "SERVER_RETRY_DELAYS", [0.0, 0.0])
    root = dvc_project(tmp_path / "proj", {"translate": "python fail.py 1", "train_arca": "python fail.py 1"})
    (root / "fail.py").write_text(FAIL, encoding="utf-8")
    return root


def _attempts(root: Path) -> int:
    f = root / "attempts.txt"
    return len(f.read_text().splitlines()) if f.exists() else 0


def _task_runs(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))

    return {tr.name: tr for tr in asyncio.run(read())}


def test_server_stage_is_retried_then_fails_with_stderr(prefect_harness, failing_project):
    params_before = (failing_project / "params.yaml").read_bytes()
    state = pipeline.lira_pipeline(
        stages=["translate"], root=str(failing_project), overrides={"shared.seed": 7}, return_state=True
    )
    assert state.is_failed()
    assert "boom: translator server" in state.message or "boom: translator server" in str(
        state.result(raise_on_failure=False)
    )
    assert _attempts(failing_project) == 3  # 1 try + SERVER_RETRIES
    runs = _task_runs(state.state_details.flow_run_id)
    translate = next(tr for name, tr in runs.items() if name.startswith("translate"))
    assert translate.run_count == 3
    assert translate.state.is_failed()
    assert "boom: translator server" in translate.state.message
    assert set(translate.tags) == {"lira", "stage:translate", "cpu"}
    # The overrides were written for the run and put back after the failure.
    assert (failing_project / "params.yaml").read_bytes() == params_before


def test_non_server_stage_and_usage_errors_are_not_retried(prefect_harness, failing_project):
    state = pipeline.lira_pipeline(stages=["train_arca"], root=str(failing_project), return_state=True)
    assert state.is_failed() and _attempts(failing_project) == 1

    (failing_project / "attempts.txt").unlink()
    (failing_project / "dvc.yaml").write_text("stages:\n  translate:\n    cmd: python fail.py 2\n")
    state = pipeline.lira_pipeline(stages=["translate"], root=str(failing_project), return_state=True)
    assert state.is_failed()
    assert _attempts(failing_project) == 1  # exit 2 is a config error: no retry
    with pytest.raises(pipeline.StageError, match="exited with 2"):
        state.result()


def test_bad_override_fails_before_any_stage(prefect_harness, failing_project):
    before = (failing_project / "params.yaml").read_bytes()
    state = pipeline.lira_pipeline(
        stages=["translate"], root=str(failing_project), overrides={"train_arca.lr": -1}, return_state=True
    )
    assert state.is_failed()
    with pytest.raises(Exception, match=r"train_arca\.lr"):
        state.result()
    assert _attempts(failing_project) == 0
    assert (failing_project / "params.yaml").read_bytes() == before


def test_keep_overrides_leaves_them_in_params(prefect_harness, tmp_path, dvc_project):
    root = dvc_project(tmp_path / "ok", {"build_dataset": f"{sys.executable} -c \"print('ok')\""})
    result = pipeline.lira_pipeline(
        stages=["build_dataset"], root=str(root), overrides={"shared.seed": 99}, keep_overrides=True
    )
    assert result["stages"] == [{"stage": "build_dataset", "status": "ran", "seconds": result["stages"][0]["seconds"]}]
    text = (root / "params.yaml").read_text()
    assert "seed: 99" in text and "# kept" in text
