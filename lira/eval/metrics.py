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

import re
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
    Used by the ranx path (:func:`_retrieval_metrics_ranx`), which is the reference in tests.
    """
    ordered = sorted(results.items(), key=lambda kv: (-float(kv[1]), str(kv[0])))
    n = len(ordered)
    return {str(doc): float(n - r) for r, (doc, _) in enumerate(ordered)}


# Metrics computed here in numpy, with ranx's definitions (ranx.metrics.*) term for term; any other
# ranx metric name goes through ranx itself.
_NUMPY_METRICS = frozenset({"ndcg", "ndcg_burges", "recall", "precision", "mrr", "map", "hits", "hit_rate"})


def _parse_metric(name: str) -> tuple[str, int, int] | None:
    """ranx's metric syntax ``name[@k][-lN]`` -> (name, k, relevance level); None if not ours."""
    m = re.fullmatch(r"([a-z_]+)(?:@(\d+))?(?:-l(\d+))?", name)
    if m is None or m.group(1) not in _NUMPY_METRICS:
        return None
    return m.group(1), int(m.group(2) or 0), int(m.group(3) or 1)


def retrieval_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str] = DEFAULT_RETRIEVAL_METRICS,
) -> dict[str, np.ndarray]:
    """Per-query ranking metrics, with ranx's definitions (and its values: tested against ranx).

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

    Each query's list is ordered by (score desc, item id asc) - the tie rule of
    :func:`_rank_scores` - and nDCG, recall, precision, MRR, MAP, hits and hit rate are computed
    here in numpy over the whole [queries, depth] matrix at once, summing in ranx's order so the
    floats are identical; other ranx metric names (``r-precision``, ``bpref``, ...) go through ranx.
    A NaN score has no rank and raises.
    """
    metrics = list(metrics)
    qids = sorted(str(q) for q in qrels)
    if len(qids) == 0:
        raise ValueError("qrels is empty")
    parsed = {m: _parse_metric(m) for m in metrics}
    out: dict[str, np.ndarray] = {}
    others = [m for m, p in parsed.items() if p is None]
    if others:
        out.update(_retrieval_metrics_ranx(run, qrels, others))
    ours = {m: p for m, p in parsed.items() if p is not None}
    if ours:
        out.update(_numpy_metrics(run, qrels, qids, ours))
    return {m: out[m] for m in metrics}


def _numpy_metrics(run, qrels, qids: list[str], parsed: dict[str, tuple[str, int, int]]) -> dict[str, np.ndarray]:
    nq = len(qids)
    runs = {str(q): res for q, res in run.items()}
    lists = [runs.get(q) or {} for q in qids]
    lengths = np.fromiter((len(r) for r in lists), dtype=np.int64, count=nq)
    keys: list = []
    vals: list = []
    for r in lists:
        keys.extend(r)
        vals.extend(r.values())
    # Item ids -> their rank in id order (ids compared as strings, like _rank_scores): the tie rule.
    uniq = {k: None for k in keys}
    by_str = sorted(uniq, key=str)
    str_rank: dict[str, int] = {}
    for k in by_str:
        str_rank.setdefault(str(k), len(str_rank))
    id_of = {k: str_rank[str(k)] for k in by_str}
    width = int(lengths.max()) if nq and len(keys) else 0
    ids = np.full((nq, max(width, 1)), -1, dtype=np.int64)
    neg = np.full((nq, max(width, 1)), np.inf)
    if keys:
        rows = np.repeat(np.arange(nq), lengths)
        cols = np.arange(len(keys)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        flat_ids = np.fromiter(map(id_of.__getitem__, keys), dtype=np.int64, count=len(keys))
        flat_neg = -np.asarray(vals, dtype=np.float64)
        if np.isnan(flat_neg).any():
            q = qids[int(rows[np.isnan(flat_neg)][0])]
            raise ValueError(f"run query {q!r}: a NaN score cannot be ranked (mask it out instead)")
        ids[rows, cols] = flat_ids
        neg[rows, cols] = flat_neg
    # Padding sorts last: +inf of -score, and an id larger than every real one.
    pad_id = len(str_rank)
    ids_sortable = np.where(ids < 0, pad_id, ids)
    order = np.lexsort((ids_sortable, neg), axis=-1)
    ranked = np.take_along_axis(ids, order, axis=-1)  # [Q, W], -1 = padding

    # Judged items at or above each relevance level, matched to the ranked ids through one sorted
    # array of (query row, item id) keys (memory O(Q x W), whatever the number of judgements).
    by_q = {str(q): rels for q, rels in qrels.items()}
    j_rows, j_ids, j_vals = [], [], []
    for i, q in enumerate(qids):
        for d, v in by_q[q].items():
            j_rows.append(i)
            j_ids.append(str_rank.get(str(d), -1))
            j_vals.append(int(v))
    j_rows_a = np.asarray(j_rows, dtype=np.int64)
    j_ids_a = np.asarray(j_ids, dtype=np.int64)
    j_vals_a = np.asarray(j_vals, dtype=np.float64)
    stride = pad_id + 1
    results: dict[str, np.ndarray] = {}
    cache: dict[int, tuple] = {}
    for name, (metric, k, lvl) in parsed.items():
        if lvl not in cache:
            ok = j_vals_a >= lvl
            n_rel = np.bincount(j_rows_a[ok], minlength=nq)
            # Each query's judged values, sorted desc, zero-padded: the ideal ranking for IDCG.
            ideal = np.zeros((nq, max(int(n_rel.max(initial=0)), 1)))
            if ok.any():
                r, v = j_rows_a[ok], j_vals_a[ok]
                o = np.lexsort((-v, r))
                r, v = r[o], v[o]
                pos = np.arange(len(r)) - np.repeat(np.cumsum(n_rel) - n_rel, n_rel)
                ideal[r, pos] = v
            keep = ok & (j_ids_a >= 0)  # a judged item that no run lists can never be hit
            judged_keys = j_rows_a[keep] * stride + j_ids_a[keep]
            o = np.argsort(judged_keys, kind="stable")
            keys_sorted, vals_sorted = judged_keys[o], j_vals_a[keep][o]
            run_keys = np.arange(nq)[:, None] * stride + ranked
            at = np.clip(np.searchsorted(keys_sorted, run_keys), 0, max(len(keys_sorted) - 1, 0))
            if len(keys_sorted):
                hit = (keys_sorted[at] == run_keys) & (ranked >= 0)
                gain = np.where(hit, vals_sorted[at], 0.0)
            else:
                hit = np.zeros(ranked.shape, dtype=bool)
                gain = np.zeros(ranked.shape)
            cache[lvl] = (hit, gain, n_rel, ideal)
        hit, gain, n_rel, ideal = cache[lvl]
        results[name] = _one_metric(metric, k, hit, gain, n_rel, ideal, lengths)
    return results


def _seq_sum(x: np.ndarray) -> np.ndarray:
    """Row sums added left to right, as numba's np.sum does inside ranx (numpy sums pairwise)."""
    acc = np.zeros(x.shape[0], dtype=np.float64)
    for j in range(x.shape[1]):
        acc = acc + x[:, j]
    return acc


def _one_metric(metric: str, k: int, hit: np.ndarray, gain: np.ndarray, n_rel: np.ndarray, ideal: np.ndarray,
                lengths: np.ndarray) -> np.ndarray:
    """One ranx metric for every query. ``hit``/``gain``: [Q, W] over the ranked lists (padding
    never hits); ``n_rel`` [Q]: judged items at or above the relevance level; ``ideal`` [Q, R]:
    their relevances, sorted desc and zero-padded."""
    nq, width = hit.shape
    has_rel = n_rel > 0
    depth = width if k == 0 else min(k, width)  # positions past a query's own length never hit
    h = hit[:, :depth]
    if metric in ("ndcg", "ndcg_burges"):
        burges = metric == "ndcg_burges"
        disc = np.log2(np.arange(1, depth + 1) + 1)
        g = gain[:, :depth]
        dcg = _seq_sum(((2.0**g - 1.0) if burges else g) / disc)
        ideal_depth = ideal.shape[1] if k == 0 else min(k, ideal.shape[1])
        ideal = ideal[:, :ideal_depth]
        idisc = np.log2(np.arange(1, ideal_depth + 1) + 1)
        idcg = _seq_sum(((2.0**ideal - 1.0) if burges else ideal) / idisc)
        idcg = np.where(idcg == 0.0, 1.0, idcg)
        return np.where(has_rel, dcg / idcg, 0.0)
    hits = h.sum(1).astype(np.float64)
    if metric == "hits":
        return np.where(has_rel, hits, 0.0)
    if metric == "hit_rate":
        return np.where(has_rel & (hits > 0), 1.0, 0.0)
    if metric == "recall":
        return np.where(has_rel, hits / np.maximum(n_rel, 1), 0.0)
    if metric == "precision":
        denom = np.full(nq, float(k)) if k != 0 else lengths.astype(np.float64)
        return np.where(denom > 0, hits / np.maximum(denom, 1.0), 0.0)
    if metric == "mrr":
        first = np.argmax(h, axis=1)
        return np.where(has_rel & h.any(1), 1.0 / (first + 1), 0.0)
    if metric == "map":
        cum = np.cumsum(h, axis=1)
        prec = np.where(h, cum / np.arange(1, depth + 1), 0.0)
        return np.where(has_rel, _seq_sum(prec) / np.maximum(n_rel, 1), 0.0)
    raise AssertionError(metric)


def _retrieval_metrics_ranx(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str],
) -> dict[str, np.ndarray]:
    """:func:`retrieval_metrics` through ranx itself (pre-ranked with :func:`_rank_scores`): the
    path for metrics not computed in numpy, and the reference the numpy path is tested against."""
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
