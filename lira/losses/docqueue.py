"""LaSR's DocQueue objective: soft-nDCG + a margin hinge + a variance (anti-collapse) term.

The paper only names the three parts ("a margin hinge between the positive and the hardest
negative, and a variance term"); the exact forms below are this project's reading.
The queue itself (FIFO of detached item embeddings, in-language negatives) lives with LaSR;
this module only sees the resulting score lists.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lira.losses.soft_ndcg import SoftNDCGLoss


def margin_hinge(pos: Tensor, neg: Tensor, neg_mask: Tensor, margin: float) -> Tensor:
    r"""Hinge between each query's positive score and its hardest valid negative.

    .. math::

        L_{hinge} = \frac{1}{|Q'|} \sum_{q \in Q'} \mathrm{relu}\big(m - s^+_q + \max_{j\ \mathrm{valid}} s^-_{q,j}\big)

    where ``Q'`` are the queries with at least one valid negative (0 if there is none).

    Args:
        pos: ``[Q]`` positive scores.
        neg: ``[Q, M]`` negative scores.
        neg_mask: ``[Q, M]`` bool, valid negatives.
        margin: ``m``.
    """
    neg_mask = neg_mask.to(torch.bool)
    has_neg = neg_mask.any(dim=-1)
    neg_inf = torch.tensor(float("-inf"), dtype=neg.dtype, device=neg.device)
    hardest = torch.where(neg_mask, neg, neg_inf).max(dim=-1).values
    # Queries without a negative get a harmless finite stand-in, then are excluded.
    hardest = torch.where(has_neg, hardest, pos.detach())
    h = torch.relu(margin - pos + hardest)
    if not bool(has_neg.any()):
        return (h * 0.0).sum()
    return h[has_neg].mean()


def variance_term(z: Tensor, target_std: float = 1.0, eps: float = 1e-4) -> Tensor:
    r"""VICReg-style variance hinge that keeps embeddings from collapsing.

    .. math::

        L_{mv} = \frac{1}{d} \sum_{j=1}^{d} \mathrm{relu}\Big(\gamma - \sqrt{\mathrm{Var}_b(z_{b,j}) + \epsilon}\Big)

    with the unbiased variance over the batch and ``gamma = target_std`` (Bardes et al., 2022).
    The paper gives no detail on "the variance term"; this is our reading. Note that for
    L2-normalised ``z`` of width ``d`` the per-dimension std is at most about ``1/sqrt(d)``, so
    ``target_std=1`` then never reaches 0 (it still rewards spreading variance over all
    dimensions); pass ``target_std ~ 1/sqrt(d)`` for a term that switches off when spread.
    Returns 0 for a batch of fewer than 2 rows (variance undefined).

    Args:
        z: ``[B, d]`` embeddings.
    """
    if z.shape[0] < 2:
        return (z * 0.0).sum()
    std = torch.sqrt(z.var(dim=0) + eps)
    return torch.relu(target_std - std).mean()


class DocQueueObjective(nn.Module):
    r"""``L = L_ndcg + lambda_h * L_hinge + lambda_r * L_mv``.

    * ``L_ndcg``: :class:`~lira.losses.soft_ndcg.SoftNDCGLoss` ``(k, tau)`` over each query's list
      (in-batch items + same-language queue items).
    * ``L_hinge``: :func:`margin_hinge` between the best-scoring positive (``relevance > 0``) and
      the hardest valid non-positive of each query; queries lacking either are skipped.
    * ``L_mv``: :func:`variance_term` on ``z`` (skipped, i.e. 0, if ``z`` is ``None``).

    ``forward`` returns ``(total, parts)`` with ``parts = {"ndcg", "hinge", "variance"}`` holding the
    unweighted, non-detached parts (call ``.item()`` to log them).
    """

    def __init__(
        self,
        k: int = 10,
        tau: float = 0.1,
        margin: float = 0.2,
        lambda_h: float = 1.0,
        lambda_r: float = 1.0,
        target_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.ndcg = SoftNDCGLoss(k=k, tau=tau)
        self.margin = margin
        self.lambda_h = lambda_h
        self.lambda_r = lambda_r
        self.target_std = target_std

    def forward(
        self, scores: Tensor, relevance: Tensor, mask: Tensor | None, z: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if mask is None:
            mask = torch.ones_like(scores, dtype=torch.bool)
        mask = mask.to(torch.bool)
        l_ndcg = self.ndcg(scores, relevance, mask)

        is_pos = mask & (relevance > 0)
        has_pos = is_pos.any(dim=-1)
        neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
        best_pos = torch.where(is_pos, scores, neg_inf).max(dim=-1).values
        best_pos = torch.where(has_pos, best_pos, torch.zeros_like(best_pos))
        neg_mask = mask & ~is_pos & has_pos.unsqueeze(-1)
        l_hinge = margin_hinge(best_pos, scores, neg_mask, self.margin)

        l_mv = variance_term(z, self.target_std) if z is not None else scores.new_zeros(())
        total = l_ndcg + self.lambda_h * l_hinge + self.lambda_r * l_mv
        return total, {"ndcg": l_ndcg, "hinge": l_hinge, "variance": l_mv}

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, lambda_h={self.lambda_h}, lambda_r={self.lambda_r}, "
            f"target_std={self.target_std}"
        )
