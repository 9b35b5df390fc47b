"""Full-model MSE distillation (the strong baseline Arca is measured against)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def mse_distillation(student: Tensor, teacher: Tensor) -> Tensor:
    r"""``L = (1 / (B d)) * sum_{b,j} (student_{b,j} - teacher_{b,j})^2`` with the teacher detached.

    The same objective as sentence-transformers' ``MSELoss`` (Reimers & Gurevych, 2020): the
    student embeds the LRL sentence, the teacher embeds its English source.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"shape mismatch: {tuple(student.shape)} vs {tuple(teacher.shape)}")
    return F.mse_loss(student, teacher.detach())
