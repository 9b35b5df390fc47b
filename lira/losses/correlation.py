"""Correlation objectives for STS-style regression (LaSR's L_corr)."""

from __future__ import annotations

import torch
from torch import Tensor

from lira.losses.ranks import soft_rank

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


def correlation_loss(pred: Tensor, label: Tensor, a: float = 0.5, tau: float = 0.1) -> Tensor:
    r"""``L_corr = a (1 - pearson(pred, label)) + (1 - a) (1 - soft_spearman(pred, label, tau))``.

    ``label`` is detached. In ``[0, 2]``; 0 for perfectly (rank-)correlated predictions.
    """
    label = label.detach()
    return a * (1.0 - pearson(pred, label)) + (1.0 - a) * (1.0 - soft_spearman(pred, label, tau))
