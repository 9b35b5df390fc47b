"""External benchmarks evaluated without retraining: BEIR/MTEB retrieval folders, parallel TSV.

Each source named in ``evaluate.external`` is read by the same readers as build_dataset and scored
with an embedding function per system (texts, language, kind) -> unit vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from lira.config import SourceParams
from lira.data.readers import READERS
from lira.eval.metrics import bitext_accuracy, mean_metrics, retrieval_metrics, scores_to_run

# (texts, lang, kind, english) -> [N, d]; english=True embeds English text on the English path.
EmbedFn = Callable[[list[str], str, str, bool], np.ndarray]


def evaluate_external(src: SourceParams, root: Path, systems: dict[str, EmbedFn]) -> dict:
    ds = READERS[src.kind](root / src.path, src.language, "error", src.name)
    text = {t["text_id"]: t for t in ds.texts}
    out: dict = {"kind": src.kind, "path": src.path, "language": src.language, "systems": {}}
    if src.kind == "parallel_tsv":
        lrl = [text[p["text_id"]]["text"] for p in ds.parallel]
        eng = [text[p["text_id"]]["en_ref"] for p in ds.parallel]
        out["n"] = len(lrl)
        for name, fn in systems.items():
            out["systems"][name] = bitext_accuracy(fn(lrl, src.language, "query", False), fn(eng, src.language, "query", True))
    elif src.kind == "beir":
        items = [i["item_id"] for i in ds.items]
        queries = [q["query_id"] for q in ds.queries]
        qrels: dict[str, dict[str, int]] = {}
        for r in ds.qrels:
            qrels.setdefault(r["query_id"], {})[r["item_id"]] = r["relevance"]
        out["n"] = len(queries)
        for name, fn in systems.items():
            zi = fn([text[i]["text"] for i in items], src.language, "passage", False)
            zq = fn([text[q]["text"] for q in queries], src.language, "query", False)
            run = scores_to_run(queries, items, zq @ zi.T, top_k=100)
            out["systems"][name] = mean_metrics(retrieval_metrics(run, qrels))
    else:
        raise ValueError(f"evaluate.external: kind {src.kind!r} is not a benchmark (use beir or parallel_tsv)")
    return out
