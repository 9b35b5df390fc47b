"""Task metrics: retrieval (through ranx), STS correlations (through scipy), multiple-choice and
bitext accuracy. Pure functions: arrays and dicts in, numbers and per-item arrays out.

Per-item arrays (one value per query / pair / question) are the primary output, because the paired
bootstrap in :mod:`lira.eval.bootstrap` resamples items; the means are one call away
(:func:`mean_metrics`).

nDCG convention. ranx's ``"ndcg@k"`` is Jarvelin & Kekalainen's nDCG with the *linear* gain,
``DCG@k = sum_{i<=k} rel_i / log2(i + 1)``; ranx's ``"ndcg_burges@k"`` uses the *exponential* gain
``(2^rel_i - 1) / log2(i + 1)`` (the gain of the soft-nDCG loss in :mod:`lira.losses.soft_ndcg`).
The two coincide for binary relevance, which is what every retrieval set in this project has; with
graded qrels pass ``"ndcg_burges@10"`` to compare against the loss. In both, IDCG is computed from
the qrels, and a query whose qrels hold no relevant item (rel >= 1) scores 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "bitext_accuracy",
    "bitext_hits",
    "mc_accuracy",
    "mean_metrics",
    "retrieval_metrics",
    "scores_to_run",
    "sts_metrics",
]

DEFAULT_RETRIEVAL_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "mrr@10")


# --------------------------------------------------------------------------- retrieval
def scores_to_run(
    query_ids: Sequence[str],
    item_ids: Sequence[str],
    scores: np.ndarray,
    top_k: int | None = 100,
    candidate_mask: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Turn a dense score matrix into a ranx-style run ``{query_id: {item_id: score}}``.

    Args:
        query_ids: ``Q`` query ids, row order of ``scores``.
        item_ids: ``N`` item ids, column order of ``scores``.
        scores: ``[Q, N]`` similarity scores (higher is better).
        top_k: keep each query's ``top_k`` best candidates (``None``: keep all candidates).
        candidate_mask: optional ``[Q, N]`` bool; ``False`` removes an item from a query's
            candidates. This is how in-language retrieval is expressed: a query only competes
            against items of its own language.

    Non-finite scores (NaN, +-inf) are treated as masked out, since ``-inf`` is the usual way to
    mask. Ties at the ``top_k`` cut are broken by item id (ascending), the same rule
    :func:`retrieval_metrics` applies to ties inside the list, so the cut never depends on column
    order. A query with no candidate gets an empty dict (it then scores 0, it is not dropped).
    """
    scores = np.asarray(scores, dtype=np.float64)
    q_ids, i_ids = [str(q) for q in query_ids], [str(i) for i in item_ids]
    if scores.shape != (len(q_ids), len(i_ids)):
        raise ValueError(f"scores has shape {scores.shape}, expected ({len(q_ids)}, {len(i_ids)})")
    valid = np.isfinite(scores)
    if candidate_mask is not None:
        candidate_mask = np.asarray(candidate_mask, dtype=bool)
        if candidate_mask.shape != scores.shape:
            raise ValueError(f"candidate_mask has shape {candidate_mask.shape}, expected {scores.shape}")
        valid &= candidate_mask
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")

    # Columns in item-id order once; a stable sort of -score over them then breaks ties by id.
    by_id = np.argsort(np.array(i_ids, dtype=object), kind="stable")
    run: dict[str, dict[str, float]] = {}
    for q, qid in enumerate(q_ids):
        cols = by_id[valid[q, by_id]]
        order = cols[np.argsort(-scores[q, cols], kind="stable")]
        if top_k is not None:
            order = order[:top_k]
        run[qid] = {i_ids[j]: float(scores[q, j]) for j in order}
    return run


def _rank_scores(results: Mapping[str, float]) -> dict[str, float]:
    """Replace scores by ``n, n-1, ..., 1`` in (score desc, id asc) order.

    ranx sorts each query with numba's unstable quicksort, so tied scores come out in an order that
    depends on dict insertion order. Re-scoring by rank keeps the ranking and makes the tie rule
    explicit and label-independent (id ascending; trec_eval uses docno descending): a model that
    scores everything equal can no longer look good because its positives were inserted first.
    """
    ordered = sorted(results.items(), key=lambda kv: (-float(kv[1]), str(kv[0])))
    n = len(ordered)
    return {str(doc): float(n - r) for r, (doc, _) in enumerate(ordered)}


def retrieval_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str] = DEFAULT_RETRIEVAL_METRICS,
) -> dict[str, np.ndarray]:
    """Per-query ranking metrics computed by ranx.

    Args:
        run: ``{query_id: {item_id: score}}`` (e.g. from :func:`scores_to_run`).
        qrels: ``{query_id: {item_id: relevance}}``; relevance >= 1 counts as relevant.
        metrics: ranx metric names, e.g. ``"ndcg@10"``, ``"ndcg_burges@10"``, ``"recall@10"``,
            ``"mrr@10"``, ``"map@100"`` (see the module docstring for the two nDCG gains).

    Returns:
        ``{metric: array}``, each array of length ``len(qrels)`` aligned to ``sorted(qrels)``.
        A query of the qrels that the run misses (or ranks nothing for) scores 0 - it is never
        dropped, so a system cannot gain by abstaining. Run queries absent from the qrels are
        ignored. A qrels query with no relevant item also scores 0 (trec_eval would drop it;
        filter such queries upstream if that is what you want).
    """
    # ranx pulls numba, pandas and matplotlib (seconds to import): only pay for it when used.
    from numba.core.errors import NumbaTypeSafetyWarning
    from ranx import Qrels, Run, evaluate

    metrics = list(metrics)
    qids = sorted(str(q) for q in qrels)
    if len(qids) == 0:
        raise ValueError("qrels is empty")
    out_empty = {m: np.zeros(len(qids), dtype=np.float64) for m in metrics}

    qrels_dict = {str(q): {str(d): int(r) for d, r in rels.items()} for q, rels in qrels.items()}
    qset = set(qids)
    # Empty per-query results are left out here and put back as empty lists by make_comparable;
    # ranx cannot type an empty inner dict when it builds the Run.
    run_dict = {str(q): _rank_scores(res) for q, res in run.items() if str(q) in qset and len(res) > 0}
    if not run_dict:  # ranx cannot build an all-empty Run; every query scores 0 by definition.
        return out_empty

    ranx_qrels, ranx_run = Qrels(qrels_dict), Run(run_dict)
    with warnings.catch_warnings():
        # ranx casts relevance uint64 -> int64 inside its numba kernels; harmless for 0..2^63.
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        evaluate(ranx_qrels, ranx_run, metrics, return_mean=False, make_comparable=True)
    # evaluate() stores per-query scores in run.scores[metric][query_id]: aligning by id rather than
    # by the position of its returned array keeps us independent of ranx's internal key order.
    return {m: np.array([float(ranx_run.scores[m][q]) for q in qids], dtype=np.float64) for m in metrics}


def mean_metrics(per_query: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Mean of each per-item metric array: ``{metric: mean}`` (plain floats, ready for logging)."""
    return {m: float(np.mean(v)) for m, v in per_query.items()}


# --------------------------------------------------------------------------- STS
def sts_metrics(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Pearson's r and Spearman's rho of predicted vs. gold similarity scores (scipy.stats).

    Both are scale-free, so cosine predictions need no rescaling to the gold 0..5 range. A
    constant prediction has no defined correlation: scipy warns and the value is NaN.
    """
    pred = np.asarray(pred, dtype=np.float64).ravel()
    gold = np.asarray(gold, dtype=np.float64).ravel()
    if pred.shape != gold.shape:
        raise ValueError(f"pred {pred.shape} and gold {gold.shape} differ")
    return {
        "pearson": float(stats.pearsonr(pred, gold).statistic),
        "spearman": float(stats.spearmanr(pred, gold).statistic),
    }


# --------------------------------------------------------------------------- multiple choice
def mc_accuracy(logits: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Per-item correctness of multiple-choice predictions.

    ``correct_b = 1[logits[b, answers[b]] > max_{c != answers[b]} logits[b, c]]``

    Args:
        logits: ``[B, C]`` choice scores; absent choices (items with fewer than ``C`` options)
            are ``-inf``.
        answers: ``[B]`` index of the gold choice.

    Returns:
        ``[B]`` float array of 0/1. A tie at the top counts as wrong: with ``argmax`` a degenerate
        model that scores every choice equally would be credited with every item whose answer is
        choice 0. An answer that points at a masked (-inf) choice is a data error and raises.
    """
    logits = np.asarray(logits, dtype=np.float64)
    answers = np.asarray(answers).astype(np.int64).ravel()
    if logits.ndim != 2 or logits.shape[0] != answers.shape[0]:
        raise ValueError(f"logits {logits.shape} vs answers {answers.shape}")
    if np.any((answers < 0) | (answers >= logits.shape[1])):
        raise ValueError("answer index out of range")
    rows = np.arange(len(answers))
    gold = logits[rows, answers]
    if np.any(np.isneginf(gold)):
        raise ValueError("an answer points at a masked (-inf) choice")
    others = logits.copy()
    others[rows, answers] = -np.inf
    return (gold > others.max(axis=1)).astype(np.float64)


# --------------------------------------------------------------------------- bitext mining
def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)


def bitext_hits(src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair bitext-mining hits: is row ``i``'s cosine nearest neighbour on the other side ``i``?

    ``hit_s2t_i = 1[argmax_j cos(src_i, tgt_j) = i]``, ``hit_t2s_i = 1[argmax_j cos(tgt_i, src_j) = i]``.
    Ties go to the lowest index (``argmax``), as in MTEB's bitext mining, so duplicated sentences
    count as found when the first copy is the pair. Builds the full ``[N, N]`` similarity matrix.
    """
    s, t = _unit_rows(src), _unit_rows(tgt)
    if s.shape != t.shape or s.ndim != 2:
        raise ValueError(f"src {s.shape} and tgt {t.shape} must be equal [N, d]")
    sim = s @ t.T
    idx = np.arange(sim.shape[0])
    hits_s2t = (sim.argmax(axis=1) == idx).astype(np.float64)
    hits_t2s = (sim.argmax(axis=0) == idx).astype(np.float64)
    return hits_s2t, hits_t2s


def bitext_accuracy(src: np.ndarray, tgt: np.ndarray) -> dict[str, float]:
    """Bitext-mining accuracy in both directions: means of :func:`bitext_hits` (chance: ``1/N``)."""
    hits_s2t, hits_t2s = bitext_hits(src, tgt)
    return {"src2tgt": float(hits_s2t.mean()), "tgt2src": float(hits_t2s.mean())}
