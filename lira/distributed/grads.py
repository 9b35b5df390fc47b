"""Data-parallel gradient reduction: what DDP's reducer does, done where the trainers can call it.

DDP hooks the wrapped module's ``forward``; Arca and LaSR call other methods of their modules
(``actor.log_probs``, ``net.anchored``, ``net.head``, ``net.lrl_only``), which DDP would not see,
and their losses are over the all-gathered global batch (see :mod:`lira.distributed.gather`), so the
right reduction is the sum of the ranks' gradients, not DDP's mean. :func:`sync_gradients` is that
all-reduce, bucketed into one flat tensor per dtype as DDP's buckets are. Parameters that FSDP
shards (``shared.distributed.strategy: fsdp``, :mod:`lira.distributed.fsdp`) are left to FSDP.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.distributed.tensor import DTensor

from lira.distributed.env import active, comm_device


def trainable(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in opt.param_groups for p in g["params"] if p.requires_grad]


def broadcast_parameters(params: Iterable[torch.Tensor], src: int = 0) -> None:
    """Every rank starts from rank ``src``'s weights (as DDP does at construction)."""
    if not active():
        return
    dev = comm_device()
    with torch.no_grad():
        for p in params:
            buf = p.data.to(dev)
            dist.broadcast(buf, src)
            p.data.copy_(buf.to(p.device))


def sync_gradients(params: torch.optim.Optimizer | Iterable[torch.Tensor]) -> None:
    """Sum the gradients of ``params`` over the ranks (in place; a no-op on one process).

    A parameter without a gradient on every rank keeps none (so the optimizer skips it, as a single
    process would); one with a gradient on some ranks counts zeros for the others.
    """
    if not active():
        return
    ps = trainable(params) if isinstance(params, torch.optim.Optimizer) else [p for p in params if p.requires_grad]
    # FSDP's sharded parameters (DTensors; lira.distributed.fsdp) were reduce-scattered in backward.
    ps = [p for p in ps if not isinstance(p, DTensor)]
    dev = comm_device()
    has = torch.tensor([p.grad is not None for p in ps], dtype=torch.uint8, device=dev)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    used = [p for p, h in zip(ps, has.tolist()) if h]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in used:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = _flatten_dense_tensors([p.grad for p in group]).to(dev)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        for p, g in zip(group, _unflatten_dense_tensors(flat, [p.grad for p in group])):
            p.grad.copy_(g.to(p.grad.device))
