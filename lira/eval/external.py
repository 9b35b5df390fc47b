"""External benchmarks evaluated without retraining: BEIR/MTEB retrieval folders, parallel TSV.

Each source (``evaluate.external`` in the pipeline, or ``lira eval --beir DIR`` on its own) is read
by the same readers as build_dataset and scored with an embedding function per system
(texts, language, kind, english) -> unit vectors. Every system is compared with the first one (the
reference: the trained model) on the same items by a paired bootstrap
(:func:`lira.eval.bootstrap.paired_bootstrap`): per query for retrieval (``reference - system`` of
mean nDCG@10, recall@10, MRR@10), per sentence pair for bitext accuracy.

An external benchmark brings no translations, so a LiRA model reads it on its LRL path alone
(system ``lira_lrl_only``), as ``lira embed`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from lira.config import SourceParams
from lira.data.readers import READERS
from lira.eval.bootstrap import paired_bootstrap
from lira.eval.metrics import bitext_hits, mean_metrics, retrieval_metrics, scores_to_run

# (texts, lang, kind, english) -> [N, d]; english=True embeds English text on the English path.
EmbedFn = Callable[[list[str], str, str, bool], np.ndarray]
# what the paired bootstrap compares on a retrieval benchmark (all computed per query)
COMPARED = ("ndcg@10", "recall@10", "mrr@10")


def evaluate_external(
    src: SourceParams, root: Path, systems: dict[str, EmbedFn], n_resamples: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> dict:
    """Mean metrics per system and, for every system after the first, ``first - system`` with its
    paired-bootstrap CI (``lira_minus`` in the pipeline's terms; ``reference`` names the first)."""
    ds = READERS[src.kind](root / src.path, src.language, "error", src.name)
    text = {t["text_id"]: t for t in ds.texts}
    names = list(systems)
    out: dict = {"name": src.name or Path(src.path).name or src.kind, "kind": src.kind, "path": src.path,
                 "language": src.language, "reference": names[0] if names else None, "confidence": confidence,
                 "systems": {}}
    per_item: dict[str, dict[str, np.ndarray]] = {}
    if src.kind == "parallel_tsv":
        lrl = [text[p["text_id"]]["text"] for p in ds.parallel]
        eng = [text[p["text_id"]]["en_ref"] for p in ds.parallel]
        out["n"] = len(lrl)
        for name, fn in systems.items():
            s2t, t2s = bitext_hits(fn(lrl, src.language, "query", False), fn(eng, src.language, "query", True))
            per_item[name] = {"src2tgt": np.asarray(s2t, np.float64), "tgt2src": np.asarray(t2s, np.float64)}
    elif src.kind == "beir":
        items = [i["item_id"] for i in ds.items]
        queries = [q["query_id"] for q in ds.queries]
        qrels: dict[str, dict[str, int]] = {}
        for r in ds.qrels:
            qrels.setdefault(r["query_id"], {})[r["item_id"]] = r["relevance"]
        out["n"] = len(qrels)
        out["n_items"] = len(items)
        for name, fn in systems.items():
            zi = fn([text[i]["text"] for i in items], src.language, "passage", False)
            zq = fn([text[q]["text"] for q in queries], src.language, "query", False)
            run = scores_to_run(queries, items, zq @ zi.T, top_k=100)
            per_item[name] = retrieval_metrics(run, qrels)
    else:
        raise ValueError(f"evaluate.external: kind {src.kind!r} is not a benchmark (use beir or parallel_tsv)")
    out["systems"] = {name: mean_metrics(v) for name, v in per_item.items()}
    compared = ("src2tgt", "tgt2src") if src.kind == "parallel_tsv" else COMPARED
    ref = out["reference"]
    out["lira_minus"] = {
        name: {m: paired_bootstrap(np.mean, per_item[ref][m], v[m], n_resamples=n_resamples,
                                   confidence=confidence, seed=seed).as_dict() for m in compared if m in v}
        for name, v in per_item.items() if name != ref
    }
    return out


def external_by_name(results) -> dict[str, dict]:  # an iterable of evaluate_external results
    """The benchmarks keyed by name (``name-2``, ... for repeats): a mapping, not a list, because
    ``dvc metrics show``/``diff`` read numbers only from nested mappings and skip lists."""
    out: dict[str, dict] = {}
    for res in results:
        key, n = res["name"], 1
        while key in out:
            n += 1
            key = f"{res['name']}-{n}"
        out[key] = res
    return out


def model_systems(model, cache_dir: str | Path | None = None) -> dict[str, EmbedFn]:  # a LiraModel or an Encoder
    """Embedding functions for a loaded model (:func:`lira.api.load`): a LiRA model on its LRL path
    (English text on its English path) first, then the frozen encoder it was trained on (its own
    backbones, mean-pooled, without its LoRA adapter if it has one); a plain encoder alone as ``frozen``."""
    from lira.model import LiraModel, default_cache_dir

    if not isinstance(model, LiraModel):
        return {"frozen": lambda texts, lang, kind, english: model.embed(texts, kind=kind)}
    from functools import cache

    @cache
    def frozen_lrl():  # the untuned backbone, loaded once on first use
        if not model.lrl.settings.adapter:
            return model.lrl
        from lira.encoders import Encoder

        plain = model.lrl.settings.model_copy(update={"adapter": None, "adapter_sha256": None})
        return Encoder(plain, Path(cache_dir or default_cache_dir()) / "models")

    def lira(texts: list[str], lang: str, kind: str, english: bool) -> np.ndarray:
        return model.embed(texts, model.anchor_language if english else lang, kind=kind)

    def frozen(texts: list[str], lang: str, kind: str, english: bool) -> np.ndarray:
        return (model.en if english else frozen_lrl()).embed(texts, kind=kind)

    return {"lira_lrl_only": lira, "frozen": frozen}
