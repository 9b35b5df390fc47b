"""What the evaluate stage publishes to MLflow: its run, the registered model and the gate's decision."""

from __future__ import annotations

from pathlib import Path

from lira.config import Params
from lira.io import write_json


def track_and_register(params: Params, root: Path, summary: dict, gate: dict, artifacts: list[Path]) -> dict:
    """Log the evaluate run (with ``artifacts``), register the trained LiRA model, and run the promotion gate."""
    from lira.encoders import release_encoders
    from lira.tracking.model import log_lira_model
    from lira.tracking.registry import promote
    from lira.tracking.runs import client, experiment_id, log_headline, log_stage, tracking_uri

    run_id = log_stage(params, root, "evaluate", summary, artifacts=artifacts)
    log_headline(params, root, summary)  # the numbers the parent run's row shows
    # Every feature is computed by now, and logging loads the model (with its encoder) once more
    # to check its input example: do not hold a second copy of the encoder across that.
    release_encoders()
    version = log_lira_model(params, root, root / params.shared.paths.lasr / "full", run_id, gate)
    decision = promote(params, root=root, version=version)
    c = client(params, root)
    run = c.get_run(run_id)
    info = {"run_id": run_id, "tracking_uri": tracking_uri(params, root), "experiment_id": experiment_id(params, root, c),
            "parent_run_id": run.data.tags.get("mlflow.parentRunId")}
    write_json(root / params.shared.paths.metrics / "mlflow_run.json", info)
    return {"registered_model": params.tracking.registered_model, "version": version, "promoted": decision.promoted,
            "decision": decision.message, "champion_alias": params.tracking.champion_alias, "gate": decision.as_dict(), **info}
