"""The ``lira-retrain`` flow: pull data, reproduce the pipeline, check the evaluation, promote.

1. ``dvc pull`` when a DVC remote is set (``$LIRA_DVC_REMOTE`` or the default one), so a fresh
   worker checkout gets the raw data and every cached output (then DVC skips the stages whose
   inputs did not change). Offline or unreachable remote: a warning, and the run goes on with
   what the workspace has.
2. The ``lira-pipeline`` flow as a subflow, with the run's ``overrides``/``preset`` (the stages and
   their evaluate step run through ``dvc repro``).
3. Evaluate: ``metrics/evaluate.json`` must exist after the pipeline, or the run fails before
   touching the registry.
4. ``dvc push`` the outputs (a pod's workspace is gone after the run), then promote through
   ``lira.tracking.registry.promote`` (the gate decides; ``force`` overrides it).

Trigger it from the Prefect UI ("Run" -> "Custom run") with e.g.
``overrides = {"train_arca.lr": 0.005, "train_lasr.epochs": 40}`` and ``preset = "base"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

try:
    from flows.pipeline import (
        Preset,
        dvc_command,
        lira_pipeline,
        project_root,
        run_logged,
        run_params,
        stage_env,
        with_parameter_help,
        workspace_lock,
    )
    from flows.promote import final_state, promote_model
except ImportError:  # loaded by file path (a deployment entrypoint) from another working directory
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from flows.pipeline import (
        Preset,
        dvc_command,
        lira_pipeline,
        project_root,
        run_logged,
        run_params,
        stage_env,
        with_parameter_help,
        workspace_lock,
    )
    from flows.promote import final_state, promote_model

SYNC_TIMEOUT_S = 1800


def dvc_remote(root: Path) -> str | None:
    """The DVC remote to sync with: ``$LIRA_DVC_REMOTE`` if set, else the default remote, else None.

    ``LIRA_DVC_REMOTE`` lets one checkout reach the same bucket under two endpoints (the host uses
    ``minio`` -> 127.0.0.1:9000, the compose workers ``minio-compose`` -> minio:9000).
    """
    if os.environ.get("LIRA_DVC_REMOTE"):
        return os.environ["LIRA_DVC_REMOTE"]
    proc = subprocess.run(
        [*dvc_command(), "remote", "default"],
        cwd=root, env=stage_env(), capture_output=True, text=True, timeout=120, check=False,
    )
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else None


def _dvc_sync(action: str, root: Path, logger: Any) -> dict[str, Any]:
    remote = dvc_remote(root)
    if remote is None:
        logger.info("no DVC remote configured: skipping dvc %s", action)
        return {"done": False, "remote": None, "reason": "no remote"}
    cmd = [*dvc_command(), action, "-r", remote, *(["--allow-missing"] if action == "pull" else [])]
    logger.info("$ dvc %s", " ".join(cmd[len(dvc_command()):]))
    try:
        rc, _, err_tail = run_logged(cmd, root, stage_env(), logger, timeout=SYNC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        rc, err_tail = -1, [f"timed out after {SYNC_TIMEOUT_S} s"]
    if rc != 0:
        tail = "\n".join(err_tail[-10:])
        logger.warning("dvc %s with remote %r failed (exit %s); continuing:\n%s", action, remote, rc, tail)
        return {"done": False, "remote": remote, "reason": tail}
    return {"done": True, "remote": remote, "reason": ""}


@task(name="dvc-pull", cache_policy=NO_CACHE)
def dvc_pull(root: str) -> dict[str, Any]:
    """``dvc pull --allow-missing`` when a remote is set; never fails the run (offline -> warning)."""
    return _dvc_sync("pull", Path(root), get_run_logger())


@task(name="dvc-push", cache_policy=NO_CACHE)
def dvc_push(root: str) -> dict[str, Any]:
    """``dvc push`` the run's outputs so the next worker (or pod) starts from them; never fails the run."""
    return _dvc_sync("push", Path(root), get_run_logger())


@task(name="check-evaluation", cache_policy=NO_CACHE)
def check_evaluation(root: str, metrics_dir: str, gate_metric: str, metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The evaluate stage's report must exist before the registry is touched."""
    path = Path(root) / metrics_dir / "evaluate.json"
    if metrics is None or not path.is_file():
        raise FileNotFoundError(f"{path}: missing after the pipeline; the evaluate stage did not produce its report")
    logger = get_run_logger()
    # evaluate.json nests per system ("systems.lira.retrieval.ndcg@10"); accept a flat report too.
    value = metrics.get(gate_metric, metrics.get(f"systems.lira.{gate_metric}"))
    logger.info("evaluate: %s = %s (%d metrics)", gate_metric, value, len(metrics))
    return {"gate_metric": gate_metric, "value": value, "n_metrics": len(metrics)}


@flow(name="lira-retrain", description="dvc pull -> lira-pipeline -> evaluate -> promote (MLflow registry).")
@with_parameter_help
def retrain(
    overrides: dict[str, Any] | None = None,
    preset: Preset | None = None,
    force: bool = False,
    pull: bool = True,
    push: bool = True,
    keep_overrides: bool = False,
    root: str | None = None,
) -> Any:
    """Retrain with optional params ``overrides`` (dotted keys) and ``preset``; ``force`` skips the gate.

    ``pull``/``push`` sync DVC's cache with the remote around the run (skipped without a remote,
    a warning when it is unreachable). The run ends Completed when the new version took the
    champion alias, Failed named Refused (with the gate's reason) when the gate refused it: the
    retrain did not produce a champion. Its result is the whole record either way.
    """
    project = project_root(root)
    flat, params = run_params(project, overrides, preset)  # a bad override fails before the pull
    skipped = {"done": False, "remote": None, "reason": "disabled"}
    with workspace_lock(project, get_run_logger()):
        pulled = dvc_pull(str(project)) if pull else skipped
        summary = lira_pipeline(overrides=flat or None, keep_overrides=keep_overrides, root=str(project))
        pushed = dvc_push(str(project)) if push else skipped
    evaluation = check_evaluation(
        str(project), params.shared.paths.metrics, params.tracking.gate_metric, summary.get("metrics")
    )
    decision = promote_model(str(project), version=None, force=force, overrides=flat or None)
    record = {"pull": pulled, "pipeline": summary, "push": pushed, "evaluation": evaluation, "promotion": decision}
    return final_state(decision, "lira-retrain", data=record)


if __name__ == "__main__":  # pragma: no cover
    retrain()
