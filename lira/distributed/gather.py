"""All-gather with the gradient flowing through the local shard (cross-rank negatives).

Each rank embeds its own chunk of the batch; the gathered tensor is the global batch, in rank
order, in which the rank's own rows are its autograd-tracked tensor and every other rank's rows
are constants. This is how LaBSE and sentence-transformers' gathered-negatives losses
(sentence_transformers.util.distributed: the local rank's tensor keeps its gradient) see every rank's in-batch
negatives. Each rank then computes the loss over the global batch: the same number on every rank;
rank r's backward gives the gradient through rank r's rows, so the SUM of the ranks' parameter
gradients (:func:`lira.distributed.sync_gradients`) is the single-process gradient of that loss.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from lira.distributed.env import active, comm_device, rank, world_size


def _gather_sizes(n: int) -> list[int]:
    dev = comm_device()
    sizes = [torch.zeros(1, dtype=torch.long, device=dev) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([n], dtype=torch.long, device=dev))
    return [int(s) for s in sizes]


def all_gather_rows(x: Tensor) -> list[Tensor]:
    """Every rank's ``x`` (first dims may differ between ranks), detached, on ``x``'s device."""
    if not active():
        return [x.detach()]
    sizes = _gather_sizes(x.shape[0])
    dev, width = comm_device(), max(sizes)
    as_bool = x.dtype == torch.bool  # gloo has no bool collectives
    xs = (x.detach().to(torch.uint8) if as_bool else x.detach()).to(dev)
    pad = xs.new_zeros((width - x.shape[0], *x.shape[1:]))
    padded = torch.cat([xs, pad]).contiguous()
    out = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(out, padded)
    parts = [o[:s].to(x.device) for o, s in zip(out, sizes)]
    return [p.bool() for p in parts] if as_bool else parts


def all_gather_with_grad(x: Tensor) -> Tensor:
    """The rows of every rank's ``x`` concatenated in rank order; gradients reach this rank's rows only."""
    if world_size() == 1:
        return x
    parts = all_gather_rows(x)
    parts[rank()] = x
    return torch.cat(parts)


def all_gather_no_grad(x: Tensor) -> Tensor:
    return torch.cat(all_gather_rows(x)) if world_size() > 1 else x
