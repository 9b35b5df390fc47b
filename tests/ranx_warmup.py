"""Compile ranx's numba kernels into numba's on-disk cache, in a process of its own.

ranx's kernels are ``@njit(cache=True)``: the first process that calls one compiles it and every
later process loads it from the cache. numba specialises them on the item ids' numpy dtype
("<U{longest id}"), so the tests give every item id they hand to ranx 4 characters, and so does this.
tests/conftest.py starts this script when the cache is cold (a fresh venv), so the compile runs on
the second core while the session's first tests run on the first; a test that reaches ranx before
it is done compiles what it needs itself. Nothing here is asserted: the comparisons are the tests'.

    python tests/ranx_warmup.py
"""

from __future__ import annotations

import warnings

# Every metric a test or bench/metrics_vs_ranx.py hands to ranx (tests/eval/test_metrics.py's
# ALL_NUMPY_METRICS and the ones that only ranx computes).
METRICS = ("ndcg@10", "ndcg_burges@10", "recall@10", "mrr@10", "map@100", "precision@10", "hits@5",
           "hit_rate@3", "ndcg", "recall", "map", "mrr", "precision", "ndcg@10-l2", "recall@5-l2",
           "r-precision")


def main() -> None:
    from numba.core.errors import NumbaTypeSafetyWarning
    from ranx import Qrels, Run, evaluate

    # numba compiles per item-id width: 4 characters, the width every test's item ids have
    qrels = {"q1": {"d001": 1, "d002": 2}, "q2": {"d003": 1}, "q3": {"d009": 3}}
    run = {"q1": {"d001": 0.9, "d003": 0.5, "d002": 0.1}, "q2": {"d003": 0.7, "d001": 0.2}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        # the call shapes the tests use: per query (compared by id) and the mean
        evaluate(Qrels(qrels), Run(run), list(METRICS), return_mean=False, make_comparable=True)
        evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@10"], make_comparable=True)
        both = {q: qrels[q] for q in run}
        evaluate(Qrels(both), Run(run), "ndcg_burges@10", return_mean=False)


if __name__ == "__main__":
    main()
