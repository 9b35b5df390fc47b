"""Temporal pooling: token states [B, T, H] -> S_feat slot vectors [B, S, H]."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TemporalPooling(nn.Module):
    """Mask-aware adaptive average pooling over the sequence axis.

    For example b with L_b valid tokens x_0 .. x_{L_b-1} (the mask-True positions, in order),
    slot s in 0..S-1 is the mean over the window

        start_s = floor(s * L_b / S),   end_s = ceil((s + 1) * L_b / S)
        P[b, s] = mean(x_i for start_s <= i < end_s)

    which are exactly the windows of ``F.adaptive_avg_pool1d`` on the unpadded sequence, so
    S = 1 is masked mean pooling and, when L_b < S, windows overlap and tokens repeat.
    Padding (mask False) never enters any window, wherever it sits (left, right or inside).
    An example with no valid token at all pools to zeros.

    Implemented as one batched matmul with a [B, S, T] averaging matrix: no loop over B or S.
    """

    def __init__(self, s_feat: int):
        super().__init__()
        if s_feat < 1:
            raise ValueError(f"s_feat must be >= 1, got {s_feat}")
        self.s_feat = s_feat

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        S = self.s_feat
        mask = mask.bool()
        lengths = mask.sum(dim=1, keepdim=True)  # [B, 1]
        # rank of each valid token among the valid tokens of its row (garbage where mask False)
        rank = mask.long().cumsum(dim=1) - 1  # [B, T]
        s = torch.arange(S, device=hidden.device).view(1, S, 1)  # [1, S, 1]
        L = lengths.unsqueeze(-1)  # [B, 1, 1]
        # integer floor/ceil: no float rounding at window edges
        start = (s * L) // S
        end = ((s + 1) * L + S - 1) // S
        r = rank.unsqueeze(1)  # [B, 1, T]
        inside = (r >= start) & (r < end) & mask.unsqueeze(1)  # [B, S, T]
        weights = inside.to(hidden.dtype)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1.0)
        return torch.bmm(weights, hidden)

    def extra_repr(self) -> str:
        return f"s_feat={self.s_feat}"
