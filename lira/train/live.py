"""The LRL path computed live through a LoRA-wrapped encoder, for trainers that tune the encoder.

With frozen encoders a trainer reads pooled features from the cache. With LoRA on, the LRL path
must be recomputed every step so that the anchoring loss reaches the adapters:

    P(H_lr) = TemporalPooling(S_feat)(encoder_lora(text))      gradients -> lora_A, lora_B only

Only the adapters are trainable (peft freezes the backbone), and only their weights are state:
checkpoints and early-stopping snapshots hold the LoRA tensors, not a copy of the backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from lira.arca.pooling import TemporalPooling
from lira.encoders import Encoder
from lira.encoders.lora import load_lora_state_dict, lora_state_dict


class LiveEncoderPath:
    """Pooled slots [B, S_feat, H] of ``texts[idx]`` through a LoRA-wrapped encoder."""

    def __init__(self, encoder: Encoder, texts: Sequence[str], kinds: Sequence[str], s_feat: int):
        if not hasattr(encoder, "lora_config"):
            raise ValueError("LiveEncoderPath needs an encoder with LoRA attached (Encoder.add_lora)")
        if len(texts) != len(kinds):
            raise ValueError(f"{len(texts)} texts but {len(kinds)} kinds")
        self.encoder = encoder
        self.texts = list(texts)
        self.kinds = np.asarray(kinds, dtype=object)
        self.pool = TemporalPooling(s_feat)

    @property
    def lora_config(self):  # noqa: ANN201 - peft.LoraConfig
        return self.encoder.lora_config

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.encoder.model.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> None:
        self.encoder.model.train(mode)

    def slots(self, idx: Tensor) -> Tensor:
        """Pooled slots of rows ``idx``, with gradients (one forward per prefix kind in the batch)."""
        idx_np = idx.cpu().numpy()
        parts, order = [], []
        for kind in dict.fromkeys(self.kinds[idx_np].tolist()):
            pos = np.flatnonzero(self.kinds[idx_np] == kind)
            hidden, mask = self.encoder.token_states([self.texts[i] for i in idx_np[pos]], kind)
            parts.append(self.pool(hidden.float(), mask))
            order.append(pos)
        out = torch.cat(parts)
        inverse = torch.as_tensor(np.argsort(np.concatenate(order)))
        return out[inverse]

    @torch.no_grad()
    def refreshed(self, base: Tensor, idx: Tensor, batch_size: int = 64) -> Tensor:
        """A copy of ``base`` [N,S,H] with rows ``idx`` recomputed by the current encoder (eval mode)."""
        was = self.encoder.model.training
        self.train(False)
        out = base.clone()
        order = sorted(idx.tolist(), key=lambda i: len(self.texts[i]))  # length-sorted: less padding
        for i in range(0, len(order), batch_size):
            b = torch.as_tensor(order[i : i + batch_size])
            out[b] = self.slots(b)
        self.train(was)
        return out

    def state_dict(self) -> dict[str, Tensor]:
        return lora_state_dict(self.encoder.model)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        load_lora_state_dict(self.encoder.model, state)
