"""MLflow runs: one pipeline parent run, one nested child run per stage.

Layout in the tracking store::

    experiment <tracking.experiment>
      run "pipeline"          parent: every resolved param, git commit, params hash, data version
        run "build_dataset"   child (tag mlflow.parentRunId): its params section + shared,
        run "translate"       the stage summary's numeric leaves as metrics, the stage's files
        ...

The parent is found, in order: ``$LIRA_MLFLOW_PARENT_RUN_ID`` (set by ``lira run`` and the Prefect
flow); ``<root>/<paths.cache>/mlflow_parent.json`` if it was made for the same git commit, params
hash and tracking URI and the run still exists (so the stages of one ``dvc repro`` - separate
processes - share a parent); else a new parent, recorded in that file.

Only :class:`mlflow.MlflowClient` is used, never the fluent ``mlflow.start_run`` stack: stages may
run in threads (Prefect) and a process-global "active run" would mix them up.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lira.config import STAGES, Params

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARENT_ENV = "LIRA_MLFLOW_PARENT_RUN_ID"
PARENT_FILE = "mlflow_parent.json"

# MLflow's limits (mlflow.utils.validation): at most 100 params per log_batch, 1000 metrics,
# param values of at most 6000 characters, keys of at most 250.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_KEY = 250

TAG_COMMIT = "lira.git_commit"
TAG_PARAMS_HASH = "lira.params_hash"
TAG_DVC_LOCK = "lira.dvc_lock_sha256"
TAG_DATA = "lira.data_version"
TAG_STAGE = "lira.stage"
TAG_TRUNCATED = "lira.truncated_params"

_BAD_NAME_CHARS = re.compile(r"[^\w.\- :/]")


# ------------------------------------------------------------------------------------ locations
def tracking_uri(params: Params, root: str | Path = ".") -> str:
    """``$MLFLOW_TRACKING_URI``, else ``tracking.tracking_uri``, else ``sqlite:///<root>/mlruns.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.tracking_uri
    if uri:
        return uri
    return f"sqlite:///{(Path(root) / 'mlruns.db').resolve()}"


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: next to a sqlite store, else the server's default.

    Without it MLflow puts a sqlite store's artifacts in the CWD's ``./mlruns``.
    """
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def client(params: Params, root: str | Path = ".") -> MlflowClient:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    uri = tracking_uri(params, root)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (a process-wide URI) at ``uri`` for the block, then restore it.

    ``mlflow.set_tracking_uri`` also writes ``$MLFLOW_TRACKING_URI`` (and the registry twin), and
    "restoring" through it would pin whatever default it reports; so the module state and the
    environment are saved and put back exactly.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {k: os.environ.get(k) for k in env_keys}
    old_t, old_r = tracking_utils._tracking_uri, registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking_utils.set_tracking_uri(old_t)
        registry_utils._registry_uri = old_r
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def experiment_id(params: Params, root: str | Path = ".", mlflow_client: MlflowClient | None = None) -> str:
    """The id of ``tracking.experiment``, created (with its artifact location) on first use."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client(params, root)
    name = params.tracking.experiment
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return c.create_experiment(name, artifact_location=artifact_location(tracking_uri(params, root)))
    except MlflowException:
        # another stage process created it between our get and create
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


# ------------------------------------------------------------------------------------ provenance
def git_commit(root: str | Path = ".") -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], check=False, cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def params_hash(params: Params) -> str:
    blob = json.dumps(params.resolved(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_version(root: str | Path = ".") -> str | None:
    """The md5 DVC recorded for the raw data (``data.dvc``; ``data/raw.dvc`` as the fallback)."""
    import yaml

    for rel in ("data.dvc", "data/raw.dvc"):
        f = Path(root) / rel
        if not f.exists():
            continue
        try:
            outs = (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("outs") or []
        except yaml.YAMLError:
            return None
        for out in outs:
            if isinstance(out, dict) and out.get("md5"):
                return str(out["md5"])
    return None


def provenance_tags(params: Params, root: str | Path = ".") -> dict[str, str]:
    commit = git_commit(root)
    tags = {TAG_COMMIT: commit, "mlflow.source.git.commit": commit, TAG_PARAMS_HASH: params_hash(params)}
    lock = Path(root) / "dvc.lock"
    if lock.exists():
        tags[TAG_DVC_LOCK] = _sha256(lock)
    data = data_version(root)
    if data:
        tags[TAG_DATA] = data
    return tags


# ----------------------------------------------------------------------------------- flattening
def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": leaf}``; lists stay leaves (they are one param)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def metric_key(name: str) -> str:
    """A valid MLflow metric/param name: ``@`` (e.g. ``ndcg@10``) becomes ``_at_``, other
    characters MLflow refuses become ``_``."""
    return _BAD_NAME_CHARS.sub("_", name.replace("@", "_at_"))[:MAX_KEY]


def _param_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, dict)) or v is None:
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def param_entries(tree: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Flattened string params within MLflow's limits, and the keys whose values were truncated."""
    params, truncated = {}, []
    for k, v in flatten(tree).items():
        value = _param_value(v)
        if len(value) > MAX_PARAM_VALUE:
            value = value[: MAX_PARAM_VALUE - 3] + "..."
            truncated.append(k)
        params[metric_key(k)] = value
    return params, truncated


def numeric_leaves(summary: Mapping[str, Any]) -> dict[str, float]:
    """Finite numeric leaves of a (nested) summary; bools, strings, lists and NaN are skipped."""
    out = {}
    for k, v in flatten(summary).items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            continue
        x = float(v)
        if math.isfinite(x):
            out[metric_key(k)] = x
    return out


def _chunks(seq: Sequence, n: int) -> Iterable[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def log_params(c: MlflowClient, run_id: str, tree: Mapping[str, Any]) -> dict[str, str]:
    """Log a nested params tree in batches of <= 100; truncated keys are listed in a tag."""
    from mlflow.entities import Param, RunTag

    params, truncated = param_entries(tree)
    items = [Param(k, v) for k, v in params.items()]
    for chunk in _chunks(items, MAX_PARAMS_PER_BATCH):
        c.log_batch(run_id, params=list(chunk), synchronous=True)
    if truncated:
        note = ",".join(truncated)
        c.log_batch(
            run_id,
            tags=[RunTag(TAG_TRUNCATED, f"values cut to {MAX_PARAM_VALUE} chars: {note}"[:8000])],
            synchronous=True,
        )
    return params


def log_metrics(c: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, v, now, step) for k, v in metrics.items()]
    for chunk in _chunks(items, MAX_METRICS_PER_BATCH):
        c.log_batch(run_id, metrics=list(chunk), synchronous=True)


def stage_params(params: Params, stage: str) -> dict[str, Any]:
    """What a stage's run logs: its own params section (if it has one) plus ``shared``."""
    data = params.resolved()
    out = {"shared": data["shared"]}
    if stage in data and stage != "shared":
        out[stage] = data[stage]
    return out


# ---------------------------------------------------------------------------------- parent runs
def _parent_file(params: Params, root: str | Path) -> Path:
    return Path(root) / params.shared.paths.cache / PARENT_FILE


def _run_alive(c: MlflowClient, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def start_pipeline(params: Params, root: str | Path = ".") -> str:
    """Create a fresh parent run (all resolved params + provenance tags), record it, return its id."""
    from lira.io import write_json

    c = client(params, root)
    exp = experiment_id(params, root, c)
    tags = provenance_tags(params, root)
    run = c.create_run(exp, run_name="pipeline", tags={**tags, TAG_STAGE: "pipeline"})
    log_params(c, run.info.run_id, params.resolved())
    c.set_terminated(run.info.run_id, "FINISHED")
    write_json(
        _parent_file(params, root),
        {
            "run_id": run.info.run_id,
            "git_commit": tags[TAG_COMMIT],
            "params_hash": tags[TAG_PARAMS_HASH],
            "tracking_uri": tracking_uri(params, root),
            "experiment_id": exp,
        },
    )
    return run.info.run_id


def parent_run_id(params: Params, root: str | Path = ".") -> str:
    """The pipeline parent run: from the env, else the recorded one if still current, else a new one."""
    env = os.environ.get(PARENT_ENV)
    if env:
        return env
    f = _parent_file(params, root)
    if f.exists():
        try:
            rec = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            rec = {}
        current = (
            rec.get("git_commit") == git_commit(root)
            and rec.get("params_hash") == params_hash(params)
            and rec.get("tracking_uri") == tracking_uri(params, root)
        )
        if current and rec.get("run_id") and _run_alive(client(params, root), rec["run_id"]):
            return rec["run_id"]
    return start_pipeline(params, root)


# ----------------------------------------------------------------------------------- stage runs
def log_stage(
    params: Params,
    root: str | Path,
    stage: str,
    summary: Mapping[str, Any],
    artifacts: Sequence[str | Path] = (),
) -> str | None:
    """Log one stage as a nested run under the pipeline parent; returns its run id (None if disabled).

    Params: the stage's section + ``shared`` (dotted keys, <= 100 per batch, long values cut with a
    tag naming them). Metrics: the summary's finite numeric leaves (dotted keys; ``@`` -> ``_at_``).
    Tags: git commit, params hash, ``dvc.lock`` sha256, data version, stage. Artifacts: ``artifacts``.
    """
    if not params.tracking.enabled:
        return None
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    parent = parent_run_id(params, root)
    c = client(params, root)
    exp = c.get_run(parent).info.experiment_id
    tags = {**provenance_tags(params, root), TAG_STAGE: stage, MLFLOW_PARENT_RUN_ID: parent}
    run = c.create_run(exp, run_name=stage, tags=tags)
    run_id = run.info.run_id
    try:
        log_params(c, run_id, stage_params(params, stage))
        log_metrics(c, run_id, numeric_leaves(summary))
        for a in artifacts:
            a = Path(a)
            if not a.exists():
                raise FileNotFoundError(f"{stage}: artifact {a} does not exist")
            if a.is_dir():
                c.log_artifacts(run_id, str(a), artifact_path=a.name)
            else:
                c.log_artifact(run_id, str(a))
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    c.set_terminated(run_id, "FINISHED")
    return run_id


__all__ = [
    "PARENT_ENV",
    "STAGES",
    "artifact_location",
    "client",
    "experiment_id",
    "flatten",
    "log_stage",
    "metric_key",
    "numeric_leaves",
    "param_entries",
    "parent_run_id",
    "start_pipeline",
    "tracking_uri",
    "using_tracking_uri",
]
