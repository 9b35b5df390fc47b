"""bench/recipe.py's pure helpers: held-out discipline of its data, folds, relevance, selection."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))


def test_sample_train_pairs_never_hold_dev_or_test_texts():
    R = importlib.import_module("recipe")
    s = R.load_sample(["th", "vi"])
    train_ids = {t["text_id"] for t in s["texts"].values() if t["split"] == "train"}
    by_pair = {(t["text"], t["en_ref"]) for t in s["texts"].values() if t["text_id"] in train_ids}
    assert s["train"] and s["dev_queries"]
    assert all((a, e) in by_pair for a, _, e, _ in s["train"])  # every pair comes from a train-split text
    assert all(q["split"] == "dev" for q in s["dev_queries"])
    assert {k for _, k, _, _ in s["train"]} <= {"query", "passage"}


def test_folds_are_disjoint_and_deterministic():
    R = importlib.import_module("recipe")
    ids = [str(i) for i in range(500)]
    folds = [R._fold(i, 5) for i in ids]
    assert folds == [R._fold(i, 5) for i in ids]
    assert set(folds) == set(range(5)) and min(np.bincount(folds)) > 50


def test_topic_rels_and_selection_score():
    R = importlib.import_module("recipe")
    assert R.topic_rels(["a", "b"], ["b", "a", "a"]) == [{1: 1, 2: 1}, {0: 1}]
    p = {"dev_inlang_ndcg10": 0.9, "dev_cross_ndcg10": 0.7, "flores_inlang_ndcg10": 0.5, "flores_cross_ndcg10": 0.3,
         "dev_en2en_ndcg10": 123.0}
    assert R.selection_score(p) == np.mean([0.9, 0.7, 0.5, 0.3])  # never anything but the four tuning signals
    q = np.eye(3)
    nd = R.ndcg_per_query(q, q, [{0: 1}, {1: 1}, {0: 1}])
    assert np.allclose(nd, [1.0, 1.0, 1 / np.log2(3)])
