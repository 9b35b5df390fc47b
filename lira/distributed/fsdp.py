"""``shared.distributed.strategy: fsdp``: the LoRA-wrapped LRL encoder sharded over the ranks (torch FSDP2).

With LoRA on, train_arca tunes the LRL backbone's adapters through a live forward
(:class:`lira.train.live.LiveEncoderPath`). Under the default ``grads`` strategy every rank holds
the whole backbone; with ``fsdp`` the backbone is wrapped by torch's own FSDP2
(:func:`torch.distributed.fsdp.fully_shard`): each transformer block is one unit, each rank
holds 1/N of every block's weights (the frozen backbone and the adapters) and all-gathers a block
only while it runs, so a backbone that does not fit one device trains on N. The small modules
(adaptor, Actor, LaSR head) stay replicated and are reduced by :func:`lira.distributed.sync_gradients`,
which leaves FSDP's parameters (DTensors) to FSDP's own reduce-scatter.

The gradient reduction is a SUM (divide factor 1), as for the replicated modules: the trainers'
losses are over the all-gathered global batch, so each rank's gradient is its rows' part of the
single-process gradient (:mod:`lira.distributed.gather`), not a per-rank mean.

Checkpoints and early-stopping snapshots hold full tensors (:func:`full_tensor`,
:class:`FullOptimizerState`), in the same layout as a single-process run's, so a checkpoint
written by rank 0 of an FSDP run resumes in one process, or under any world size and strategy.
Every function here that gathers is a collective: every rank calls it, in the same order.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def _dtensor_type() -> type:
    from torch.distributed.tensor import DTensor

    return DTensor


def is_sharded_tensor(t: Any) -> bool:
    return isinstance(t, _dtensor_type())


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def full_tensor(t: Tensor) -> Tensor:
    """The whole tensor of a sharded one (an all-gather: every rank calls it); others as they are."""
    return t.full_tensor() if is_sharded_tensor(t) else t


def shard_like(full: Tensor, ref: Tensor) -> Tensor:
    """This rank's shard of ``full``, laid out as ``ref`` (a DTensor) is; every rank holds ``full``,
    so nothing is sent (``src_data_rank=None``)."""
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(dtype=ref.dtype, device=ref.device), ref.device_mesh, ref.placements,
                             src_data_rank=None)


def blocks(model: nn.Module) -> list[nn.Module]:
    """The units FSDP shards one by one, inner ones first: a Hugging Face model's ``_no_split_modules``
    (its transformer blocks and embeddings), else the entries of its largest ModuleList."""
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    found = [m for m in model.modules() if type(m).__name__ in names]
    if found:
        return found[::-1]  # inner units first: fully_shard is applied bottom-up
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def shard(model: nn.Module) -> nn.Module:
    """Wrap ``model`` in place with FSDP2 (each block, then the root), summing gradients over ranks.

    Needs the process group (torchrun); on CUDA the parameters move to this rank's GPU."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    for block in blocks(model):
        fully_shard(block)
    fully_shard(model)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_gradient_divide_factor(1.0)  # per unit: the call does not recurse
            # A plain SUM collective (gloo has no PREMUL_SUM/AVG; NCCL's zero-copy path wants SUM too).
            m.set_force_sum_reduction_for_comms(True)
    return model


def check_strategy(strategy: str, lora_enabled: bool) -> None:
    """``fsdp`` shards the live LoRA encoder: without LoRA it would shard nothing, silently."""
    from lira.config import ConfigError

    if strategy == "fsdp" and not lora_enabled:
        raise ConfigError("shared.distributed.strategy is 'fsdp', which shards the LoRA-wrapped LRL encoder that "
                          "train_arca tunes, but shared.encoders.lrl.lora.enabled is false: there is nothing to "
                          "shard; use strategy 'grads'")


def shard_encoder(model: nn.Module, strategy: str) -> nn.Module:
    """What ``shared.distributed.strategy`` asks for the live LoRA encoder: sharded under torchrun with
    ``fsdp``; unchanged on one process or with ``grads``."""
    from lira.distributed.env import world_size

    return shard(model) if strategy == "fsdp" and world_size() > 1 else model


class FullOptimizerState:
    """An optimizer whose state_dict holds full tensors where its parameters are sharded.

    ``state_dict()`` gathers each sharded moment (a collective); ``load_state_dict()`` takes full
    tensors (from any world size) and keeps this rank's shard of each. The layout is the optimizer's
    own, so a checkpoint is the same as a single-process run's.
    """

    def __init__(self, opt: torch.optim.Optimizer):
        self.opt = opt

    def state_dict(self) -> dict[str, Any]:
        sd = self.opt.state_dict()
        state = {i: {k: full_tensor(v) if isinstance(v, Tensor) else v for k, v in s.items()}
                 for i, s in sorted(sd["state"].items())}
        return {"state": state, "param_groups": sd["param_groups"]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.opt.load_state_dict(sd)
        for p, s in self.opt.state.items():
            if not is_sharded_tensor(p):
                continue
            for k, v in s.items():
                if isinstance(v, Tensor) and not is_sharded_tensor(v) and tuple(v.shape) == tuple(p.shape):
                    s[k] = shard_like(v, p)


def full_state(opt: torch.optim.Optimizer) -> torch.optim.Optimizer | FullOptimizerState:
    """``opt`` itself unless some of its parameters are sharded (so the plain path stays as it was)."""
    sharded = any(is_sharded_tensor(p) for g in opt.param_groups for p in g["params"])
    return FullOptimizerState(opt) if sharded else opt
