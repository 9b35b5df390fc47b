"""MLflow runs: one pipeline parent run, one nested child run per stage.

Layout in the tracking store::

    experiment <tracking.experiment>     tag mlflow.experimentKind = custom_model_development
      run "pipeline <commit> <params>"   parent: every resolved param, git commit, params hash, data
        run "build_dataset"             version; from the first stage's start to the last stage's end;
        run "translate"                 the headline metrics (lira.eval.headline) once evaluate ran
        run "train_arca"      child (tag mlflow.parentRunId): its params section + shared, the
        ...                   summary's numeric leaves, the training curve per epoch (step), the
                              prepared tables as MLflow datasets (with their sha256), its files

The parent is made lazily, by the first stage that logs: a ``lira run`` in which DVC reruns
nothing creates no run at all. ``lira run`` and the Prefect flow hand their stages a pipeline
token (``$LIRA_MLFLOW_PIPELINE``: an id and the start time), and the first stage creates the
parent for that token (its start time the pipeline's) and records it in
``<root>/<paths.cache>/mlflow_parent.json``, where the next stages (separate processes) find it.

Under a pipeline token a stage does not log itself: it records its run (:func:`defer_stage`, a
JSON file under ``<paths.cache>/mlflow_pending/``) and one process logs every record in the
stages' order - evaluate before its own run, or ``finish_pipeline`` at the orchestrator's end (a
failed pipeline's stages included) - with each stage's own start and end time and the
``dvc.lock`` it ran against. A stage process then never imports MLflow (~2.8 s of each).

The parent is found, in order: ``$LIRA_MLFLOW_PARENT_RUN_ID`` (an explicit run id);
``$LIRA_MLFLOW_PIPELINE`` (the recorded parent of that token, else a new one); the recorded parent
if it was made for the same git commit, params hash and tracking URI and still exists (so the
stages of one plain ``dvc repro`` share a parent); else a new parent, recorded in that file.

A local sqlite store keeps absolute artifact paths, so a moved or copied checkout would write into
the old location: :func:`client` refuses such a store with a message saying what to do.

Only :class:`mlflow.MlflowClient` is used, never the fluent ``mlflow.start_run`` stack: stages may
run in threads (Prefect) and a process-global "active run" would mix them up.

Every function takes the ``tracking`` section and the project root; those that log or hash the run's
parameters take them as ``config`` (the resolved params as plain data, ``Params.resolved()``), and
those that find files take the ``paths`` section (the parent-run record under ``paths.cache``, the
curves under ``paths.plots``, the datasets under ``paths.prepared``).
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
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lira.config import STAGES, PathsParams, TrackingParams

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARENT_ENV = "LIRA_MLFLOW_PARENT_RUN_ID"
PIPELINE_ENV = "LIRA_MLFLOW_PIPELINE"
PARENT_FILE = "mlflow_parent.json"
# MLflow 3 opens an experiment on its GenAI view unless it is tagged as model development.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
TAG_PIPELINE = "lira.pipeline_token"
# The training curves of these stages: <paths.plots>/<file>, one row per epoch (-1: before training).
CURVES = {"train_arca": "arca_curve.csv", "train_lasr": "lasr_curve.csv"}
# Stages whose run logs the prepared tables as MLflow datasets, and in which role.
DATASET_CONTEXT = {"train_arca": "training", "train_lasr": "training", "evaluate": "evaluation"}

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
def tracking_uri(tracking: TrackingParams, root: str | Path = ".") -> str:
    """``$MLFLOW_TRACKING_URI``, else ``tracking.tracking_uri``, else ``sqlite:///<root>/mlruns.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.tracking_uri
    if uri:
        return uri
    return f"sqlite:///{(Path(root) / 'mlruns.db').resolve()}"


def portable_uri(uri: str, root: str | Path = ".") -> str:
    """``uri`` as it may be written into a committed file: a sqlite store inside the checkout becomes
    ``sqlite:///<path relative to root>`` (what ``mlflow ui --backend-store-uri`` reads from the
    checkout), so no record names the machine's absolute path; any other URI is returned as is."""
    if not uri.startswith("sqlite:///"):
        return uri
    db, top = Path(uri[len("sqlite:///") :]), Path(root).resolve()
    try:
        return f"sqlite:///{db.resolve().relative_to(top).as_posix()}"
    except ValueError:
        return uri  # a store outside the checkout: the user named it, so it stays as they wrote it


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: next to a sqlite store, else the server's default.

    Without it MLflow puts a sqlite store's artifacts in the CWD's ``./mlruns``.
    """
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


class StoreMoved(RuntimeError):
    """A local store whose experiment keeps its artifacts somewhere other than beside the store."""


def client(tracking: TrackingParams, root: str | Path = ".") -> MlflowClient:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    uri = tracking_uri(tracking, root)
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    check_store_location(c, uri, tracking.experiment)
    return c


def check_store_location(c: MlflowClient, uri: str, experiment: str) -> None:
    """Refuse a sqlite store that was moved or copied away from its artifacts.

    MLflow records absolute artifact paths (the experiment's location, every model version's
    source), so a store copied to another folder reads and writes the ORIGINAL folder's
    ``mlartifacts`` - or fails there much later. lira creates experiments with their artifacts
    beside the store; anything else is refused here, before a run is written.
    """
    want = artifact_location(uri)
    if want is None:
        return
    exp = c.get_experiment_by_name(experiment)
    if exp is None or not exp.artifact_location.startswith("file:") or exp.artifact_location == want:
        return
    db = uri[len("sqlite:///"):]
    raise StoreMoved(
        f"MLflow store {db}: experiment {experiment!r} keeps its artifacts at {exp.artifact_location}, not beside "
        f"the store ({want}): the store was moved or copied from another folder, and MLflow would keep writing "
        "into the old one. Move the checkout back, or start a fresh store here (move mlruns.db and mlartifacts/ "
        "aside; the next run registers v1 again), or point tracking.tracking_uri / $MLFLOW_TRACKING_URI at a "
        "tracking server (infra/README.md)."
    )


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


def experiment_id(tracking: TrackingParams, root: str | Path = ".", mlflow_client: MlflowClient | None = None) -> str:
    """The id of ``tracking.experiment``, created (with its artifact location) on first use."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client(tracking, root)
    name = tracking.experiment
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if TAG_EXPERIMENT_KIND not in exp.tags:  # a store made before lira set it
            c.set_experiment_tag(exp.experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND)
        return exp.experiment_id
    try:
        return c.create_experiment(name, artifact_location=artifact_location(tracking_uri(tracking, root)),
                                   tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND})
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


def params_hash(config: Mapping[str, Any]) -> str:
    """A short hash of the resolved params ``config`` (``Params.resolved()``)."""
    blob = json.dumps(config, sort_keys=True, ensure_ascii=False)
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


def provenance_tags(config: Mapping[str, Any], root: str | Path = ".") -> dict[str, str]:
    commit = git_commit(root)
    tags = {TAG_COMMIT: commit, "mlflow.source.git.commit": commit, TAG_PARAMS_HASH: params_hash(config)}
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


def stage_params(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """What a stage's run logs: its own section of the resolved params ``config`` (if it has one) plus ``shared``."""
    data = config
    out = {"shared": data["shared"]}
    if stage in data and stage != "shared":
        out[stage] = data[stage]
    return out


# ---------------------------------------------------------------------------------- parent runs
def _parent_file(paths: PathsParams, root: str | Path) -> Path:
    return Path(root) / paths.cache / PARENT_FILE


def _run_alive(c: MlflowClient, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def pipeline_token() -> str:
    """A new value for ``$LIRA_MLFLOW_PIPELINE``: an id and the start time (ms) of this pipeline."""
    import uuid

    return f"{uuid.uuid4().hex}:{int(time.time() * 1000)}"


def _parse_token(token: str) -> tuple[str, int | None]:
    ident, _, start = token.partition(":")
    return ident, int(start) if start.isdigit() else None


def run_name(tags: Mapping[str, str]) -> str:
    """``pipeline <commit> <params hash>``: which code and which params, readable in the runs list."""
    commit = tags.get(TAG_COMMIT, "unknown")
    return f"pipeline {commit[:8]} params {tags.get(TAG_PARAMS_HASH, '?')[:8]}"


def start_pipeline(tracking: TrackingParams, root: str | Path = ".", token: str | None = None, *,
                   config: Mapping[str, Any], paths: PathsParams) -> str:
    """Create a parent run (all resolved params + provenance tags), record it, return its id.

    The run stays RUNNING: each stage that logs under it moves its end time
    (:func:`log_stage`), and :func:`finish_pipeline` closes it.
    """
    from lira.io import write_json

    c = client(tracking, root)
    exp = experiment_id(tracking, root, c)
    tags = {**provenance_tags(config, root), TAG_STAGE: "pipeline"}
    start = None
    if token:
        tags[TAG_PIPELINE], start = token, _parse_token(token)[1]
    run = c.create_run(exp, start_time=start, run_name=run_name(tags), tags=tags)
    log_params(c, run.info.run_id, config)
    write_json(
        _parent_file(paths, root),
        {
            "run_id": run.info.run_id,
            "git_commit": tags[TAG_COMMIT],
            "params_hash": tags[TAG_PARAMS_HASH],
            "tracking_uri": tracking_uri(tracking, root),
            "experiment_id": exp,
            "token": token,
        },
    )
    return run.info.run_id


def _recorded(paths: PathsParams, root: str | Path) -> dict:
    f = _parent_file(paths, root)
    try:
        rec = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return rec if isinstance(rec, dict) else {}


def parent_run_id(tracking: TrackingParams, root: str | Path = ".", *, config: Mapping[str, Any],
                  paths: PathsParams) -> str:
    """The pipeline parent run: the explicit one, else that of this pipeline token, else the
    recorded one if still current, else a new one."""
    env = os.environ.get(PARENT_ENV)
    if env:
        return env
    rec = _recorded(paths, root)
    token = os.environ.get(PIPELINE_ENV)
    if token:
        if rec.get("token") == token and rec.get("tracking_uri") == tracking_uri(tracking, root) and rec.get("run_id"):
            return rec["run_id"]
        return start_pipeline(tracking, root, token, config=config, paths=paths)
    current = (
        rec.get("git_commit") == git_commit(root)
        and rec.get("params_hash") == params_hash(config)
        and rec.get("tracking_uri") == tracking_uri(tracking, root)
    )
    if current and rec.get("run_id") and _run_alive(client(tracking, root), rec["run_id"]):
        return rec["run_id"]
    return start_pipeline(tracking, root, config=config, paths=paths)


def finish_pipeline(tracking: TrackingParams, root: str | Path, token: str, ok: bool, *, paths: PathsParams) -> str | None:
    """Log the stage runs still recorded (:func:`flush_pending`), then close the parent run of
    ``token`` (FINISHED, or FAILED when the pipeline failed).

    Returns its id, or None when no stage logged under the token (nothing reran: no run exists).
    """
    if not tracking.enabled:
        return None
    with _environ({PIPELINE_ENV: token}):
        flush_pending(tracking, root, paths=paths)  # the stages that ran under it, first
    rec = _recorded(paths, root)
    if rec.get("token") != token or not rec.get("run_id"):
        return None
    if ok and rec.get("closed"):
        return rec["run_id"]  # closed FINISHED by evaluate (close_parent); MLflow need not be opened again
    c = client(tracking, root)
    c.set_terminated(rec["run_id"], "FINISHED" if ok else "FAILED", end_time=int(time.time() * 1000))
    return rec["run_id"]


def close_parent(tracking: TrackingParams, root: str | Path, *, paths: PathsParams) -> str | None:
    """Under a pipeline token, close its parent run FINISHED now and mark it closed in the record,
    so that ``finish_pipeline(ok=True)`` returns without opening MLflow (~2.5 s at the end of a
    ``lira run``); a failure after this still marks it FAILED there. evaluate, the last stage,
    calls it once it has logged and registered. Returns the parent's id, or None (no token or no
    parent of it)."""
    token = os.environ.get(PIPELINE_ENV)
    rec = _recorded(paths, root)
    if not tracking.enabled or not token or rec.get("token") != token or not rec.get("run_id"):
        return None
    from lira.io import write_json

    client(tracking, root).set_terminated(rec["run_id"], "FINISHED", end_time=int(time.time() * 1000))
    write_json(_parent_file(paths, root), {**rec, "closed": True})
    return rec["run_id"]


def log_headline(tracking: TrackingParams, root: str | Path, summary: Mapping[str, Any], *, config: Mapping[str, Any],
                 paths: PathsParams) -> None:
    """The headline numbers (:func:`lira.eval.headline.headline`) on the parent run:
    ``<system>.<column>`` and ``by_language.<lang>.<column>``."""
    from lira.eval.headline import LANGUAGE_DIR, SYSTEM_DIR, headline

    metrics = {}
    for rel, row in headline(summary).items():
        folder, stem = rel.rsplit("/", 1)
        prefix = stem.removesuffix(".json") if folder == SYSTEM_DIR else f"{LANGUAGE_DIR}.{stem.removesuffix('.json')}"
        metrics.update({metric_key(f"{prefix}.{k}"): v for k, v in row.items()})
    c = client(tracking, root)
    log_metrics(c, parent_run_id(tracking, root, config=config, paths=paths), metrics)


def log_curve(c: MlflowClient, run_id: str, path: Path) -> int:
    """A training curve (CSV, one row per epoch) as metrics per step, so MLflow's charts draw it.

    Step = epoch + 1: step 0 is the row before training (epoch -1). Returns the rows logged.
    """
    import pandas as pd
    from mlflow.entities import Metric

    df = pd.read_csv(path)
    if "epoch" not in df.columns:
        raise ValueError(f"{path}: a training curve needs an `epoch` column, it has {list(df.columns)}")
    now = int(time.time() * 1000)
    items = []
    for _, row in df.iterrows():
        step = int(row["epoch"]) + 1
        for col, v in row.items():
            if col == "epoch" or isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
                continue
            items.append(Metric(metric_key(f"curve.{col}"), float(v), now, step))
    for chunk in _chunks(items, MAX_METRICS_PER_BATCH):
        c.log_batch(run_id, metrics=list(chunk), synchronous=True)
    return len(df)


def log_datasets(c: MlflowClient, run_id: str, folder: Path, context: str) -> list[str]:
    """Each prepared table (``<folder>/*.parquet``) as an MLflow dataset input of the run.

    The digest is the file's sha256 (cut to the 32 characters MLflow stores; the whole hash is the
    input's tag ``lira.sha256``), so the same file gives the same dataset in every run.
    """
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    names = []
    inputs = []
    for f in sorted(folder.glob("*.parquet")):
        sha = _sha256(f)
        with warnings.catch_warnings():
            # MLflow registers its local artifact source twice and says so for every local path
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            ds = mlflow.data.from_pandas(pd.read_parquet(f), source=str(f.resolve()), name=f.stem, digest=sha[:32])
        inputs.append(DatasetInput(ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context),
                                                                   InputTag("lira.sha256", sha)]))
        names.append(f.stem)
    if inputs:
        c.log_inputs(run_id, datasets=inputs)
    return names


# ----------------------------------------------------------------------------------- stage runs
PENDING_DIR = "mlflow_pending"  # under paths.cache: stage runs recorded, not yet logged


def stage_record(
    root: str | Path,
    stage: str,
    summary: Mapping[str, Any],
    artifacts: Sequence[str | Path] = (),
    *,
    config: Mapping[str, Any],
    start_ms: int | None = None,
) -> dict[str, Any]:
    """What :func:`log_stage` logs for a stage, taken now, as plain JSON data: its provenance tags
    (the ``dvc.lock`` the stage ran against), params, the summary's numeric leaves, artifact paths,
    start and end time, and the pipeline variables that find its parent run. Reading it needs no
    MLflow: a stage under a pipeline token records it (:func:`defer_stage`) and the orchestrator's
    process logs every record at once (:func:`flush_pending`)."""
    return {
        "stage": stage, "tags": provenance_tags(config, root), "params": stage_params(config, stage),
        "metrics": numeric_leaves(summary), "artifacts": [str(Path(a).resolve()) for a in artifacts],
        "start_ms": start_ms, "end_ms": int(time.time() * 1000), "config": dict(config),
        "env": {k: os.environ[k] for k in (PARENT_ENV, PIPELINE_ENV) if os.environ.get(k)},
    }


def log_stage(
    tracking: TrackingParams,
    root: str | Path,
    stage: str,
    summary: Mapping[str, Any],
    artifacts: Sequence[str | Path] = (),
    *,
    config: Mapping[str, Any],
    paths: PathsParams,
    start_ms: int | None = None,
) -> str | None:
    """Log one stage as a nested run under the pipeline parent; returns its run id (None if disabled).

    Params: the stage's section + ``shared`` (dotted keys, <= 100 per batch, long values cut with a
    tag naming them). Metrics: the summary's finite numeric leaves (dotted keys; ``@`` -> ``_at_``).
    Tags: git commit, params hash, ``dvc.lock`` sha256, data version, stage. Artifacts: ``artifacts``.
    """
    if not tracking.enabled:
        return None
    return log_record(tracking, root, stage_record(root, stage, summary, artifacts, config=config, start_ms=start_ms),
                      paths=paths)


def log_record(tracking: TrackingParams, root: str | Path, record: Mapping[str, Any], *, paths: PathsParams) -> str:
    """Log a :func:`stage_record` as a nested run under its pipeline parent; returns the run id."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    stage, config = record["stage"], record["config"]
    with _environ(record.get("env") or {}):  # the parent as the stage would have found it
        parent = parent_run_id(tracking, root, config=config, paths=paths)
        token = os.environ.get(PIPELINE_ENV)
    c = client(tracking, root)
    exp = c.get_run(parent).info.experiment_id
    tags = {**record["tags"], TAG_STAGE: stage, MLFLOW_PARENT_RUN_ID: parent}
    run = c.create_run(exp, start_time=record.get("start_ms"), run_name=stage, tags=tags)
    run_id = run.info.run_id
    try:
        log_params(c, run_id, record["params"])
        log_metrics(c, run_id, record["metrics"])
        plots = Path(root) / paths.plots
        if stage in CURVES and (plots / CURVES[stage]).exists():
            log_curve(c, run_id, plots / CURVES[stage])
        if stage in DATASET_CONTEXT:
            log_datasets(c, run_id, Path(root) / paths.prepared, DATASET_CONTEXT[stage])
        for a in map(Path, record["artifacts"]):
            if not a.resolve().is_relative_to(Path(root).resolve()):
                raise ValueError(f"{stage}: artifact {a} is outside the project {Path(root).resolve()}; not logged")
            if not a.exists():
                raise FileNotFoundError(f"{stage}: artifact {a} does not exist")
            if a.is_dir():
                c.log_artifacts(run_id, str(a), artifact_path=a.name)
            else:
                c.log_artifact(run_id, str(a))
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    end = int(record.get("end_ms") or time.time() * 1000)
    c.set_terminated(run_id, "FINISHED", end_time=end)
    if not token:
        # no pipeline token (a plain `dvc repro`): nobody will close the parent, so it ends with
        # its latest stage; under a token it stays RUNNING until finish_pipeline gives its status
        c.set_terminated(parent, "FINISHED", end_time=end)
    return run_id


@contextmanager
def env_vars(values: Mapping[str, str | None]) -> Iterator[None]:
    """Environment variables set for the block (a None or empty value unsets one), then restored."""
    before = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v:
                os.environ[k] = v
            else:
                os.environ.pop(k, None)
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _environ(values: Mapping[str, str]):  # noqa: ANN202 - a context manager
    """The pipeline variables exactly as in ``values`` (those absent unset) for the block."""
    return env_vars({k: values.get(k) for k in (PARENT_ENV, PIPELINE_ENV)})


def defer_stage(tracking: TrackingParams, root: str | Path, stage: str, summary: Mapping[str, Any],
                artifacts: Sequence[str | Path] = (), *, config: Mapping[str, Any], paths: PathsParams,
                start_ms: int | None = None) -> Path | None:
    """Under a pipeline token (``lira run``, the Prefect flow): write the stage's record to
    ``<paths.cache>/mlflow_pending/`` for :func:`flush_pending` and return its path; without one
    (a plain ``dvc repro`` or ``lira stage``, which nobody flushes after), log it now and return None.

    Why: importing MLflow and opening its store is ~2.8 s of every stage process, more than the
    whole work of build_dataset or translate; recorded, the stages of a pipeline are logged by one
    process (evaluate, which logs its own run, or the orchestrator's finish_pipeline)."""
    if not tracking.enabled:
        return None
    if not os.environ.get(PIPELINE_ENV):
        log_stage(tracking, root, stage, summary, artifacts, config=config, paths=paths, start_ms=start_ms)
        return None
    for a in artifacts:  # now, while the stage that named them can still say so
        if not Path(a).exists():
            raise FileNotFoundError(f"{stage}: artifact {a} does not exist")
    from lira.io import write_json

    record = stage_record(root, stage, summary, artifacts, config=config, start_ms=start_ms)
    path = Path(root) / paths.cache / PENDING_DIR / f"{time.time_ns()}-{stage}.json"
    write_json(path, record)
    return path


def flush_pending(tracking: TrackingParams, root: str | Path, *, paths: PathsParams) -> list[str]:
    """Log every recorded stage run (:func:`defer_stage`) in the order the stages ran, each record
    removed once its run is logged (a failure leaves it and the later ones for the next flush);
    returns the run ids."""
    folder = Path(root) / paths.cache / PENDING_DIR
    files = sorted(folder.glob("*.json"), key=lambda f: (int(f.name.split("-", 1)[0]), f.name)) if folder.is_dir() else []
    if not tracking.enabled or not files:
        return []
    ids = []
    for f in files:
        try:
            record = json.loads(f.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not isinstance(record.get("stage"), str):
                raise ValueError("not a stage record")
        except (OSError, ValueError) as e:
            raise ValueError(f"{f}: unreadable pending stage record ({e}); remove it to go on") from None
        ids.append(log_record(tracking, root, record, paths=paths))
        f.unlink()
    return ids


__all__ = [
    "PARENT_ENV",
    "PIPELINE_ENV",
    "STAGES",
    "StoreMoved",
    "artifact_location",
    "client",
    "close_parent",
    "experiment_id",
    "finish_pipeline",
    "flatten",
    "log_headline",
    "defer_stage",
    "env_vars",
    "flush_pending",
    "log_record",
    "log_stage",
    "metric_key",
    "numeric_leaves",
    "param_entries",
    "parent_run_id",
    "pipeline_token",
    "stage_record",
    "start_pipeline",
    "portable_uri",
    "tracking_uri",
    "using_tracking_uri",
]
