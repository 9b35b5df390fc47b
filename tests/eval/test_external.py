from __future__ import annotations

import numpy as np

from lira.config import SourceParams
from lira.eval.external import evaluate_external


def fake_embed(texts, lang, kind, english):
    """Bag-of-characters: a text and its 'translation' share their digits, so they match."""
    out = np.zeros((len(texts), 16))
    for i, t in enumerate(texts):
        for c in t:
            if c.isdigit():
                out[i, int(c)] += 1.0
    return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-9, None)


def test_parallel_tsv_bitext_both_directions(tmp_path):
    (tmp_path / "p.tsv").write_text("text\ten\nsố 1\tnumber 1\nsố 2\tnumber 2\nsố 3\tnumber 3\n", encoding="utf-8")
    res = evaluate_external(SourceParams(kind="parallel_tsv", path="p.tsv", language="vi"), tmp_path, {"toy": fake_embed})
    assert res["n"] == 3 and res["systems"]["toy"] == {"src2tgt": 1.0, "tgt2src": 1.0}


def test_beir_folder_is_scored_with_ranx(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "a 1"}\n{"_id": "d2", "text": "b 2"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "1?"}\n{"_id": "q2", "text": "2?"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td1\t1\n")
    res = evaluate_external(SourceParams(kind="beir", path=".", language="vi"), tmp_path, {"toy": fake_embed})
    # q1 finds d1 first (nDCG 1); q2 finds d2 first, its relevant d1 second (nDCG 1/log2(3)).
    assert np.isclose(res["systems"]["toy"]["ndcg@10"], (1 + 1 / np.log2(3)) / 2)
