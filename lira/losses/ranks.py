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


def sigmoid_sums(x: Tensor, others: Tensor, tau: float, chunk: int = 1024) -> Tensor:
    r"""For each ``x_i``: :math:`\sum_j \sigma((o_j - x_i) / \tau)` over all entries of ``others`` (1-D both).

    The pairwise term of :func:`soft_rank`, between two lists. Computed in chunks of ``x`` so the
    memory is ``O(chunk x len(others))``; differentiable in both inputs.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    x, others = x.reshape(-1), others.reshape(-1).to(x.dtype)
    if x.numel() <= chunk:
        return torch.sigmoid((others.unsqueeze(0) - x.unsqueeze(1)) / tau).sum(1)
    return torch.cat([torch.sigmoid((others.unsqueeze(0) - part.unsqueeze(1)) / tau).sum(1) for part in x.split(chunk)])


@torch.no_grad()
def self_sigmoid_sums(t: Tensor, tau: float, chunk: int = 1024) -> Tensor:
    r""":math:`c_k = \sum_{j \ne k} \sigma((t_j - t_k) / \tau)` for a 1-D list, no gradient: the
    queue-internal part of the soft ranks (``soft_rank(t) - 1``). The ``j = k`` term is
    :math:`\sigma(0) = 1/2` exactly, so it is subtracted rather than masked."""
    t = t.reshape(-1)
    return sigmoid_sums(t, t, tau, chunk) - 0.5


def soft_rank_with_tail(head: Tensor, tail: Tensor, tau: float, tail_sums: Tensor | None = None) -> Tensor:
    r"""``soft_rank(cat([head, tail]), tau)`` for a 1-D list whose ``tail`` carries no gradient
    (e.g. a queue of past values), in ``O(H (H + T))`` instead of ``O((H + T)^2)``.

    .. math::

        r_i &= 1 + \sum_{j \in head, j \ne i} \sigma\!\left(\tfrac{h_j - h_i}{\tau}\right)
                 + \sum_{j \in tail} \sigma\!\left(\tfrac{t_j - h_i}{\tau}\right)  \quad (i \in head) \\
        r_k &= 1 + c_k + \sum_{j \in head} \sigma\!\left(\tfrac{h_j - t_k}{\tau}\right),\quad
        c_k = \sum_{j \in tail, j \ne k} \sigma\!\left(\tfrac{t_j - t_k}{\tau}\right)  \quad (k \in tail)

    The same pairs and terms as :func:`soft_rank` (so the same values, to float rounding, and the
    same gradient with respect to ``head``); only the summation is split. ``c`` does not depend on
    ``head``: pass ``tail_sums`` (e.g. kept up to date by the queue, :meth:`CorrQueue.rank_sums`)
    and the tail-tail pairs are never formed; without it they are computed here, without autograd.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    head, tail = head.reshape(-1), tail.reshape(-1).to(head.dtype)
    if tail.requires_grad:
        raise ValueError("soft_rank_with_tail: the tail must carry no gradient (detach it, or use soft_rank)")
    if tail_sums is None:
        tail_sums = self_sigmoid_sums(tail, tau)
    elif tail_sums.shape != tail.shape:
        raise ValueError(f"tail_sums has shape {tuple(tail_sums.shape)}, expected {tuple(tail.shape)}")
    r_head = soft_rank(head, tau) + sigmoid_sums(head, tail, tau)
    r_tail = 1.0 + tail_sums.to(head.dtype) + sigmoid_sums(tail, head, tau)
    return torch.cat([r_head, r_tail])
