"""Arca's anchoring loss: pull the low-resource path onto the English (anchor) path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def anchoring_loss(e_lr: Tensor, e_en: Tensor, stop_grad_en: bool = True) -> Tensor:
    r"""Mean cosine distance between the LRL slots and the English slots.

    .. math::

        L_{anchor} = \frac{1}{B\,S} \sum_{b=1}^{B} \sum_{s=1}^{S}
            \left(1 - \cos(E^{lr}_{b,s},\ E^{en}_{b,s})\right)

    Args:
        e_lr: ``[B, S, d]`` adapted, pooled LRL-path slots.
        e_en: ``[B, S, d]`` adapted, pooled English-path slots (the anchor).
        stop_grad_en: detach ``e_en`` so only the LRL side moves towards the anchor; without it
            both sides can drift towards each other (and towards a collapsed solution).

    Returns:
        Scalar in ``[0, 2]``: 0 for identical directions, 2 for opposite ones.
    """
    if e_lr.shape != e_en.shape:
        raise ValueError(f"shape mismatch: e_lr {tuple(e_lr.shape)} vs e_en {tuple(e_en.shape)}")
    if stop_grad_en:
        e_en = e_en.detach()
    return (1.0 - F.cosine_similarity(e_lr, e_en, dim=-1)).mean()


@torch.no_grad()
def anchoring_error(e_lr: Tensor, e_en: Tensor) -> Tensor:
    r"""Per-example anchoring error ``eps1`` (for diagnostics, no gradient).

    .. math::

        \epsilon_{1,b} = \frac{1}{S} \sum_{s=1}^{S} \left(1 - \cos(E^{lr}_{b,s},\ E^{en}_{b,s})\right)

    Args:
        e_lr: ``[B, S, d]``.
        e_en: ``[B, S, d]``.

    Returns:
        ``[B]`` detached tensor.
    """
    if e_lr.shape != e_en.shape:
        raise ValueError(f"shape mismatch: e_lr {tuple(e_lr.shape)} vs e_en {tuple(e_en.shape)}")
    return (1.0 - F.cosine_similarity(e_lr, e_en, dim=-1)).mean(dim=-1)


class AnchoringLoss(nn.Module):
    r"""Module form of :func:`anchoring_loss`:
    ``L = mean_{b,s} (1 - cos(E_lr[b,s], E_en[b,s]))``, English side detached if ``stop_grad_en``.
    """

    def __init__(self, stop_grad_en: bool = True) -> None:
        super().__init__()
        self.stop_grad_en = stop_grad_en

    def forward(self, e_lr: Tensor, e_en: Tensor) -> Tensor:
        return anchoring_loss(e_lr, e_en, stop_grad_en=self.stop_grad_en)

    def extra_repr(self) -> str:
        return f"stop_grad_en={self.stop_grad_en}"
