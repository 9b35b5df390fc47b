"""One module per DVC stage, each with ``run(params, root) -> dict`` (the stage's summary).

Stages own I/O; the pieces they call are pure. ``dvc.yaml`` and the Prefect flow both reach a
stage through :func:`run_stage`, so one implementation serves both.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from lira.config import STAGES, Params


def run_stage(name: str, params: Params, root: Path | str = ".") -> dict:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    module = importlib.import_module(f"lira.stages.{name}")
    from lira import distributed
    from lira.distributed.launch import check_stage
    from lira.runtime import configure_runtime, stage_cost

    check_stage(name)
    dist_cfg = params.shared.distributed
    # Under torchrun: join the group; the ranks on one machine share its threads.
    if distributed.init_from_env(dist_cfg.backend, dist_cfg.timeout_s):
        from lira.distributed.env import threads_per_rank

        params = params.model_copy(update={"shared": params.shared.model_copy(
            update={"threads": threads_per_rank(params.shared.threads)})})
    # A stage module may declare USES_TORCH = False (and is tested to keep it true: no torch import).
    configure_runtime(params.shared, torch=getattr(module, "USES_TORCH", True))
    t0, start_ms = time.perf_counter(), int(time.time() * 1000)
    with stage_cost(name, Path(root), params.shared.paths):
        summary = module.run(params, Path(root))
    summary = dict(summary or {})
    summary.setdefault("seconds", round(time.perf_counter() - t0, 2))
    if params.tracking.enabled and distributed.is_main() and not getattr(module, "LOGS_ITSELF", False):
        from lira.tracking.runs import defer_stage

        # Under lira run / the Prefect flow: recorded, and logged with the others by one process.
        defer_stage(params.tracking, Path(root), name, summary, artifacts=stage_artifacts(name, params, Path(root)),
                    config=params.resolved(), paths=params.shared.paths, start_ms=start_ms)
    return summary


def declared_outputs(name: str) -> tuple[list[str], list[str]]:
    """(metrics files under paths.metrics, plot files under paths.plots) that stage ``name`` writes:
    each stage module declares its own ``METRICS`` and ``PLOTS`` (and dvc.yaml the same, tested)."""
    module = importlib.import_module(f"lira.stages.{name}")
    return list(module.METRICS), list(module.PLOTS)


def stage_artifacts(name: str, params: Params, root: Path) -> list[Path]:
    """The stage's metrics and plots files that exist (logged to MLflow beside the run)."""
    m, p = root / params.shared.paths.metrics, root / params.shared.paths.plots
    metrics, plots = declared_outputs(name)
    files = [m / f for f in metrics] + [p / f for f in plots]
    if name == "critic_score":
        files.append(root / params.shared.paths.critic / "validation.json")
    return [f for f in files if f.exists()]
