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
    from lira.runtime import configure_runtime, stage_cost

    configure_runtime(params)
    t0 = time.perf_counter()
    with stage_cost(name, Path(root), params):
        summary = module.run(params, Path(root))
    summary = dict(summary or {})
    summary.setdefault("seconds", round(time.perf_counter() - t0, 2))
    return summary
