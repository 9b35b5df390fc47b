"""The ``lira-promote`` flow: move the champion alias in the MLflow registry.

``lira.tracking.registry.promote(tracking, root, version=None, force=False, ...)`` owns the decision (the
paired-bootstrap gate on ``tracking.gate_metric``); this flow runs it for the project root (the
default store is ``sqlite:///<root>/mlruns.db``) and publishes the decision as an artifact.
``force=True`` is the operator override (the alias moves even if the gate refuses), exactly like
``lira promote --force``.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

try:
    from flows.pipeline import project_root, run_params, with_parameter_help
except ImportError:  # loaded by file path (a deployment entrypoint) from another working directory
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from flows.pipeline import project_root, run_params, with_parameter_help

# The registry is a server in the compose/cluster setups: retry brief network failures.
PROMOTE_RETRIES = 2
PROMOTE_RETRY_DELAYS: list[float] = [5.0, 30.0]


@task(name="promote-model", cache_policy=NO_CACHE, retries=PROMOTE_RETRIES, retry_delay_seconds=PROMOTE_RETRY_DELAYS)
def promote_model(
    root: str, version: int | str | None = None, force: bool = False, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the registry's gate for ``version`` (newest when None); returns the decision as a dict."""
    logger = get_run_logger()
    project = project_root(root)
    _, params = run_params(project, overrides)
    from lira.tracking.registry import promote as registry_promote

    # Relative stores (the default sqlite:///<root>/mlruns.db) belong to the project root.
    # MLflow numbers versions; `--param version=7` arrives as the int 7, the UI may send "7"
    kwargs: dict[str, Any] = {"version": None if version is None else str(version), "force": force}
    if "root" in inspect.signature(registry_promote).parameters:
        kwargs["root"] = project
    with contextlib.chdir(project):
        decision = registry_promote(params.tracking, **kwargs, resamples=params.evaluate.bootstrap_resamples,
                                    confidence=params.evaluate.confidence, seed=params.shared.seed)
    result = {
        "promoted": bool(decision.promoted),
        "message": str(decision.message),
        "version": decision.version,
        "model": params.tracking.registered_model,
        "alias": params.tracking.champion_alias,
        "forced": force,
        "decision": str(getattr(decision, "decision", "promoted" if decision.promoted else "refused")),
    }
    logger.info("promotion: %s", result["message"])
    verdict = "promoted" if result["promoted"] else "not promoted"
    create_markdown_artifact(
        markdown=(
            f"**{result['model']}** version `{result['version']}`: {verdict} to "
            f"`@{result['alias']}`{' (forced)' if force else ''}.\n\n{result['message']}"
        ),
        key="lira-promotion",
        description="MLflow registry decision",
    )
    return result


def final_state(result: dict[str, Any], what: str, data: Any = None) -> Any:
    """The flow run's final state: Completed when the alias moved (or there was nothing to do),
    Failed named ``Refused`` with the gate's reason when it refused. ``data`` (default: the
    decision) is the state's result.

    A refusal is not a crash - the run did its work and the result is attached - but the run did
    not get what it was started for (a new champion), so it must not show green in the UI.
    """
    from prefect.states import Completed, Failed

    data = result if data is None else data
    if result["promoted"] or result.get("decision") == "none":
        return Completed(message=result["message"], data=data)
    return Failed(name="Refused", message=f"{what}: the gate refused version {result['version']}: {result['message']}",
                  data=data)


@flow(name="lira-promote", description="Move the champion alias to a model version (gate, or force).")
@with_parameter_help
def promote(version: int | str | None = None, force: bool = False, root: str | None = None) -> Any:
    """Promote ``version`` (default: the newest registered version) if it passes the gate, or if ``force``.

    The run ends Failed (named Refused, with the reason) when the gate refuses; the decision is
    the state's result either way.
    """
    return final_state(promote_model(str(project_root(root)), version=version, force=force), "lira-promote")


if __name__ == "__main__":  # pragma: no cover
    promote()
