"""The English self-anchoring guard: keep the English path at the frozen English encoder."""

from __future__ import annotations

from torch import Tensor

from lira.losses.anchoring import anchoring_loss


def self_anchoring_loss(z_en: Tensor, frozen_en: Tensor) -> Tensor:
    r"""Mean cosine distance between the English path's embedding of English text and the frozen
    English encoder's embedding of the same text (the teacher, never moved).

    .. math::

        L_{self} = \frac{1}{B} \sum_{b=1}^{B} \left(1 - \cos\left(z^{en}(x_b),\ \mathrm{sg}(f^{en}(x_b))\right)\right)

    ``z^en`` is what LiRA serves for anchor-language text (Arca: the shared adaptor on the English
    features; LaSR: the head's anchor-language entry on top of it), ``f^en`` the frozen English
    encoder's mean-pooled embedding. The LRL path is pulled onto the English path; without this
    term the shared adaptor (and LaSR's anchor entry) may move the English path too, and LiRA then
    forgets English (the recipe's guard in sentence-transformers' ``make_multilingual.py``: the
    student's English embedding is distilled onto the teacher's).

    Args:
        z_en: ``[B, d]`` the English path's embeddings.
        frozen_en: ``[B, d]`` the frozen encoder's embeddings of the same texts (detached here).

    Returns:
        Scalar in ``[0, 2]``: 0 when the English path equals the frozen encoder (up to scale).
    """
    if z_en.shape != frozen_en.shape:
        raise ValueError(f"shape mismatch: z_en {tuple(z_en.shape)} vs frozen_en {tuple(frozen_en.shape)}: the guard "
                         "needs the English path at the frozen encoder's width (a full-width adaptor)")
    if z_en.shape[0] == 0:
        return z_en.new_zeros(())
    # the anchoring distance with the frozen encoder as the (stop-gradient) anchor
    return anchoring_loss(z_en, frozen_en, stop_grad_en=True)
