"""The systems evaluate compares, each reduced to one thing: an embedding per text row.

* LiRA (and each ablation): z from the trained LiraNet; English path = the Actor's translation;
* frozen: the multilingual encoder's own mean-pooled embedding (zero-shot);
* translate_test: the English encoder's embedding of the selected translation (English path alone);
* mse_distill: sentence-transformers-style multilingual distillation - a student on the frozen
  LRL embedding regressed (MSE) onto the English teacher's embedding of the same translation, on
  the same train texts and budget as Arca.

Pure: arrays/tensors in, arrays out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lira.losses import mse_distillation


class DistillStudent(nn.Module):
    """x -> normalize(x + W2 gelu(W1 LN(x))) (residual MLP: starts as the frozen encoder)."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 512):
        super().__init__()
        self.skip = nn.Identity() if d_in == d_out else nn.Linear(d_in, d_out, bias=False)
        self.mlp = nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.skip(x) + self.mlp(x), dim=-1)


def train_distill(student_in: np.ndarray, teacher: np.ndarray, epochs: int, lr: float, batch_size: int, seed: int) -> DistillStudent:
    torch.manual_seed(seed)
    x, y = torch.from_numpy(student_in), torch.from_numpy(teacher)
    model = DistillStudent(x.shape[1], y.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            b = perm[i : i + batch_size]
            loss = mse_distillation(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def apply_student(model: DistillStudent, x: np.ndarray) -> np.ndarray:
    return model(torch.from_numpy(x)).numpy()


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)
