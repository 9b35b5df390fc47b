"""LaSR's multiple-choice task loss: cross-entropy over the choices' cosine logits."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def choice_cross_entropy(logits: Tensor, answer: Tensor) -> Tensor:
    r"""Mean negative log-likelihood of the gold choice.

    With ``logits[b, c] = cos(z_q_b, z_c_{b,c}) / T`` and ``-inf`` at padded choices (as
    :func:`lira.lasr.head.choice_logits` builds them),

    .. math::

        L = -\frac{1}{B} \sum_{b=1}^{B} \log \frac{\exp(\mathrm{logits}_{b, a_b})}{\sum_{c\ \mathrm{valid}} \exp(\mathrm{logits}_{b,c})}

    Args:
        logits: ``[B, C]``; a padded choice at ``-inf`` gets probability 0.
        answer: ``[B]`` long, the index of the gold choice (must be a valid one).
    """
    return F.cross_entropy(logits, answer)
