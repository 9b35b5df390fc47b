import math

import numpy as np
import pytest
from scipy import stats

from lira.eval.metrics import (
    bitext_accuracy,
    bitext_hits,
    mc_accuracy,
    mean_metrics,
    retrieval_metrics,
    scores_to_run,
    sts_metrics,
)

L2 = math.log2

# q1: binary qrels, relevant items at ranks 2 and 3. q2: graded qrels (docA=2, docB=1) ranked docB,
# docA. q3: in the qrels, absent from the run. "zz" is in the run only and must be ignored.
# Every item id handed to ranx in the tests is 4 characters long: ranx types item ids as numpy
# "<U{longest id}" arrays, so numba compiles its kernels again for every new id length (~10 s each).
QRELS = {"q1": {"d001": 1, "d002": 1}, "q2": {"docA": 2, "docB": 1}, "q3": {"docX": 1}}
RUN = {
    "q1": {"d003": 0.9, "d001": 0.8, "d002": 0.7, "d004": 0.1},
    "q2": {"docB": 0.5, "docA": 0.4},
    "zz": {"d001": 1.0},
}


@pytest.fixture(scope="module")
def per_query():
    return retrieval_metrics(RUN, QRELS, ("ndcg@10", "ndcg_burges@10", "recall@10", "mrr@10", "recall@1"))


def test_retrieval_metrics_hand_checked(per_query):
    ndcg_q1 = (1 / L2(3) + 1 / L2(4)) / (1 + 1 / L2(3))
    ndcg_q2_linear = (1 + 2 / L2(3)) / (2 + 1 / L2(3))
    ndcg_q2_burges = (1 + 3 / L2(3)) / (3 + 1 / L2(3))
    np.testing.assert_allclose(per_query["ndcg@10"], [ndcg_q1, ndcg_q2_linear, 0.0])
    np.testing.assert_allclose(per_query["ndcg_burges@10"], [ndcg_q1, ndcg_q2_burges, 0.0])
    np.testing.assert_allclose(per_query["recall@10"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(per_query["recall@1"], [0.0, 0.5, 0.0])
    np.testing.assert_allclose(per_query["mrr@10"], [0.5, 1.0, 0.0])


def test_retrieval_mean_equals_ranx_mean(per_query):
    from ranx import Qrels, Run, evaluate

    ranx_mean = evaluate(Qrels(QRELS), Run(RUN), ["ndcg@10", "recall@10", "mrr@10"], make_comparable=True)
    ours = mean_metrics(per_query)
    for m, v in ranx_mean.items():
        assert ours[m] == pytest.approx(float(v))
    assert all(isinstance(v, float) for v in ours.values())


def test_missing_and_empty_queries_score_zero_not_dropped():
    qrels = {"b": {"d": 1}, "a": {"d": 1}, "c": {"d": 1}}
    out = retrieval_metrics({"a": {"d": 1.0}, "b": {}}, qrels, ("ndcg@10",))
    # aligned to sorted(qrels) = a, b, c; b ranks nothing, c is absent: both 0, none dropped.
    np.testing.assert_allclose(out["ndcg@10"], [1.0, 0.0, 0.0])
    everything_empty = retrieval_metrics({}, qrels, ("ndcg@10", "mrr@10"))
    assert everything_empty["ndcg@10"].shape == (3,) and not everything_empty["mrr@10"].any()


def test_alignment_to_sorted_qrels_with_awkward_ids():
    qrels = {"q10": {"d": 1}, "q2": {"d": 1}, "Q1": {"d": 1}, "ä": {"d": 1}, "b": {"d": 1}}
    run = {"q2": {"d": 1.0}, "ä": {"x": 2.0, "d": 1.0}}
    out = retrieval_metrics(run, qrels, ("mrr@10",))["mrr@10"]
    expected = {"Q1": 0, "b": 0, "q10": 0, "q2": 1.0, "ä": 0.5}
    np.testing.assert_allclose(out, [expected[q] for q in sorted(qrels)])


def test_ties_broken_by_item_id_not_insertion_order():
    qrels = {"q": {"b": 1}}
    for run in ({"q": {"b": 1.0, "a": 1.0}}, {"q": {"a": 1.0, "b": 1.0}}):
        assert retrieval_metrics(run, qrels, ("mrr@10",))["mrr@10"][0] == pytest.approx(0.5)


def test_scores_to_run_topk_and_candidate_mask():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    mask = np.array([[False, True, True, True], [True, True, False, False]])
    run = scores_to_run(["q0", "q1"], ["i0", "i1", "i2", "i3"], scores, top_k=2, candidate_mask=mask)
    # q0: i0 is the best score but outside its language; q1 only sees i0, i1.
    assert run == {"q0": {"i1": 0.8, "i2": 0.7}, "q1": {"i1": 0.2, "i0": 0.1}}
    qrels = {"q0": {"i0": 1}, "q1": {"i1": 1}}
    ndcg = retrieval_metrics(run, qrels, ("ndcg@10",))["ndcg@10"]
    np.testing.assert_allclose(ndcg, [0.0, 1.0])
    # without the mask, q0 would retrieve its (cross-language) positive first
    free = scores_to_run(["q0", "q1"], ["i0", "i1", "i2", "i3"], scores, top_k=None)
    assert list(free["q0"]) == ["i0", "i1", "i2", "i3"]


def test_scores_to_run_drops_nonfinite_and_keeps_empty_queries():
    scores = np.array([[-np.inf, np.nan], [1.0, 1.0]])
    run = scores_to_run(["q0", "q1"], ["z", "a"], scores, top_k=1)
    assert run["q0"] == {}
    assert run["q1"] == {"a": 1.0}  # tie at the cut -> lowest item id, not column order


def test_sts_matches_scipy():
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 50)
    pred = gold + rng.normal(0, 1.5, 50)
    out = sts_metrics(pred, gold)
    assert out["pearson"] == pytest.approx(stats.pearsonr(pred, gold)[0])
    assert out["spearman"] == pytest.approx(stats.spearmanr(pred, gold)[0])
    assert sts_metrics(np.exp(gold), gold)["spearman"] == pytest.approx(1.0)
    assert sts_metrics(np.exp(gold), gold)["pearson"] < 0.99


def test_mc_accuracy_masks_and_ties():
    ninf = -np.inf
    logits = np.array(
        [
            [0.1, 2.0, 0.3, ninf],  # answer 1: right
            [5.0, 0.0, ninf, ninf],  # answer 1: wrong
            [1.0, 1.0, 1.0, 1.0],  # tie at the top: wrong even though argmax == answer
            [ninf, 3.0, ninf, ninf],  # single valid choice
        ]
    )
    np.testing.assert_array_equal(mc_accuracy(logits, [1, 1, 0, 1]), [1.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError):
        mc_accuracy(logits, [3, 1, 0, 1])  # gold choice is masked


def test_bitext_identical_is_perfect_random_is_chance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 32))
    assert bitext_accuracy(x, 3.0 * x) == {"src2tgt": 1.0, "tgt2src": 1.0}  # cosine: scale-free
    acc = bitext_accuracy(x, rng.standard_normal((200, 32)))
    assert acc["src2tgt"] < 0.05 and acc["tgt2src"] < 0.05  # chance is 1/200
    # a permuted target loses exactly the moved rows
    y = x.copy()
    y[[0, 1]] = y[[1, 0]]
    s2t, t2s = bitext_hits(x, y)
    assert s2t[:2].sum() == 0 and s2t[2:].all() and t2s[:2].sum() == 0


# ----------------------------------------------------------- the numpy path vs ranx (the reference)
ALL_NUMPY_METRICS = ("ndcg@10", "ndcg_burges@10", "recall@10", "mrr@10", "map@100", "precision@10", "hits@5",
                     "hit_rate@3", "ndcg", "recall", "map", "mrr", "precision", "ndcg@10-l2", "recall@5-l2",
                     "precision@200", "ndcg@200")


def _random_case(rng):
    nq, ni = int(rng.integers(1, 40)), int(rng.integers(1, 25))
    scores = np.round(rng.standard_normal((nq, ni)), int(rng.integers(0, 3)))  # 0 decimals: many ties
    # random labels (the tie rule must not follow column order), all 4 characters (see RUN)
    qids, iids = [f"q{i}" for i in range(nq)], [f"d{k:03d}" for k in rng.choice(1000, size=ni, replace=False)]
    run = scores_to_run(qids, iids, scores, top_k=int(rng.integers(1, ni + 1)), candidate_mask=rng.random((nq, ni)) > 0.3)
    # random insertion order, some queries missing from the run
    run = {q: dict(sorted(r.items(), key=lambda kv: rng.random())) for q, r in run.items() if rng.random() > 0.1}
    qrels = {}
    for q in [*qids, "only_in_qrels"]:
        sel = rng.choice(ni, size=min(int(rng.integers(0, 5)), ni), replace=False)
        qrels[q] = {iids[j]: int(rng.integers(0, 4)) for j in sel}  # graded, some 0 (not relevant)
        if rng.random() < 0.2:
            qrels[q]["none"] = 2  # relevant, never retrieved (not an item id)
    return run, qrels


def test_numpy_metrics_identical_to_ranx_with_ties_grades_and_gaps():
    from lira.eval.metrics import _retrieval_metrics_ranx

    rng = np.random.default_rng(0)
    for _ in range(25):
        run, qrels = _random_case(rng)
        ours = retrieval_metrics(run, qrels, ALL_NUMPY_METRICS)
        ref = _retrieval_metrics_ranx(run, qrels, ALL_NUMPY_METRICS)
        for m in ALL_NUMPY_METRICS:
            np.testing.assert_array_equal(ours[m], ref[m], err_msg=m)  # bit-identical, not approx


def test_numpy_metrics_identical_to_plain_ranx_without_ties():
    from ranx import Qrels, Run, evaluate

    rng = np.random.default_rng(1)
    scores = rng.standard_normal((200, 50))
    qids, iids = [f"q{i:03d}" for i in range(200)], [f"d{j:03d}" for j in range(50)]
    run = scores_to_run(qids, iids, scores, top_k=50)
    qrels = {q: {iids[j]: int(rng.integers(1, 3)) for j in rng.choice(50, 3, replace=False)} for q in qids}
    metrics = ["ndcg@10", "ndcg_burges@10", "recall@10", "mrr@10", "map@100", "precision@5"]
    r = Run(run)
    evaluate(Qrels(qrels), r, metrics, return_mean=False)
    ours = retrieval_metrics(run, qrels, metrics)
    for m in metrics:
        np.testing.assert_array_equal(ours[m], [r.scores[m][q] for q in sorted(qrels)], err_msg=m)


def test_metrics_outside_the_numpy_set_go_through_ranx():
    out = retrieval_metrics(RUN, QRELS, ("r-precision", "ndcg@10"))
    assert list(out) == ["r-precision", "ndcg@10"]
    np.testing.assert_allclose(out["r-precision"], [0.5, 1.0, 0.0])  # q1: 1 of its 2 positives in the top 2


def test_nan_score_is_refused_with_the_query():
    with pytest.raises(ValueError, match="'q1'.*NaN"):
        retrieval_metrics({"q1": {"a": float("nan")}}, {"q1": {"a": 1}}, ("ndcg@10",))
