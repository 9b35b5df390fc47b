"""Correlation objectives for STS-style regression (LaSR's L_corr)."""

from __future__ import annotations

import torch
from torch import Tensor

from lira.losses.ranks import soft_rank, soft_rank_with_tail

_EPS = 1e-12


def pearson(x: Tensor, y: Tensor, eps: float = _EPS) -> Tensor:
    r"""Pearson correlation of two flattened tensors.

    .. math::

        \rho = \frac{\sum_i (x_i - \bar x)(y_i - \bar y)}
                    {\max\!\left(\sqrt{\sum_i (x_i - \bar x)^2 \sum_i (y_i - \bar y)^2},\ \epsilon\right)}

    The ``eps`` clamp makes a constant input give 0 (and a finite, zero gradient through the
    denominator) instead of NaN; for non-degenerate inputs the value is exact.
    """
    x = x.reshape(-1)
    y = y.reshape(-1).to(x.dtype)
    if x.numel() != y.numel():
        raise ValueError(f"size mismatch: {x.numel()} vs {y.numel()}")
    xc = x - x.mean()
    yc = y - y.mean()
    # Clamp the product *inside* the sqrt so sqrt never sees 0 (its gradient there is inf).
    denom = torch.sqrt(((xc * xc).sum() * (yc * yc).sum()).clamp_min(eps * eps))
    return (xc * yc).sum() / denom


def soft_spearman(x: Tensor, y: Tensor, tau: float) -> Tensor:
    r"""Soft Spearman correlation: the Pearson correlation of soft ranks.

    .. math::

        \rho_S \approx \mathrm{pearson}\big(r^{soft}_\tau(x),\ r^{soft}_\tau(y)\big)

    As ``tau -> 0`` it equals ``scipy.stats.spearmanr`` (ties get average ranks in both).
    ``tau`` is in the units of the inputs: rank predictions and labels on comparable scales or
    standardise them first. Memory is ``O(N^2)`` in the number of pairs.
    """
    x = x.reshape(-1)
    y = y.reshape(-1).to(x.dtype)
    return pearson(soft_rank(x, tau), soft_rank(y, tau))


def correlation_loss(
    pred: Tensor,
    label: Tensor,
    a: float = 0.5,
    tau: float = 0.1,
    queue_pred: Tensor | None = None,
    queue_label: Tensor | None = None,
    queue_rank_sums: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    r"""``L_corr = a (1 - pearson(pred, label)) + (1 - a) (1 - soft_spearman(pred, label, tau))``.

    ``label`` is detached. In ``[0, 2]``; 0 for perfectly (rank-)correlated predictions.

    With a queue (``queue_pred``, ``queue_label``: past pairs, no gradient) the loss is over
    ``pred ++ queue_pred`` vs ``label ++ queue_label`` - exactly
    ``correlation_loss(cat([pred, queue_pred]), cat([label, queue_label]))`` - but the soft ranks
    are computed by :func:`lira.losses.ranks.soft_rank_with_tail`: only batch-vs-all pairs are
    formed, ``O(B (B + Q))``, and the queue-internal sums come from ``queue_rank_sums`` (the
    queue's (pred, label) :meth:`~lira.lasr.queues.CorrQueue.rank_sums` for this ``tau``) or,
    without them, are computed without autograd.
    """
    label = label.detach()
    if queue_pred is None and queue_label is None:
        return a * (1.0 - pearson(pred, label)) + (1.0 - a) * (1.0 - soft_spearman(pred, label, tau))
    if queue_pred is None or queue_label is None:
        raise ValueError("correlation_loss: give both queue_pred and queue_label, or neither")
    pred, label = pred.reshape(-1), label.reshape(-1).to(pred.dtype)
    q_pred, q_label = queue_pred.detach().reshape(-1).to(pred.dtype), queue_label.detach().reshape(-1).to(pred.dtype)
    sums_p, sums_l = queue_rank_sums if queue_rank_sums is not None else (None, None)
    r_pred = soft_rank_with_tail(pred, q_pred, tau, sums_p)
    with torch.no_grad():
        r_label = soft_rank_with_tail(label, q_label, tau, sums_l)
    rho_s = pearson(r_pred, r_label)
    return a * (1.0 - pearson(torch.cat([pred, q_pred]), torch.cat([label, q_label]))) + (1.0 - a) * (1.0 - rho_s)
