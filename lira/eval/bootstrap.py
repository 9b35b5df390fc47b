"""Paired bootstrap confidence intervals for the difference of a metric between two systems.

The paper reports no significance tests; this project attaches a CI and a p-value to every metric
difference it reports.

Given per-item outputs ``a`` and ``b`` of two systems on the same ``n`` items (and optional shared
``extra`` arrays such as gold labels), and a statistic ``T``:

    diff  = T(a, *extra) - T(b, *extra)
    diff* = T(a[I], *extra[I]) - T(b[I], *extra[I]),   I ~ n indices drawn with replacement

with the SAME ``I`` for ``a``, ``b`` and ``extra`` (paired: both systems are judged on the same
resampled test set, so item difficulty cancels). Because ``T`` is recomputed on each resample, it
works for decomposable metrics (mean per-query nDCG) and non-decomposable ones (Pearson of a
resampled set of pairs) alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = ["BootstrapResult", "paired_bootstrap"]


@dataclass(frozen=True)
class BootstrapResult:
    """Observed difference ``T(a) - T(b)``, its percentile CI ``[low, high]`` and a two-sided p."""

    diff: float
    low: float
    high: float
    p_value: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_bootstrap(
    statistic: Callable[..., float],
    a,
    b,
    *extra,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap of ``statistic(a, *extra) - statistic(b, *extra)``.

    Args:
        statistic: ``T(x, *extra) -> float``, e.g. ``np.mean`` for per-item scores or
            ``lambda p, g: pearsonr(p, g).statistic`` for STS predictions ``p`` and gold ``g``.
        a, b: per-item outputs of the two systems, items on axis 0 (any trailing shape, e.g.
            ``[B, C]`` logits).
        *extra: arrays shared by both systems (gold labels), items on axis 0.
        n_resamples: bootstrap resamples.
        confidence: CI level.
        seed: seed of the resampling; equal seeds give identical results.

    CI method: scipy's **percentile** interval. BCa corrects bias and skew but needs a jackknife
    (``n`` more evaluations of ``T``, i.e. O(n^2) work for a non-decomposable ``T`` such as
    Pearson) and returns NaN on a degenerate bootstrap distribution - exactly the case of two
    identical systems, or of 0/1 accuracies on a small set, where we need a clean ``[0, 0]``.
    The percentile interval is also the one used for paired bootstrap tests in IR/MT
    (Koehn 2004; Sakai 2006).

    p-value: the two-sided share of resampled differences on the other side of 0 from the
    observed one, ``p = min(1, 2 * mean(diff* <= 0))`` if ``diff > 0`` (mirror image if
    ``diff < 0``; ``p = 1`` if ``diff == 0``). It is the smallest ``alpha`` at which the
    percentile CI of level ``1 - alpha`` would still exclude 0, so ``p < 1 - confidence`` agrees
    with "the CI excludes 0". Its resolution is ``2 / n_resamples``: ``p = 0`` means
    ``p < 2 / n_resamples``, not zero.

    Implementation: scipy.stats.bootstrap(paired=True, vectorized=False) resamples the index
    vector ``arange(n)`` - which is how scipy's own paired mode works - and our statistic indexes
    ``a``, ``b`` and ``extra`` with it. Handing scipy the raw arrays instead would move the item
    axis of multi-dimensional inputs last and broadcast the samples against each other (logits
    ``[B, C]`` next to answers ``[B]`` would fail).
    """
    a, b = np.asarray(a), np.asarray(b)
    extra = tuple(np.asarray(e) for e in extra)
    n = a.shape[0]
    if b.shape[0] != n or any(e.shape[0] != n for e in extra):
        raise ValueError("a, b and every extra array must have the same number of items (axis 0)")
    if n < 2:
        raise ValueError("the bootstrap needs at least two items")

    def diff_at(idx: np.ndarray) -> float:
        rest = tuple(e[idx] for e in extra)
        return float(statistic(a[idx], *rest)) - float(statistic(b[idx], *rest))

    observed = diff_at(np.arange(n))
    res = stats.bootstrap(
        (np.arange(n),),
        diff_at,
        paired=True,
        vectorized=False,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    dist = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    if observed > 0:
        p = 2.0 * float(np.mean(dist <= 0.0))
    elif observed < 0:
        p = 2.0 * float(np.mean(dist >= 0.0))
    else:
        p = 1.0
    return BootstrapResult(
        diff=float(observed),
        low=float(res.confidence_interval.low),
        high=float(res.confidence_interval.high),
        p_value=min(1.0, p),
    )
