"""LaSR's retrieval task loss: listwise softmax cross-entropy against graded relevance."""

from __future__ import annotations

import torch
from torch import Tensor


def listwise_softmax_ce(scores: Tensor, relevance: Tensor, mask: Tensor, temperature: float) -> Tensor:
    r"""Cross-entropy between the softmax of a query's scores and its normalised gains.

    Per query ``q`` over its valid list entries ``i`` (``mask`` True),

    .. math::

        t_{q,i} = \frac{2^{rel_{q,i}} - 1}{\max(\sum_j (2^{rel_{q,j}} - 1),\ 10^{-9})}, \qquad
        L = -\frac{1}{Q} \sum_q \sum_{i\ \mathrm{valid}} t_{q,i}\,
            \log \mathrm{softmax}_{i\ \mathrm{valid}}\!\left(\frac{s_{q,i}}{T}\right)

    (ListNet's top-one loss with exponential gains). A query without any relevant entry has
    ``t = 0`` and contributes 0 (it still counts in ``Q``).

    Args:
        scores: ``[Q, L]`` similarities.
        relevance: ``[Q, L]`` graded relevance (0 = not relevant).
        mask: ``[Q, L]`` bool, False where the list has no entry; each row needs one True.
        temperature: ``T > 0``.
    """
    mask = mask.bool()
    gain = (2.0**relevance - 1.0) * mask
    target = gain / gain.sum(1, keepdim=True).clamp_min(1e-9)
    logits = (scores / temperature).masked_fill(~mask, float("-inf"))
    return -(target * torch.log_softmax(logits, 1).masked_fill(~mask, 0.0)).sum(1).mean()
