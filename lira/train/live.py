"""The LRL path computed live through a LoRA-wrapped encoder, for trainers that tune the encoder.

With frozen encoders a trainer reads pooled features from the cache. With LoRA on, the LRL path
must be recomputed every step so that the anchoring loss reaches the adapters:

    P(H_lr) = TemporalPooling(S_feat)(encoder_lora(text))      gradients -> lora_A, lora_B only

Only the adapters are trainable (peft freezes the backbone), and only their weights are state:
checkpoints and early-stopping snapshots hold the LoRA tensors, not a copy of the backbone.

Under torchrun a rank computes its chunk of a batch (:meth:`LiveEncoderPath.local_slots`) as one
process computes those rows: the same per-prefix forwards, padded to the global batch's length,
with the global batch's dropout masks (:mod:`lira.distributed.draws`). Every rank runs the same
forwards (one with no rows of a prefix runs a stand-in row), as FSDP's collectives need when the
encoder is sharded (``shared.distributed.strategy: fsdp``, :mod:`lira.distributed.fsdp`); the
LoRA state is then gathered to full tensors, so checkpoints look as they do on one process.

``precision`` (``shared.encoders.lrl.lora.train_precision``) runs the encoder's forwards - the grad
ones and the no-grad refresh - under CPU bf16 autocast when ``bf16``: the backbone and the adapters
keep their fp32 weights (autocast casts per matmul, so the gradients that reach lora_A/B and the
optimizer's state are fp32), and the pooled slots are fp32 before any loss sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from lira.arca.pooling import TemporalPooling
from lira.encoders import Encoder
from lira.encoders.lora import load_lora_state_dict, lora_state_dict
from lira.runtime import trim_heap


class ReleasedPathError(RuntimeError):
    """A forward was asked of a path that holds LoRA state only (released, or made from a state)."""


class LiveEncoderPath:
    """Pooled slots [B, S_feat, H] of ``texts[idx]`` through a LoRA-wrapped encoder."""

    def __init__(self, encoder: Encoder, texts: Sequence[str], kinds: Sequence[str], s_feat: int, *,
                 precision: Literal["fp32", "bf16"]):
        if not hasattr(encoder, "lora_config"):
            raise ValueError("LiveEncoderPath needs an encoder with LoRA attached (Encoder.add_lora)")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"LoRA train precision {precision!r}: expected 'fp32' or 'bf16'")
        if precision == "bf16" and str(encoder.device) != "cpu":
            # CUDA autocast is another engine with other numerics than the ones measured here.
            raise ValueError(f"LoRA train precision 'bf16' is CPU bf16 autocast; the encoder is on {encoder.device!r}: "
                             "use fp32 there")
        self.precision = precision
        if len(texts) != len(kinds):
            raise ValueError(f"{len(texts)} texts but {len(kinds)} kinds")
        self.encoder: Encoder | None = encoder
        self._released: tuple[dict[str, Tensor], object] | None = None  # (LoRA state, config) after release()
        self.texts = list(texts)
        self.kinds = np.asarray(kinds, dtype=object)
        self.pool = TemporalPooling(s_feat)

    @classmethod
    def from_state(cls, state: dict[str, Tensor], config, texts: Sequence[str], kinds: Sequence[str], s_feat: int, *,  # noqa: ANN001
                   precision: Literal["fp32", "bf16"]) -> LiveEncoderPath:
        """A path that holds only LoRA ``state`` and its peft ``config``, as :meth:`release` leaves
        one: what a finished run reloaded from its checkpoint needs (its trainer only restores and
        returns the adapters), without loading the encoder - 1.5 s and ~600 MB in every stage
        that reloads Arca (train_lasr, each ablation that shares it)."""
        path = cls.__new__(cls)
        path.precision, path.encoder = precision, None
        path._released = ({k: v.detach().clone() for k, v in state.items()}, config)
        path.texts, path.kinds, path.pool = list(texts), np.asarray(kinds, dtype=object), TemporalPooling(s_feat)
        return path

    @property
    def lora_config(self):  # noqa: ANN201 - peft.LoraConfig
        return self.encoder.lora_config if self.encoder is not None else self._released[1]

    def parameters(self) -> list[torch.nn.Parameter]:
        if self.encoder is None and self._released is not None:
            # state only: stand-ins of the adapters' shapes, in their order, so that an optimizer
            # (and its checkpointed state) has the group it had; nothing trains them.
            if getattr(self, "_standins", None) is None:
                self._standins = [torch.nn.Parameter(v.detach().clone()) for v in self._released[0].values()]
            return self._standins
        return [p for p in self._model().parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> None:
        if self.encoder is not None:
            self.encoder.model.train(mode)

    def _model(self) -> torch.nn.Module:
        if self.encoder is None:
            raise ReleasedPathError("this live encoder path holds LoRA state only (released, or made from a finished "
                                    "run's state): it has no encoder to run")
        return self.encoder.model

    def adapters_are_zero(self) -> bool:
        """True while every LoRA B matrix is zero (peft's initialisation): the path then computes
        what the frozen encoder does, so its cached features stand in for a refresh."""
        return all(not bool(v.any()) for k, v in self.state_dict().items() if "lora_B" in k)

    def release(self) -> None:
        """Drop the encoder, keeping the LoRA state and config: once the LoRA epochs are over the
        trainer only snapshots and restores those, and the backbone (its fp32 weights and what its
        training forwards left in the heap) need not stay loaded beside the merged encoder."""
        if self.encoder is None:
            return
        state, config = self.state_dict(), self.lora_config
        self.encoder = None
        self._released = (state, config)
        import gc

        gc.collect()
        trim_heap()

    def autocast(self) -> AbstractContextManager:
        """The context every encoder forward of this path runs in (its backward follows the forward's dtypes)."""
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()

    @property
    def sharded(self) -> bool:
        from lira.distributed.fsdp import is_sharded

        return is_sharded(self._model())

    def local_slots(self, idx: Tensor) -> Tensor:
        """This rank's chunk of ``slots(idx)`` (with gradients), computed as one process computes it."""
        from lira.distributed import chunk_bounds, global_batch_draws, world_size

        self._model()  # a released path has nothing to run
        if world_size() == 1:
            return self.slots(idx)
        idx_np = idx.cpu().numpy()
        start, stop = chunk_bounds(len(idx_np))
        parts, order = [], []
        for kind in dict.fromkeys(self.kinds[idx_np].tolist()):
            pos = np.flatnonzero(self.kinds[idx_np] == kind)
            batch = self.encoder.tokenize([self.texts[i] for i in idx_np[pos]], kind)  # padded as one process pads
            mine = np.flatnonzero((pos >= start) & (pos < stop))  # contiguous: the chunk is
            lo, hi = (int(mine[0]), int(mine[-1]) + 1) if len(mine) else (0, 1)  # no rows: a stand-in row
            with global_batch_draws(len(pos), chunk=(lo, hi)), self.autocast():
                hidden = self.encoder.model(**{k: v[lo:hi] for k, v in batch.items()}).last_hidden_state
            pooled = self.pool(hidden.float(), batch["attention_mask"][lo:hi])
            parts.append(pooled if len(mine) else pooled[:0])  # the stand-in's zero gradient keeps FSDP in step
            order.append(pos[mine])
        out = torch.cat(parts)
        inverse = torch.as_tensor(np.argsort(np.concatenate(order)))
        return out[inverse]

    def slots(self, idx: Tensor) -> Tensor:
        """Pooled slots of rows ``idx``, with gradients (one forward per prefix kind in the batch)."""
        self._model()
        idx_np = idx.cpu().numpy()
        parts, order = [], []
        for kind in dict.fromkeys(self.kinds[idx_np].tolist()):
            pos = np.flatnonzero(self.kinds[idx_np] == kind)
            with self.autocast():
                hidden, mask = self.encoder.token_states([self.texts[i] for i in idx_np[pos]], kind)
            parts.append(self.pool(hidden.float(), mask))
            order.append(pos)
        out = torch.cat(parts)
        inverse = torch.as_tensor(np.argsort(np.concatenate(order)))
        return out[inverse]

    @torch.no_grad()
    def refreshed(self, base: Tensor, idx: Tensor, batch_size: int = 64) -> Tensor:
        """A copy of ``base`` [N,S,H] with rows ``idx`` recomputed by the current encoder (eval mode)."""
        was = self._model().training
        self.train(False)
        out = base.clone()
        order = sorted(idx.tolist(), key=lambda i: len(self.texts[i]))  # length-sorted: less padding
        for i in range(0, len(order), batch_size):
            b = torch.as_tensor(order[i : i + batch_size])
            out[b] = self.slots(b)
            trim_heap()
        self.train(was)
        return out

    def _lora_parameters(self) -> dict[str, torch.nn.Parameter]:
        """peft's state-dict key -> the (sharded) parameter, for the adapters only."""
        from peft import get_peft_model_state_dict

        named = {n: p for n, p in self.encoder.model.named_parameters() if "lora_" in n}
        return get_peft_model_state_dict(self.encoder.model, state_dict=named)

    def state_dict(self) -> dict[str, Tensor]:
        if self.encoder is None:
            return {k: v.clone() for k, v in self._released[0].items()}
        if not self.sharded:
            return lora_state_dict(self.encoder.model)
        from lira.distributed.fsdp import full_tensor

        # Full tensors (a collective per adapter, in the same order on every rank): what one process holds.
        return {k: full_tensor(p.detach()).clone() for k, p in self._lora_parameters().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if self.encoder is None:
            held = self._released[0]
            if state.keys() != held.keys():
                raise ValueError(f"LoRA state does not fit this model: keys {sorted(set(state) ^ set(held))[:3]}... differ")
            self._released = ({k: v.detach().clone() for k, v in state.items()}, self._released[1])
            return
        if not self.sharded:
            load_lora_state_dict(self.encoder.model, state)
            return
        from lira.distributed.fsdp import shard_like

        params = self._lora_parameters()
        if state.keys() != params.keys():
            bad = sorted(set(state) ^ set(params))
            raise ValueError(f"LoRA state does not fit this model: keys {bad[:3]}... differ")
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(shard_like(state[k], p))
