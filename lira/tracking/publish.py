"""What the evaluate stage publishes to MLflow: its run, the registered model and the gate's decision."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lira.config import PathsParams, TrackingParams
from lira.io import write_json


def track_and_register(tracking: TrackingParams, root: Path, summary: dict, gate: dict, artifacts: list[Path], *,
                       config: Mapping[str, Any], paths: PathsParams, resamples: int, confidence: float,
                       seed: int) -> dict:
    """Log the evaluate run (with ``artifacts``), register the trained LiRA model, and run the promotion gate.

    ``config``: the resolved params the run logs; ``resamples`` / ``confidence`` / ``seed``: the gate's
    paired bootstrap (:func:`lira.tracking.registry.promote`)."""
    from lira.encoders import release_encoders
    from lira.tracking.model import log_lira_model
    from lira.tracking.registry import promote
    from lira.tracking.runs import (client, close_parent, experiment_id, flush_pending, log_headline, log_stage,
                                    portable_uri, tracking_uri)

    flush_pending(tracking, root, paths=paths)  # the pipeline's earlier stages, recorded (defer_stage), log first
    run_id = log_stage(tracking, root, "evaluate", summary, artifacts=artifacts, config=config, paths=paths)
    log_headline(tracking, root, summary, config=config, paths=paths)  # the numbers the parent run's row shows
    # Every feature is computed by now, and logging loads the model (with its encoder) once more
    # to check its input example: do not hold a second copy of the encoder across that.
    release_encoders()
    version = log_lira_model(tracking, root, root / paths.lasr / "full", run_id, gate, cache_dir=root / paths.cache)
    decision = promote(tracking, root=root, version=version, resamples=resamples, confidence=confidence, seed=seed)
    c = client(tracking, root)
    run = c.get_run(run_id)
    info = {"run_id": run_id, "tracking_uri": portable_uri(tracking_uri(tracking, root), root), "experiment_id": experiment_id(tracking, root, c),
            "parent_run_id": run.data.tags.get("mlflow.parentRunId")}
    write_json(root / paths.metrics / "mlflow_run.json", info)
    close_parent(tracking, root, paths=paths)  # evaluate is the last stage: the pipeline's run ends with it
    return {"registered_model": tracking.registered_model, "version": version, "promoted": decision.promoted,
            "decision": decision.message, "champion_alias": tracking.champion_alias, "gate": decision.as_dict(), **info}
