"""In-batch InfoNCE between the two paths (Arca's L_nce, not in the paper)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(u_lr: Tensor, u_en: Tensor, temperature: float) -> Tensor:
    r"""Symmetric in-batch InfoNCE: each LRL text must pick its own translation among the batch's.

    With ``S = u_lr u_en^T / T`` (``[B, B]``; row ``b`` scores LRL text ``b`` against every
    translation of the batch),

    .. math::

        L_{nce} = \frac{1}{2B} \sum_{b=1}^{B} \Big( -\log \mathrm{softmax}(S_{b,:})_b
                                                   -\log \mathrm{softmax}(S_{:,b})_b \Big)

    Args:
        u_lr: ``[B, d]`` LRL-path embeddings (unit norm, so ``S`` holds cosines / T).
        u_en: ``[B, d]`` English-path embeddings of the same texts, in the same order.
        temperature: ``T > 0``.
    """
    if u_lr.shape != u_en.shape:
        raise ValueError(f"shape mismatch: u_lr {tuple(u_lr.shape)} vs u_en {tuple(u_en.shape)}")
    logits = u_lr @ u_en.T / temperature
    target = torch.arange(len(u_lr), device=u_lr.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
