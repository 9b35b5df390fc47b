"""lira's retrieval evaluation vs calling ranx directly: same values, and what lira's wrapper costs.

On one run of Q queries x 100 items (random continuous scores, so no ties; 1-3 relevant items per
query, graded 1-2):

* lira: ``lira.eval.metrics.retrieval_metrics(run, qrels, metrics)`` (numpy over the whole
  [queries, depth] matrix, each list ordered by an explicit tie rule - score desc, item id asc);
* ranx: ``ranx.evaluate(Qrels(qrels), Run(run), metrics, return_mean=False)``, the same run dict;
* lira's previous path, kept as the tests' reference: pre-rank each query by that tie rule, then
  ranx with ``make_comparable=True`` (``lira.eval.metrics._retrieval_metrics_ranx``).

Asserts identical per-query values (max |diff| == 0) and reports the time ratio lira / ranx
(median of repeats, interleaved, after a numba warm-up). ``scores_to_run`` (dense [Q, N] scores ->
run dict) is timed too.
A second run with heavy ties shows why lira re-ranks: ranx's order among tied scores follows dict
insertion order, lira's does not.

Usage: ``.venv/bin/python bench/metrics_vs_ranx.py [--quick]`` -> bench/results/metrics_vs_ranx.json
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

C.set_threads(2)

import numpy as np

METRICS = ("ndcg@10", "recall@10", "mrr@10", "map@100")


def make_case(n_queries: int, n_items: int, seed: int = 0, decimals: int | None = None):
    """Dense scores [Q, N], query/item ids and qrels (1-3 relevant items per query, relevance 1-2)."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_queries, n_items))
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    qids = [f"q{i:06d}" for i in range(n_queries)]
    iids = [f"d{j:04d}" for j in range(n_items)]
    qrels = {}
    for i, q in enumerate(qids):
        rel = rng.choice(n_items, size=int(rng.integers(1, 4)), replace=False)
        qrels[q] = {iids[j]: int(rng.integers(1, 3)) for j in rel}
    return scores, qids, iids, qrels


def ranx_direct(run: dict, qrels: dict, metrics: tuple[str, ...], make_comparable: bool = False) -> dict[str, np.ndarray]:
    """ranx as a user would call it; per-query values read by id, aligned to sorted(qrels)."""
    from numba.core.errors import NumbaTypeSafetyWarning
    from ranx import Qrels, Run, evaluate

    r = Run(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        evaluate(Qrels(qrels), r, list(metrics), return_mean=False, make_comparable=make_comparable)
    qids = sorted(qrels)
    return {m: np.array([float(r.scores[m][q]) for q in qids]) for m in metrics}


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(max(np.max(np.abs(a[m] - b[m])) for m in a))


def timeit(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def reversed_run(run: dict) -> dict:
    """Same scores, each query's items inserted in reverse order (changes nothing but dict order)."""
    return {q: dict(reversed(list(res.items()))) for q, res in run.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2k queries, 3 repeats")
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    nq = args.queries or (2000 if args.quick else 10000)
    repeats = args.repeats or (3 if args.quick else 7)

    from lira.eval.metrics import _rank_scores, _retrieval_metrics_ranx, retrieval_metrics, scores_to_run

    scores, qids, iids, qrels = make_case(nq, args.items)
    print(f"metrics vs ranx: {nq} queries x {args.items} items, metrics {', '.join(METRICS)}; load {C.loadavg()}")
    # Warm-up: numba compiles ranx's kernels on first use (seconds); neither side should pay for it.
    small = {q: qrels[q] for q in qids[:50]}
    warm_run = scores_to_run(qids[:50], iids, scores[:50], top_k=None)
    retrieval_metrics(warm_run, small, METRICS)
    ranx_direct(warm_run, small, METRICS)

    t_conv = timeit(lambda: scores_to_run(qids, iids, scores, top_k=100), max(1, repeats // 2))
    run = scores_to_run(qids, iids, scores, top_k=100)
    ours = retrieval_metrics(run, qrels, METRICS)
    theirs = ranx_direct(run, qrels, METRICS)
    diff = max(max_abs_diff(ours, theirs), max_abs_diff(ours, _retrieval_metrics_ranx(run, qrels, METRICS)))
    assert diff == 0.0, f"lira and ranx disagree: max |diff| = {diff}"

    def measure() -> dict[str, Any]:
        # Interleaved, so drifting machine load hits both sides alike.
        t_lira, t_ranx, t_rank, t_norm, t_comp, t_old = [], [], [], [], [], []
        for _ in range(repeats):
            t_lira += timeit(lambda: retrieval_metrics(run, qrels, METRICS), 1)
            t_ranx += timeit(lambda: ranx_direct(run, qrels, METRICS), 1)
            t_old += timeit(lambda: _retrieval_metrics_ranx(run, qrels, METRICS), 1)
            # The previous path's extra steps, one at a time: the tie-breaking pre-ranking, the
            # id/type normalisation of qrels, and ranx's make_comparable.
            t_rank += timeit(lambda: {q: _rank_scores(r) for q, r in run.items()}, 1)
            t_norm += timeit(lambda: {str(q): {str(d): int(r) for d, r in rs.items()} for q, rs in qrels.items()}, 1)
            t_comp += timeit(lambda: ranx_direct(run, qrels, METRICS, make_comparable=True), 1)
        return {"lira_s": C.summary(t_lira), "ranx_s": C.summary(t_ranx), "lira_via_ranx_s": C.summary(t_old),
                "rank_scores_s": C.summary(t_rank),
                "qrels_normalise_s": C.summary(t_norm), "ranx_make_comparable_s": C.summary(t_comp)}

    timing, meta = C.measured(measure, retries=0 if args.quick else 1)
    ratio = timing["lira_s"]["median"] / timing["ranx_s"]["median"]
    old_ratio = timing["lira_via_ranx_s"]["median"] / timing["ranx_s"]["median"]

    # Ties: one decimal -> ~40 distinct values per 100 items.
    t_scores, _, _, _ = make_case(nq, args.items, decimals=1)
    t_run = scores_to_run(qids, iids, t_scores, top_k=100)
    tie_ours = retrieval_metrics(t_run, qrels, METRICS)
    tie_ours_rev = retrieval_metrics(reversed_run(t_run), qrels, METRICS)
    tie_ranx = ranx_direct(t_run, qrels, METRICS)
    tie_ranx_rev = ranx_direct(reversed_run(t_run), qrels, METRICS)
    n_diff = int(np.sum(np.abs(tie_ranx["ndcg@10"] - tie_ranx_rev["ndcg@10"]) > 0))
    ties = {
        "lira_order_invariant_max_abs_diff": max_abs_diff(tie_ours, tie_ours_rev),
        "ranx_order_dependence_max_abs_diff": max_abs_diff(tie_ranx, tie_ranx_rev),
        "ranx_queries_whose_ndcg10_changes_with_insertion_order": n_diff,
        "lira_vs_ranx_max_abs_diff": max_abs_diff(tie_ours, tie_ranx),
        "mean_ndcg10": {"lira": float(tie_ours["ndcg@10"].mean()), "ranx": float(tie_ranx["ndcg@10"].mean()),
                        "ranx_reversed_insertion": float(tie_ranx_rev["ndcg@10"].mean())},
    }
    out = {
        "quick": args.quick, "queries": nq, "items_per_query": args.items, "metrics": list(METRICS),
        "repeats": repeats, "no_ties": {"max_abs_diff": diff, "identical": diff == 0.0},
        "timing": timing, **meta, "ratio_lira_over_ranx": ratio, "ratio_lira_via_ranx_over_ranx": old_ratio,
        "scores_to_run_s": C.summary(t_conv), "target_ratio": 1.0, "met": ratio <= 1.0, "ties": ties,
        "mean_values": {m: float(ours[m].mean()) for m in METRICS},
    }
    print(f"  identical values: max |diff| = {diff} over {nq} queries x {len(METRICS)} metrics")
    print(f"  lira {C.fmt_s(timing['lira_s']['median'])} vs ranx {C.fmt_s(timing['ranx_s']['median'])}: "
          f"x{ratio:.2f} (target <= 1.0); the previous path (pre-rank + ranx) {C.fmt_s(timing['lira_via_ranx_s']['median'])}"
          f" = x{old_ratio:.2f}; scores_to_run {C.fmt_s(out['scores_to_run_s']['median'])}")
    print(f"  the previous path's extra work: pre-ranking {C.fmt_s(timing['rank_scores_s']['median'])}, qrels normalisation "
          f"{C.fmt_s(timing['qrels_normalise_s']['median'])}, ranx with make_comparable=True "
          f"{C.fmt_s(timing['ranx_make_comparable_s']['median'])} (vs {C.fmt_s(timing['ranx_s']['median'])} without)")
    print(f"  ties: ranx nDCG@10 changes with insertion order on {n_diff}/{nq} queries "
          f"(max |diff| {ties['ranx_order_dependence_max_abs_diff']:.3f}); lira's does not "
          f"(max |diff| {ties['lira_order_invariant_max_abs_diff']})")
    path = C.write_result("metrics_vs_ranx", out)
    print(f"  -> {path.relative_to(C.ROOT)}")
    return out


if __name__ == "__main__":
    main()
