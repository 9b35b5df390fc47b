"""The ``lira-pipeline`` flow: the six stages of ``dvc.yaml`` as Prefect tasks, run through DVC.

Each task runs ``dvc repro --single-item <stage>`` as a subprocess in the project root, with the
venv's ``bin`` first on ``PATH`` so the stage command ``lira stage <name>`` resolves to this
environment. The stage code is the SAME code ``dvc repro`` and ``make run`` execute, and DVC's
cache decides what reruns: an unchanged stage logs "didn't change, skipping" and costs nothing.
The subprocess output streams into the Prefect logger; a failing stage fails its task with the
tail of the stage's stderr in the error message. Like ``lira run``, a flow run first opens one
MLflow parent run (``LIRA_MLFLOW_PARENT_RUN_ID`` in the stages' environment) under which every
stage that reruns logs; the end of the run publishes the headline metrics (a markdown table from
``evaluate.json``, linking to the rest) and the MLflow run link (``mlflow_run.json``) as Prefect
artifacts. Each parameter's description in the deployment (the UI's run form) comes from
:func:`parameter_help`, which reads the config classes' help text.

Params overrides (``overrides`` + ``preset``)
---------------------------------------------
A run may carry dotted overrides such as ``{"train_arca.lr": 0.005, "train_lasr.ablations": []}``
and a preset (``shared.preset``). Only training parameters may be overridden: the keys of
``flows.guard.ALLOWED_OVERRIDES`` (never encoder specs, ``trust_remote_code``, servers, API keys,
sources or paths), and every path the params name must stay inside the project root. They are
applied like ``dvc exp run -S key=value``: written into the workspace's ``params.yaml`` before
the first stage, because the stages read only params.yaml
and DVC tracks params through it (``dvc.lock`` records what the run used). Before anything is
written the merged params are validated by ``lira.config``: a wrong key or value fails the run
before any stage starts, naming the key. When the run ends (success or failure) the original
params.yaml is restored byte for byte unless ``keep_overrides=True`` - the user's file changes only
when the run is meant to change it. Outputs and dvc.lock stay as the run left them, so the next
plain run reruns (or restores from DVC's run cache) exactly the stages whose params differ.
``dvc exp run --temp`` was not used: it reproduces in a temporary copy, so the run's
``metrics/*.json`` (read here for the artifacts) and a local MLflow store would not land in the
workspace. One workspace runs one flow at a time: a run holds ``.dvc/tmp/lira-flow.lock`` and a
second run waits for it (the deployments also set ``concurrency_limit: 1``).

Tags and work-pool routing
--------------------------
Every stage task is tagged ``lira``, ``stage:<name>`` and ``gpu`` or ``cpu``: ``gpu`` on translate,
critic_score, train_arca and train_lasr when ``shared.device`` is ``cuda``/``auto`` or when the
translate agents / LLM critic run a model in-process (``transformers``/``vllm`` backends; the
``openai`` backend calls a server whose GPU is elsewhere, so it stays ``cpu``). In Prefect 3 all
tasks of a flow run execute in that flow run's infrastructure, so tags do not move a task to another
machine: routing is per deployment (``prefect.yaml``: ``*/cpu`` on the ``lira-cpu`` process pool,
``*/gpu`` on the ``lira-gpu`` pool). The tags drive task concurrency limits
(``prefect concurrency-limit create gpu 1`` serialises GPU stages across runs) and UI filters.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from lira.config import (  # noqa: F401  (flatten_overrides, set_dotted: re-exported for the flows)
    STAGES,
    ConfigError,
    Params,
    apply_overrides,
    flatten_overrides,
    parse_params,
    read_params_data,
    set_dotted,
)

try:
    from flows.guard import check_overrides, check_root, confine_paths
except ImportError:  # loaded by file path (a deployment entrypoint) from another working directory
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from flows.guard import check_overrides, check_root, confine_paths

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Stages that call translator / critic servers: transient failures (timeouts, 5xx, a server still
# loading weights) are worth retrying after a pause. The delays are module attributes so tests can
# shorten them.
SERVER_STAGES = ("translate", "critic_score")
SERVER_RETRIES = 2
SERVER_RETRY_DELAYS: list[float] = [10.0, 60.0]
GPU_CAPABLE_STAGES = ("translate", "critic_score", "train_arca", "train_lasr")
# Backends that load a model inside the stage process (so the stage itself needs the GPU).
IN_PROCESS_BACKENDS = frozenset({"transformers", "vllm"})
# `lira stage` exits 2 on a config/usage error: retrying cannot help.
USAGE_EXIT_CODE = 2
TAIL_LINES = 40

Preset = Literal["base", "large", "max"]


def _field_help(section: type, name: str) -> str:
    return section.model_fields[name].description or ""


def parameter_help() -> dict[str, str]:
    """Each flow parameter's description in the deployment's schema (the UI's "Custom run" form),
    taken from the config classes' help text where a parameter is a config key."""
    from lira.config import SharedParams, TrackingParams

    return {
        "overrides": (
            "params keys to change for this run only, dotted, e.g. {\"train_arca.lr\": 0.005, "
            "\"train_lasr.epochs\": 40}. Only training parameters (flows.guard.ALLOWED_OVERRIDES); "
            "`lira config explain KEY` says what a key means, its type and default. "
            "params.yaml is restored after the run unless keep_overrides."
        ),
        "preset": "shared.preset: " + _field_help(SharedParams, "preset"),
        "stages": "the dvc.yaml stages to reproduce, in pipeline order (null: all six): "
                  + ", ".join(STAGES),
        "keep_overrides": "leave the overrides in params.yaml after the run (like `dvc exp run -S` without --temp)",
        "root": "the lira project (a checkout holding dvc.yaml); null: $LIRA_ROOT, else this flow's checkout",
        "force": ("move @" + TrackingParams.model_fields["champion_alias"].default + " even if the gate refuses "
                  "(an operator override, recorded as `forced` in the version's gate history). The gate compares "
                  "tracking.gate_metric, " + _field_help(TrackingParams, "gate_metric")),
        "version": "the registered model version to promote (a number, e.g. 7); null: the newest",
        "pull": "dvc pull the data and cached outputs from the DVC remote before the run (skipped without a remote)",
        "push": "dvc push the run's outputs to the DVC remote after it",
        "nproc": ("ranks per stage for the stages that scale out (critic_score, train_arca, train_lasr), each "
                  "under torchrun; null: shared.distributed.nproc_per_node. "
                  + _field_help(SharedParams, "distributed")),
        "parallel_agents": ("before the translate stage, fill every agent's translation cache at once, one "
                            "mapped task per agent (each writes its own cache shards); the stage then only assembles"),
    }


def with_parameter_help(fn):
    """Append an ``Args:`` section (Google style, what Prefect reads into the parameter schema) to
    ``fn``'s docstring for the parameters it takes. Put it below ``@flow``."""
    import inspect

    names = [n for n in inspect.signature(fn).parameters if n in parameter_help()]
    help_ = parameter_help()
    args = "\n".join(f"    {n}: {help_[n]}" for n in names)
    fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nArgs:\n{args}\n"
    return fn


class StageError(RuntimeError):
    """A stage failed under ``dvc repro``; the message carries the tail of its stderr."""

    def __init__(self, stage: str, exit_code: int, stderr_tail: list[str]) -> None:
        self.stage = stage
        self.exit_code = exit_code
        self.stderr_tail = list(stderr_tail)
        self.stage_exit_code = _stage_exit_code(self.stderr_tail)
        tail = "\n".join(self.stderr_tail) or "(no stderr)"
        super().__init__(f"stage {stage!r} failed (dvc exit {exit_code}); last stderr lines:\n{tail}")

    @property
    def retryable(self) -> bool:
        """Transient failures only: not a config error, not a DVC error such as missing deps."""
        if self.stage_exit_code is not None:
            return self.stage_exit_code != USAGE_EXIT_CODE
        return any("Unable to acquire lock" in line for line in self.stderr_tail)


def _stage_exit_code(lines: Iterable[str]) -> int | None:
    # DVC reports the command's exit: "failed to run: lira stage translate, exited with 1".
    for line in reversed(list(lines)):
        m = re.search(r"exited with (-?\d+)", line)
        if m:
            return int(m.group(1))
    return None


# ------------------------------------------------------------------------------------ project
def project_root(root: str | Path | None = None) -> Path:
    """``root`` if given, else ``$LIRA_ROOT``, else the folder holding ``flows/``; must hold dvc.yaml.

    With ``$LIRA_ROOT`` set, a given ``root`` must be that folder (``flows.guard.check_root``).
    """
    path = Path(root or os.environ.get("LIRA_ROOT") or PROJECT_ROOT).expanduser().resolve()
    check_root(path)
    if not (path / "dvc.yaml").is_file():
        raise FileNotFoundError(f"{path}: no dvc.yaml here; pass `root` (or set LIRA_ROOT) to the lira project")
    return path


def stage_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: this venv's bin first on PATH, analytics off, hub offline by default."""
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)  # not resolved: a venv's python is a symlink
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Same default as `lira run`; a worker with hub access sets HF_HUB_OFFLINE=0 for presets.
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def dvc_command() -> list[str]:
    exe = Path(sys.executable).with_name("dvc")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("dvc")
    return [found] if found else [sys.executable, "-m", "dvc"]


def select_stages(stages: list[str] | None) -> list[str]:
    """The requested stages in dvc.yaml order (all six when None)."""
    if not stages:
        return list(STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    return [s for s in STAGES if s in stages]


# ---------------------------------------------------------------------------------- overrides
def resolve_params(root: Path, flat: dict[str, Any] | None = None) -> Params:
    """params.yaml with the overrides applied, validated (raises ``ConfigError`` naming the key)."""
    params_file = root / "params.yaml"
    data = apply_overrides(read_params_data(params_file), flat)
    source = f"{params_file} + overrides {sorted(flat)}" if flat else str(params_file)
    return parse_params(data, source)


def run_params(
    root: Path, overrides: dict[str, Any] | list[str] | None = None, preset: str | None = None
) -> tuple[dict[str, Any], Params]:
    """A flow run's overrides (allow-listed) and its validated params (every path inside ``root``).

    Raises ``ConfigError`` naming the key before anything is written: a key outside
    ``flows.guard.ALLOWED_OVERRIDES``, an invalid value, or a path that leaves the project.
    """
    flat = flatten_overrides(overrides, preset)
    check_overrides(flat)
    params = resolve_params(root, flat)
    confine_paths(params, root)
    return flat, params


def write_overrides(params_file: Path, flat: dict[str, Any]) -> None:
    """Write overrides into params.yaml keeping its comments (ruamel round trip, as ``dvc exp run -S``)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )

    def node(value: Any) -> Any:
        # New lists/mappings in flow style, like the rest of params.yaml.
        if isinstance(value, list):
            seq = CommentedSeq(node(v) for v in value)
            seq.fa.set_flow_style()
            return seq
        if isinstance(value, dict):
            cmap = CommentedMap((k, node(v)) for k, v in value.items())
            cmap.fa.set_flow_style()
            return cmap
        return value

    data = rt.load(params_file.read_text(encoding="utf-8")) or CommentedMap()
    for key, value in flat.items():
        set_dotted(data, key, node(value), new_map=CommentedMap)
    buf = io.StringIO()
    rt.dump(data, buf)
    tmp = params_file.with_name(params_file.name + ".tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, params_file)


# ----------------------------------------------------------------------------------- routing
def needs_gpu(stage: str, params: Params) -> bool:
    if stage not in GPU_CAPABLE_STAGES:
        return False
    if params.shared.device in ("cuda", "auto"):
        return True
    if stage == "translate":
        return any(a.backend in IN_PROCESS_BACKENDS for a in params.translate.agents)
    if stage == "critic_score":
        llm = params.critic_score.llm
        return llm is not None and llm.backend in IN_PROCESS_BACKENDS
    return False


def stage_tags(stage: str, params: Params) -> list[str]:
    return ["lira", f"stage:{stage}", "gpu" if needs_gpu(stage, params) else "cpu"]


# ------------------------------------------------------------------------------ workspace lock
# The overrides live in the workspace's params.yaml for the length of a run, so two runs in one
# workspace would see each other's params: runs take an exclusive lock on the workspace (flock,
# so it also holds between worker containers sharing a bind-mounted checkout). Re-entrant within
# a process: retrain holds it around pull -> pipeline subflow -> push.
WORKSPACE_LOCK = Path(".dvc") / "tmp" / "lira-flow.lock"
WORKSPACE_LOCK_TIMEOUT_S = 6 * 3600.0
_held: dict[str, int] = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def workspace_lock(root: Path, logger: Any = None, timeout: float | None = None) -> Iterator[None]:
    """Hold ``<root>/.dvc/tmp/lira-flow.lock`` exclusively (waits up to ``timeout`` seconds)."""
    key = str(Path(root).resolve())
    with _held_guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
        fcntl = None  # type: ignore[assignment]
    path = Path(root) / WORKSPACE_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    limit = WORKSPACE_LOCK_TIMEOUT_S if timeout is None else timeout
    with open(path, "a+") as fh:
        if fcntl is not None:
            t0, waiting = time.monotonic(), False
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waiting and logger is not None:
                        logger.info("another lira run holds %s; waiting (up to %.0f s)", path, limit)
                    waiting = True
                    if time.monotonic() - t0 > limit:
                        raise TimeoutError(f"{path}: still held by another lira run after {limit:.0f} s") from None
                    time.sleep(1.0)
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(key, None)
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------- execution
def run_logged(
    cmd: list[str], cwd: Path, env: dict[str, str], logger: Any, timeout: float | None = None
) -> tuple[int, list[str], list[str]]:
    """Run ``cmd``, logging every line; return (exit code, stdout lines, last stderr lines).

    On ``timeout`` the process is killed and ``subprocess.TimeoutExpired`` raised.
    """
    out: list[str] = []
    err_tail: deque[str] = deque(maxlen=TAIL_LINES)

    def pump(stream: Any, sink: Any) -> None:
        for raw in stream:
            # tqdm redraws with \r: log the last frame only.
            line = raw.rstrip("\n").split("\r")[-1]
            if line.strip():
                sink.append(line)
                logger.info(line)

    with subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8", errors="replace", bufsize=1,
    ) as proc:
        threads = [
            threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, err_tail), daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            for t in threads:
                t.join(timeout=10)
    return rc, out, list(err_tail)


def classify(stage: str, stdout: list[str]) -> str:
    """What DVC did: ``ran``, ``restored`` (from its run cache) or ``skipped`` (unchanged)."""
    text = "\n".join(stdout)
    if f"Stage '{stage}' is cached" in text:
        return "restored"
    if f"Running stage '{stage}'" in text:
        return "ran"
    if f"Stage '{stage}' didn't change" in text:
        return "skipped"
    return "unknown"


@task(name="dvc-stage", cache_policy=NO_CACHE, task_run_name="{stage}")
def dvc_stage(stage: str, root: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``dvc repro --single-item <stage>`` in ``root`` (``env``: extra variables); fails with the stderr tail."""
    logger = get_run_logger()
    cmd = [*dvc_command(), "repro", "--single-item", stage]
    logger.info("$ dvc repro --single-item %s   (cwd %s)", stage, root)
    t0 = time.perf_counter()
    rc, out, err_tail = run_logged(cmd, Path(root), {**stage_env(), **(env or {})}, logger)
    if rc != 0:
        raise StageError(stage, rc, err_tail)
    status = classify(stage, out)
    seconds = round(time.perf_counter() - t0, 2)
    logger.info("stage %s: %s in %.1f s", stage, status, seconds)
    return {"stage": stage, "status": status, "seconds": seconds}


@task(name="translate-agent", cache_policy=NO_CACHE, task_run_name="translate-agent-{agent}")
def translate_agent_task(agent: str, root: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``lira translate-agent AGENT``: one agent's translations into the shared cache, in its own
    process (own model, own GPU context); mapped over the agents, K of them run at once."""
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "lira", "translate-agent", agent]
    t0 = time.perf_counter()
    rc, _, err_tail = run_logged(cmd, Path(root), {**stage_env(), **(env or {})}, logger)
    if rc != 0:
        raise StageError(f"translate-agent {agent}", rc, err_tail)
    return {"agent": agent, "seconds": round(time.perf_counter() - t0, 2)}


def fill_agents_concurrently(params: Params, root: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """Every translate agent at once (a mapped task each); the translate stage then only assembles."""
    from prefect import unmapped

    names = [a.name for a in params.translate.agents]
    futures = translate_agent_task.with_options(tags=stage_tags("translate", params)).map(
        names, root=unmapped(root), env=unmapped(env))
    return [f.result() for f in futures]


@task(name="mlflow-parent-run", cache_policy=NO_CACHE)
def mlflow_parent_run(root: str, params: Params) -> dict[str, str]:
    """One MLflow parent run per flow run, as ``lira run`` does: the stages that rerun nest under it.

    Returns the stage environment with the pipeline token (``lira.tracking.runs``); the first
    stage that logs creates the parent, so a run in which nothing reruns leaves no MLflow run.
    Empty when tracking is off or a parent run id is given.
    """
    if not params.tracking.enabled:
        return {}
    from lira.tracking.runs import PARENT_ENV, PIPELINE_ENV, pipeline_token

    if os.environ.get(PARENT_ENV):
        return {}
    return {PIPELINE_ENV: pipeline_token()}


def close_parent_run(root: str, params: Params, env: dict[str, str], ok: bool) -> str | None:
    """Close the flow run's MLflow parent (FINISHED or FAILED); None if no stage logged under it."""
    from lira.tracking.runs import PIPELINE_ENV, finish_pipeline

    token = env.get(PIPELINE_ENV)
    if not token:
        return None
    run_id = finish_pipeline(params.tracking, Path(root), token, ok, paths=params.shared.paths)
    if run_id:
        get_run_logger().info("MLflow parent run %s", run_id)
    return run_id


def _retry_transient(task_: Any, task_run: Any, state: Any) -> bool:
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    return exc.retryable if isinstance(exc, StageError) else True


def stage_task(stage: str, params: Params):  # -> prefect Task
    """The stage's task with its tags and retry policy (retries only on the server stages)."""
    server = stage in SERVER_STAGES
    return dvc_stage.with_options(
        name=stage,
        tags=stage_tags(stage, params),
        retries=SERVER_RETRIES if server else 0,
        retry_delay_seconds=list(SERVER_RETRY_DELAYS) if server else 0,
        retry_condition_fn=_retry_transient,
    )


# --------------------------------------------------------------------------------- artifacts
def flatten_metrics(data: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Nested metrics JSON -> rows ``{"metric": "a.b.c", "value": v}`` (lists indexed ``a[0]``)."""
    rows: list[dict[str, Any]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            rows += flatten_metrics(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            rows += flatten_metrics(v, f"{prefix}[{i}]")
    else:
        value = round(data, 6) if isinstance(data, float) else data
        rows.append({"metric": prefix or "value", "value": value})
    return rows


def _cell(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def headline_markdown(evaluation: dict[str, Any], report: str, n_values: int, mlflow_url: str | None = None) -> str:
    """The evaluation's headline (:func:`lira.eval.headline.headline`) as markdown tables: systems
    x tasks with LiRA's gain and its CI, then LiRA per language; a link to the rest."""
    from lira.eval.headline import LANGUAGE_DIR, SYSTEM_DIR, TASK_COLUMNS, file_stem, headline

    rows = headline(evaluation)
    tasks = [c for c, _, _ in TASK_COLUMNS]
    systems = {name: rows[f"{SYSTEM_DIR}/{file_stem(name)}.json"] for name in evaluation["systems"]}
    langs = {k[len(LANGUAGE_DIR) + 1:-5]: v for k, v in rows.items() if k.startswith(LANGUAGE_DIR + "/")}
    lines = ["### Test split, all languages", "",
             "| system | " + " | ".join(tasks) + " | LiRA - system, nDCG@10 [CI] |",
             "|---|" + "---:|" * (len(tasks) + 1)]
    for name, r in systems.items():
        gain = (f"{r['lira_minus.ndcg@10']:+.4f} [{r['lira_minus.ci_low']:+.4f}, {r['lira_minus.ci_high']:+.4f}]"
                if "lira_minus.ndcg@10" in r else "")
        lines.append(f"| {name} | " + " | ".join(_cell(r.get(t)) for t in tasks) + f" | {gain} |")
    if langs:
        lines += ["", "### LiRA per language", "", "| language | " + " | ".join(tasks) + " |",
                  "|---|" + "---:|" * len(tasks)]
        lines += [f"| {lang} | " + " | ".join(_cell(r.get(t)) for t in tasks) + " |" for lang, r in langs.items()]
    rest = f"The rest ({n_values} values: recall@k, MRR, cross-lingual, diagnostics, cost) is in `{report}`"
    rest += f" and on the [MLflow run]({mlflow_url})." if mlflow_url else " (and `dvc metrics show` in the project)."
    return "\n".join([*lines, "", rest])


def mlflow_run_url(info: dict[str, Any], ui_base: str | None = None) -> str | None:
    """The MLflow UI link of a run; None for a local store with no UI to link to.

    ``ui_base`` (default ``$LIRA_MLFLOW_UI_URL``) is the UI as the *reader* reaches it: a worker
    tracks to ``http://mlflow:5000``, a name the browser on the host cannot resolve.
    """
    uri = str(info.get("tracking_uri") or "")
    base = ui_base if ui_base is not None else os.environ.get("LIRA_MLFLOW_UI_URL", "")
    if not base and uri.startswith(("http://", "https://")):
        base = uri
    if not base or not info.get("run_id"):
        return None
    # MLflow 3's UI shows every experiment in its GenAI mode unless the link names the workflow
    # (the experiment's kind tag does not change that; seen in a headless browser, bench/views.py)
    return (f"{base.rstrip('/')}/#/experiments/{info.get('experiment_id', '0')}/runs/{info['run_id']}"
            "?workflowType=machine_learning")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@task(name="publish-results", cache_policy=NO_CACHE)
def publish_results(root: str, metrics_dir: str, stage_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Artifacts: the stage summary, the metrics table (evaluate.json) and the MLflow run link."""
    logger = get_run_logger()
    metrics = Path(root) / metrics_dir
    lines = ["| stage | DVC | seconds |", "|---|---|---|"]
    lines += [f"| {r['stage']} | {r['status']} | {r['seconds']} |" for r in stage_runs]
    create_markdown_artifact(markdown="\n".join(lines), key="lira-stages", description="what DVC did per stage")

    out: dict[str, Any] = {"metrics": None, "mlflow_run": None}
    evaluation = _read_json(metrics / "evaluate.json")
    run = _read_json(metrics / "mlflow_run.json")
    if evaluation is not None:
        rows = flatten_metrics(evaluation)
        out["metrics"] = {r["metric"]: r["value"] for r in rows}
        url = mlflow_run_url(run) if isinstance(run, dict) and run.get("run_id") else None
        create_markdown_artifact(markdown=headline_markdown(evaluation, f"{metrics_dir}/evaluate.json", len(rows), url),
                                 key="lira-metrics", description="headline metrics (evaluate)")
    else:
        logger.warning("no %s/evaluate.json: no metrics artifact (evaluate did not run)", metrics_dir)

    if isinstance(run, dict) and run.get("run_id"):
        out["mlflow_run"] = run
        url = mlflow_run_url(run)
        if url:
            create_link_artifact(link=url, link_text=f"MLflow run {run['run_id']}", key="lira-mlflow-run")
        else:
            create_markdown_artifact(
                markdown=(
                    f"MLflow run `{run['run_id']}` (experiment `{run.get('experiment_id')}`) in the local "
                    f"store `{run.get('tracking_uri')}`.\n\nOpen it with "
                    f"`mlflow ui --backend-store-uri {run.get('tracking_uri')}` in `{root}`."
                ),
                key="lira-mlflow-run",
            )
    else:
        logger.warning("no %s/mlflow_run.json: no MLflow link artifact", metrics_dir)
    return out


# --------------------------------------------------------------------------------------- flow
@flow(name="lira-pipeline", description="The six lira stages through `dvc repro` (DVC decides what reruns).")
@with_parameter_help
def lira_pipeline(
    overrides: dict[str, Any] | None = None,
    preset: Preset | None = None,
    stages: list[str] | None = None,
    keep_overrides: bool = False,
    root: str | None = None,
    nproc: int | None = None,
    parallel_agents: bool = False,
) -> dict[str, Any]:
    """Reproduce the pipeline; ``overrides`` are dotted params keys (``{"train_arca.lr": 0.005}``)."""
    logger = get_run_logger()
    project = project_root(root)
    flat, params = run_params(project, overrides, preset)  # fails here, before any stage, on a bad override
    selected = select_stages(stages)
    params_file = project / "params.yaml"
    stage_runs: list[dict[str, Any]] = []
    with workspace_lock(project, logger):
        original = params_file.read_bytes()
        if flat:
            write_overrides(params_file, flat)
            logger.info("params overrides for this run: %s", flat)
        env: dict[str, str] = {}
        ok = False
        try:
            env = mlflow_parent_run(str(project), params)
            if nproc is not None:
                from lira.distributed.launch import NPROC_ENV

                env = {**env, NPROC_ENV: str(int(nproc))}
            for stage in selected:
                if stage == "translate" and parallel_agents:
                    fill_agents_concurrently(params, str(project), env)
                stage_runs.append(stage_task(stage, params)(stage, str(project), env))
            ok = True
        finally:
            close_parent_run(str(project), params, env, ok)
            if flat and not keep_overrides:
                params_file.write_bytes(original)
                logger.info("params.yaml restored (keep_overrides=False)")
        published = publish_results(str(project), params.shared.paths.metrics, stage_runs)
    return {"root": str(project), "overrides": flat, "stages": stage_runs, **published}


if __name__ == "__main__":  # pragma: no cover - `python flows/pipeline.py` runs once against $PREFECT_API_URL
    lira_pipeline()
