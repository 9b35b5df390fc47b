"""A deployment served with ``flows.deploy`` (``prefect.serve``) runs to completion when triggered.

A real ``prefect server`` on 127.0.0.1 (its own PREFECT_HOME), ``python -m flows.deploy`` serving
``lira-pipeline/e2e`` on a copy of the project, then ``run_deployment`` through the API with the
parameters a user would type in the UI. Both processes are always stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prefect.exceptions import PrefectException

MAIN = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None) -> None:
    """Stop a process this test started (and its children: it leads its own session)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _wait(what: str, check, timeout: float, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{what}: a process exited ({p.returncode}):\n" + _tails(logs))
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, PrefectException):
            pass  # not up yet
        time.sleep(1.0)
    raise AssertionError(f"{what}: not ready after {timeout} s\n" + _tails(logs))


def _tails(logs: list[Path]) -> str:
    return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:]) for p in logs if p.exists())


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_served_pipeline_deployment_completes(project_copy, tmp_path):
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    server_log, serve_log = tmp_path / "server.log", tmp_path / "serve.log"
    params_before = (project_copy / "params.yaml").read_bytes()
    server = serve = None
    try:
        with server_log.open("w") as out:
            server = subprocess.Popen(
                [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait("prefect server", lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200,
              150, [server], [server_log])

        with serve_log.open("w") as out:
            serve = subprocess.Popen(
                [sys.executable, "-m", "flows.deploy", "--only", "pipeline", "--name", "e2e", "--root", str(project_copy)],
                cwd=MAIN, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

        async def deployment_exists() -> bool:
            async with get_client() as client:
                await client.read_deployment_by_name("lira-pipeline/e2e")
                return True

        with temporary_settings(updates={PREFECT_API_URL: api}):
            _wait("deployment lira-pipeline/e2e", lambda: asyncio.run(deployment_exists()),
                  120, [server, serve], [server_log, serve_log])
            flow_run = run_deployment(
                "lira-pipeline/e2e",
                parameters={"stages": ["build_dataset"], "overrides": {"build_dataset.max_per_language": 6}},
                timeout=300,
                poll_interval=2,
            )
        assert flow_run.state is not None and flow_run.state.is_completed(), (
            f"final state {flow_run.state}\n" + _tails([serve_log])
        )
        assert (project_copy / "data" / "prepared" / "texts.parquet").is_file()
        assert (project_copy / "params.yaml").read_bytes() == params_before  # overrides were for the run only
        # MLflow: the flow run's parent was made by its stage and closed by the flow, FINISHED
        import mlflow

        c = mlflow.MlflowClient(f"sqlite:///{project_copy / 'mlruns.db'}")
        tracked = c.search_runs([c.get_experiment_by_name("lira").experiment_id])
        parent = [r for r in tracked if "mlflow.parentRunId" not in r.data.tags]
        assert len(parent) == 1 and parent[0].info.run_name.startswith("pipeline ")
        assert parent[0].info.status == "FINISHED" and parent[0].info.end_time
        assert [r.info.run_name for r in tracked if "mlflow.parentRunId" in r.data.tags] == ["build_dataset"]
    finally:
        _stop(serve)
        _stop(server)
