"""Serve lira's flows from this machine: the single-server setup, no work pool, no worker.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.deploy            # serve all three
    python -m flows.deploy --cron "0 3 * * 1"                                    # + weekly retrain
    python -m flows.deploy --only pipeline,promote --root /srv/lira --name nightly

This registers ``lira-retrain/<name>``, ``lira-pipeline/<name>`` and ``lira-promote/<name>`` and
runs their flow runs as subprocesses of this process, one at a time (``--limit 1``: the runs share
one DVC workspace). Trigger them from the UI (Deployments -> lira-retrain -> Run -> Custom run,
then edit ``overrides``, e.g. ``{"train_arca.lr": 0.005}``) or with
``prefect deployment run 'lira-retrain/local' --param preset=base``. The retrain schedule is off
unless ``--cron`` (or ``$LIRA_RETRAIN_CRON``) is given. For work pools (``lira-cpu``, ``lira-gpu``)
use ``prefect deploy --all`` with the top-level ``prefect.yaml`` instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

try:
    from flows.pipeline import lira_pipeline
    from flows.promote import promote
    from flows.retrain import retrain
except ImportError:  # run as a script: python flows/deploy.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from flows.pipeline import lira_pipeline
    from flows.promote import promote
    from flows.retrain import retrain

FLOWS = ("retrain", "pipeline", "promote")


def build_deployments(
    name: str = "local", root: str | None = None, cron: str | None = None, only: list[str] | None = None
) -> list[Any]:
    """RunnerDeployments for ``flow.serve``/``prefect.serve``; ``cron`` schedules the retrain only."""
    selected = only or list(FLOWS)
    unknown = [f for f in selected if f not in FLOWS]
    if unknown:
        raise ValueError(f"unknown flow(s) {unknown}; choose from {FLOWS}")
    extra = {"root": str(Path(root).resolve())} if root else {}
    out = []
    if "retrain" in selected:
        out.append(retrain.to_deployment(
            name=name, cron=cron or None, tags=["lira", "retrain"],
            parameters={"overrides": {}, "preset": None, "force": False, **extra},
            description="dvc pull -> pipeline -> evaluate -> promote; set `overrides` to retrain with other params",
        ))
    if "pipeline" in selected:
        out.append(lira_pipeline.to_deployment(
            name=name, tags=["lira", "pipeline"], parameters={"overrides": {}, "stages": None, **extra},
            description="reproduce the DVC pipeline (only what changed reruns)",
        ))
    if "promote" in selected:
        out.append(promote.to_deployment(
            name=name, tags=["lira", "promote"], parameters={"version": None, "force": False, **extra},
            description="move the champion alias (gate, or force)",
        ))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", default="local", help="deployment name (flow/<name>)")
    ap.add_argument("--root", default=None, help="the lira project to run in (default: this checkout)")
    ap.add_argument("--cron", default=os.environ.get("LIRA_RETRAIN_CRON") or None,
                    help="cron schedule for lira-retrain (default: none, i.e. manual runs only)")
    ap.add_argument("--only", default=",".join(FLOWS), help=f"comma-separated subset of {','.join(FLOWS)}")
    ap.add_argument("--limit", type=int, default=1, help="concurrent flow runs (1: one DVC workspace)")
    args = ap.parse_args(argv)
    from prefect import serve

    deployments = build_deployments(
        name=args.name, root=args.root, cron=args.cron, only=[s.strip() for s in args.only.split(",") if s.strip()]
    )
    serve(*deployments, limit=args.limit)


if __name__ == "__main__":
    main()
