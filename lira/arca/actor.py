"""The Arca Actor: a policy over the K translation candidates of one source text."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Actor(nn.Module):
    """pi_phi(k | c_1..K) = softmax_k( MLP_phi(f_k) ), f_k = [s, e, p, sim, ...]_k.

    The MLP (Linear -> GELU -> Linear -> GELU -> Linear(., 1)) scores each candidate from its own
    features alone; the softmax over the valid candidates couples them. Features should be on a
    roughly unit scale (e.g. critic scores divided by 10): the module does not normalise them,
    because per-candidate normalisation would erase the very differences the policy must see.

    Masking: invalid candidates (mask False) get logit -inf, so probability exactly 0.
    A row with NO valid candidate gets logits 0 everywhere instead (uniform, finite), so
    log_softmax never yields NaN; ``greedy`` returns action 0 for such rows.
    The caller must skip them (``mask.any(-1)`` tells which).
    """

    def __init__(self, n_features: int, hidden: int = 32):
        super().__init__()
        self.n_features, self.hidden = n_features, hidden
        self.mlp = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 1),
        )

    def config(self) -> dict:
        """The constructor arguments, as saved beside the weights (``Actor.from_config``)."""
        return {"features": self.n_features, "hidden": self.hidden}

    @classmethod
    def from_config(cls, config: dict) -> Actor:
        return cls(config["features"], config["hidden"])

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """features [B, K, F], mask [B, K] bool -> logits [B, K] (invalid at -inf)."""
        mask = mask.bool()
        logits = self.mlp(features).squeeze(-1)
        empty = ~mask.any(dim=-1, keepdim=True)  # rows with nothing to choose from
        logits = logits.masked_fill(~mask, float("-inf"))
        return torch.where(empty, torch.zeros_like(logits), logits)

    def log_probs(self, features: Tensor, mask: Tensor) -> Tensor:
        """log pi(k | c_1..K): [B, K], -inf at invalid candidates."""
        return torch.log_softmax(self(features, mask), dim=-1)

    def entropy(self, features: Tensor, mask: Tensor) -> Tensor:
        """H(pi) per row [B], computed without the 0 * -inf = NaN of masked entries."""
        logp = self.log_probs(features, mask)
        p = logp.exp()
        return -(p * logp.masked_fill(p == 0, 0.0)).sum(dim=-1)

    @torch.no_grad()
    def greedy(self, features: Tensor, mask: Tensor) -> Tensor:
        """argmax_k pi(k | c_1..K): actions [B] long (0 for rows with no valid candidate)."""
        mask = mask.bool()
        actions = self(features, mask).argmax(dim=-1)
        return actions.masked_fill(~mask.any(dim=-1), 0)
