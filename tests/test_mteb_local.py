"""The MTEB wrapper under the real mteb: ``mteb.evaluate`` on local tasks (bench/mteb_local.py's), a
plain encoder and a LiRA model, the language from mteb's subset. Skips when mteb is not importable:
it is not one of lira's dependencies (README: install it into its own environment)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

mteb = pytest.importorskip("mteb", reason="mteb is not installed (optional: its own venv, see README)")

sys.path.insert(0, str(Path(__file__).parent / "tracking"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from lira_testkit import build_lira_folder

from lira.export import MTEBEncoder
from lira.model import LiraModel

M = importlib.import_module("mteb_local")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    prepared = M.prepare(tmp_path_factory.mktemp("mteb-data"), Path(M.C.ROOT) / "params.yaml")
    return M.local_data(prepared, ["vi", "th"])


def _distinct_texts_data() -> dict:
    """Local task data the tiny test BERT embeds without ties (it knows only conftest's sentences;
    the sample's Thai would be all [UNK], and tied scores rank by each tool's own tie rule)."""
    from conftest import SENTENCES

    docs = [f"{a} {b}" for a in SENTENCES for b in SENTENCES if a != b]
    out = {}
    for lang, start in (("vi", 0), ("th", 45)):
        corpus = [{"id": f"{lang}-d{i}", "text": t} for i, t in enumerate(docs[start:start + 45])]
        queries = [{"id": f"{lang}-q{i}", "text": SENTENCES[i]} for i in range(len(SENTENCES))]
        qrels = {q["id"]: {d["id"]: 1 for d in corpus if d["text"].startswith(q["text"])} for q in queries}
        qrels = {k: v for k, v in qrels.items() if v}
        queries = [q for q in queries if q["id"] in qrels]
        sts = {"sentence1": SENTENCES[:8], "sentence2": SENTENCES[1:9], "score": [float(i % 6) for i in range(8)]}
        out[lang] = {"corpus": corpus, "queries": queries, "qrels": qrels, "sts": sts}
    return out


def test_mteb_scores_a_plain_encoder_as_lira_does(tmp_path, tiny_bert_dir):
    data = _distinct_texts_data()
    r = M.evaluate_model(f"hf:{tiny_bert_dir}", data, tmp_path / "none.yaml")
    assert set(r["per_language"]) == {"vi", "th"}
    assert r["max_abs_diff_mteb_vs_lira_metrics"] <= M.TOL
    assert 0.0 < r["mean"]["mteb_ndcg_at_10"] <= 1.0  # a real score, not an empty run
    assert r["mteb_model_name"].startswith("lira/hf-")


def test_mteb_takes_a_lira_models_language_from_the_subset(tmp_path, tiny_bert_dir, data):
    folder = build_lira_folder(tmp_path / "full", tiny_bert_dir, languages=("vi", "th"))
    rec = M.Recording(MTEBEncoder(str(folder), params_path=tmp_path / "none.yaml"))
    mteb.evaluate(rec, M.make_tasks(data), cache=None, overwrite_strategy="always", show_progress_bar=False)
    m = LiraModel.load(folder, tmp_path / "cache")
    for lang in ("vi", "th"):
        got = rec.seen[(lang, "query")]
        texts = [q["text"] for q in data[lang]["queries"]]
        np.testing.assert_allclose(np.stack([got[t] for t in texts]), m.embed(texts, lang, kind="query"), atol=1e-5)
    other = m.embed(texts, "vi", kind="query")  # the language matters: th's vectors are not vi's
    assert not np.allclose(np.stack([rec.seen[("th", "query")][t] for t in texts]), other, atol=1e-4)
