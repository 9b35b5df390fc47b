"""Differentiable (soft) ranks.

The building block of the listwise soft-nDCG loss and of the soft Spearman correlation.
"""

from __future__ import annotations

import torch
from torch import Tensor


def soft_rank(scores: Tensor, tau: float, mask: Tensor | None = None) -> Tensor:
    r"""Soft rank of every entry along the last axis (rank 1 = highest score).

    .. math::

        r_i = 1 + \sum_{j \ne i,\ \mathrm{mask}_j} \sigma\!\left(\frac{s_j - s_i}{\tau}\right)

    As ``tau -> 0`` this is the exact 1-based descending rank for distinct scores; a group of
    ``m`` tied scores gets ``0.5`` per tied pair, i.e. the *average* rank of the group (the same
    convention as ``scipy.stats.rankdata(method="average")``).

    Args:
        scores: ``[..., N]`` scores.
        tau: temperature, in the units of ``scores`` (smaller = sharper, flatter gradients).
        mask: optional boolean ``[..., N]``; ``False`` entries still receive a rank (computed
            against the valid entries) but never push the rank of any other entry.

    Returns:
        ``[..., N]`` soft ranks, in ``[1, 1 + #valid]``.

    Cost is ``O(N^2)`` memory and time per list.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    n = scores.shape[-1]
    # diff[..., i, j] = s_j - s_i
    diff = scores.unsqueeze(-2) - scores.unsqueeze(-1)
    pair = ~torch.eye(n, dtype=torch.bool, device=scores.device)
    if mask is not None:
        pair = pair & mask.to(torch.bool).unsqueeze(-2)
    pair = pair.expand_as(diff)
    # Zero the excluded differences *before* the sigmoid: masked entries may carry -inf/padding
    # scores, and a NaN inside an unselected torch.where branch would still poison the backward.
    diff = torch.where(pair, diff, torch.zeros_like(diff))
    p = torch.where(pair, torch.sigmoid(diff / tau), torch.zeros_like(diff))
    return 1.0 + p.sum(dim=-1)
