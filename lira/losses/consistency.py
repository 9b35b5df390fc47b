"""Consistency regularisation between the LRL path and the English path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def symmetric_kl(logits_a: Tensor, logits_b: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Symmetric KL (Jeffreys divergence) of two choice distributions, averaged over rows.

    With ``p = softmax(logits_a)`` and ``q = softmax(logits_b)`` over the valid choices of the
    last axis,

    .. math::

        D = \mathrm{KL}(p\,\|\,q) + \mathrm{KL}(q\,\|\,p) = \sum_{c\ \mathrm{valid}} (p_c - q_c)(\log p_c - \log q_c)

    and the result is the mean of ``D`` over all leading positions that have at least one
    valid choice (0 if none). Both sides receive gradients; detach one at the call site to make
    it a teacher.

    Args:
        logits_a, logits_b: ``[..., C]``.
        mask: optional bool ``[..., C]``; masked choices are removed before the softmax.
    """
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"shape mismatch: {tuple(logits_a.shape)} vs {tuple(logits_b.shape)}")
    if mask is None:
        mask = torch.ones_like(logits_a, dtype=torch.bool)
    mask = mask.to(torch.bool).expand_as(logits_a)
    row_ok = mask.any(dim=-1)
    # Rows without any valid choice are treated as fully valid (to stay finite) and dropped below.
    m = mask | ~row_ok.unsqueeze(-1)
    neg_inf = torch.tensor(float("-inf"), dtype=logits_a.dtype, device=logits_a.device)
    la = F.log_softmax(torch.where(m, logits_a, neg_inf), dim=-1)
    lb = F.log_softmax(torch.where(m, logits_b, neg_inf), dim=-1)
    # -inf - -inf would be NaN: zero the masked log-probs before combining them.
    la = la.masked_fill(~m, 0.0)
    lb = lb.masked_fill(~m, 0.0)
    d = ((la.exp() - lb.exp()) * (la - lb)).masked_fill(~m, 0.0).sum(dim=-1)
    if not bool(row_ok.any()):
        return (d * 0.0).sum()
    return d[row_ok].mean()


def score_mse(a: Tensor, b: Tensor) -> Tensor:
    r"""``mean((a - b)^2)`` over all elements: agreement of the two paths' scores."""
    return F.mse_loss(a, b)
