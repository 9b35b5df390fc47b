"""Arca's anchoring loss: pull the low-resource path onto the English (anchor) path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
