"""The forgetting check's scoring: English -> English retrieval and STS vs frozen, within 1 point."""

from __future__ import annotations

import numpy as np
import torch

from lira.eval.scoring import forgetting_summary, retrieval_scores
from lira.train.lasr import LasrData


def tiny_ld() -> LasrData:
    """4 texts: 2 items (rows 0, 1), 2 test queries (rows 2, 3), one language; query j -> item j."""
    t = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    return LasrData(
        lr=torch.zeros(4, 1, 2), en=torch.zeros(4, 1, 2), has_en=torch.ones(4, dtype=torch.bool), lang=t([0, 0, 0, 0]),
        item_text=t([0, 1]), item_lang=t([0, 0]), query_text=t([2, 3]), query_lang=t([0, 0]),
        query_split=np.array(["test", "test"], dtype=object), qrels=[{0: 1}, {1: 1}],
        sts_a=t([0, 2, 0]), sts_b=t([1, 3, 3]), sts_score=torch.tensor([1.0, 2.0, 3.0]),
        sts_split=np.array(["test"] * 3, dtype=object),
        mc_q=t([]), mc_choices=torch.zeros(0, 1, dtype=torch.long), mc_answer=t([]), mc_split=np.array([], dtype=object),
    )


def test_text_ok_drops_the_queries_whose_row_has_nothing_to_embed():
    ld = tiny_ld()
    z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    assert len(retrieval_scores(z, ld, [10])["qids"]) == 2
    res = retrieval_scores(z, ld, [10], z[ld.item_text.numpy()], np.ones(2, bool), text_ok=np.array([1, 1, 1, 0], bool))
    assert len(res["qids"]) == 1 and res["per_query"]["ndcg@10"].tolist() == [1.0]


def _res(ndcg: list[float], pred: list[float]) -> dict:
    gold = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    return {"retrieval": {"per_query": {"ndcg@10": np.array(ndcg)}, "lang": np.zeros(len(ndcg), int),
                          "qids": [f"q{i}" for i in range(len(ndcg))]},
            "sts": {"pred": np.array(pred), "gold": gold, "lang": np.zeros(5, int)}}


def test_forgetting_summary_flags_a_drop_of_more_than_one_point():
    frozen = _res([1.0, 1.0, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5])
    same = forgetting_summary({"lira": frozen, "frozen": frozen}, ["th"], 200, 0.95, 0)
    assert same["within_tolerance"] and same["lira_minus_frozen_points"]["retrieval.ndcg@10"] == 0.0
    worse = forgetting_summary({"lira": _res([1.0, 0.9, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]), "frozen": frozen},
                               ["th"], 200, 0.95, 0)
    assert not worse["within_tolerance"]  # -2.5 points of nDCG@10
    assert abs(worse["lira_minus_frozen_points"]["retrieval.ndcg@10"] + 2.5) < 1e-9
    sts_worse = forgetting_summary({"lira": _res([1.0, 1.0, 0.5, 0.5], [0.1, 0.3, 0.2, 0.4, 0.5]), "frozen": frozen},
                                   ["th"], 200, 0.95, 0)
    assert not sts_worse["within_tolerance"] and sts_worse["lira_minus_frozen_points"]["sts.spearman"] < -1
    assert forgetting_summary({}, ["th"], 200, 0.95, 0).get("within_tolerance") is None
