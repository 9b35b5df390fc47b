"""Stage 1, build_dataset: raw sources -> typed Parquet tables with deterministic splits.

Reads every source ``build_dataset.sources`` names (the shipped sample, BEIR/MTEB folders,
parallel TSV, STS TSV/JSONL, multiple-choice JSONL), checks them, assigns seeded splits and writes
``<paths.prepared>/{texts,items,queries,qrels,sts,mc,parallel,rejects}.parquet`` plus the count
report ``<paths.metrics>/dataset.json``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from lira.config import Params
from lira.data.readers import READERS, DataError, read_sample
from lira.data.schemas import TABLES, Dataset, frame
from lira.data.splits import assign_splits
from lira.io import publish_dir, write_json, write_parquet

# (table, id column) of the units that carry a split; their texts inherit it.
# Reading, validating and splitting tables needs no torch: run_stage then skips importing it
# (tests/stages/test_stage_startup.py checks that the stage never imports it).
USES_TORCH = False
METRICS = ["dataset.json"]  # under paths.metrics; dvc.yaml declares the same (tests/stages/test_outputs.py)
PLOTS: list[str] = []
_UNITS = {"items": "item_id", "queries": "query_id", "sts": "pair_id", "mc": "mc_id", "parallel": "pair_id"}


def collect(params: Params, root: Path) -> Dataset:
    cfg = params.build_dataset
    ds = Dataset()
    for src in cfg.sources:
        path = root / src.path
        if src.kind == "sample":
            ds.extend(read_sample(path, params.shared.languages, cfg.on_bad_row))
        else:
            if src.language not in params.shared.languages:
                raise DataError(path, "-", "language", f"{src.language!r} is not in shared.languages")
            ds.extend(READERS[src.kind](path, src.language, cfg.on_bad_row, src.name))
    dup = [t for t, n in Counter(r["text_id"] for r in ds.texts).items() if n > 1]
    if dup:
        raise DataError("build_dataset.sources", "-", "text_id", f"ids repeated across sources: {dup[:5]} (give sources a `name`)")
    return ds


def cap(ds: Dataset, n: int) -> Dataset:
    """Keep at most ``n`` units per task and language (smoke tests); items that kept queries need stay."""
    out = Dataset(rejects=ds.rejects)
    for table in ("queries", "sts", "mc", "parallel"):
        seen: Counter[str] = Counter()
        for r in getattr(ds, table):
            if seen[r["lang"]] < n:
                seen[r["lang"]] += 1
                getattr(out, table).append(r)
    kept_q = {r["query_id"] for r in out.queries}
    out.qrels = [r for r in ds.qrels if r["query_id"] in kept_q]
    needed = {r["item_id"] for r in out.qrels}
    per_lang: Counter[str] = Counter(r["lang"] for r in ds.items if r["item_id"] in needed)
    for r in ds.items:
        if r["item_id"] in needed or per_lang[r["lang"]] < n:
            if r["item_id"] not in needed:
                per_lang[r["lang"]] += 1
            out.items.append(r)
    used = {r["text_id"] for r in out.items} | {r["text_id"] for r in out.queries} | {r["text_id"] for r in out.parallel}
    for r in out.sts:
        used |= {r["text_id_a"], r["text_id_b"]}
    for r in out.mc:
        used |= {r["question_id"], *r["choice_ids"]}
    out.texts = [t for t in ds.texts if t["text_id"] in used]
    return out


def split(ds: Dataset, params: Params) -> None:
    s = params.build_dataset.split
    fractions = (s.train, s.dev, s.test)
    text_split: dict[str, str] = {}
    for table, key in _UNITS.items():
        rows = getattr(ds, table)
        for lang in sorted({r["lang"] for r in rows}):
            todo = [r for r in rows if r["lang"] == lang and r["split"] is None]
            assigned = assign_splits((r[key] for r in todo), fractions, params.shared.seed)
            for r in todo:
                r["split"] = assigned[r[key]]
        for r in rows:
            for tid in _text_ids(table, r):
                text_split[tid] = r["split"]
    for t in ds.texts:
        t["split"] = text_split[t["text_id"]]


def _text_ids(table: str, r: dict) -> list[str]:
    if table == "sts":
        return [r["text_id_a"], r["text_id_b"]]
    if table == "mc":
        return [r["question_id"], *r["choice_ids"]]
    return [r["text_id"]]


def report(ds: Dataset) -> dict:
    counts: dict = {}
    for table in _UNITS:
        for r in getattr(ds, table):
            lang_c = counts.setdefault(r["lang"], {})
            task_c = lang_c.setdefault(table, {"train": 0, "dev": 0, "test": 0})
            task_c[r["split"]] += 1
    with_ref = sum(1 for t in ds.texts if t["en_ref"])
    return {
        "n_texts": len(ds.texts),
        "n_texts_with_reference": with_ref,
        "n_qrels": len(ds.qrels),
        "n_rejects": len(ds.rejects),
        "counts": counts,
    }


def run(params: Params, root: Path) -> dict:
    ds = collect(params, root)
    if params.build_dataset.max_per_language is not None:
        ds = cap(ds, params.build_dataset.max_per_language)
    split(ds, params)
    frames = ds.frames()
    # Every table lands in a new folder that replaces data/prepared only once all are written, and
    # the count report is written last inside it: a failure part-way publishes nothing.
    with publish_dir(root / params.shared.paths.prepared) as out:
        for name in TABLES:
            write_parquet(out / f"{name}.parquet", frames[name] if name in frames else frame(name, []))
        summary = report(ds)
        write_json(root / params.shared.paths.metrics / "dataset.json", summary)
    return summary
