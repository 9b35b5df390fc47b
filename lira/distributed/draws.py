"""Rank-invariant random draws: under torchrun, dropout masks are those one process would draw.

A rank runs its forward on its chunk (rows [start, stop)) of an n-row global batch
(:mod:`lira.distributed.shard`). Inside :func:`global_batch_draws`, every random draw of a tensor
whose first dimension is the chunk's (dropout's Bernoulli mask in nn.Dropout and F.dropout, the
attention dropout of scaled_dot_product_attention's math path, ``torch.rand(B)`` as LaSR's path
dropout draws it, peft's LoRA dropout, a Hugging Face backbone's dropouts) is made instead for the
n-row tensor, from the same generator, and the chunk's rows of it are kept:

    mask_rank = draw([n, ...])[start:stop]

Every rank starts from the same RNG state (every trainer seeds itself) and consumes it exactly as
one process drawing the [n, ...] masks does, so the ranks stay in step with each other and with
the single-process run: the gathered global batch sees the single process's masks, to the bit,
and the 2-rank run ends where the 1-process run ends with dropout on.

On one process the context does nothing (no mode is pushed): the single-process path is exactly
the code path it was. The rule reads only shapes, so it covers draws inside modules that lira
does not own; a random op inside the context whose first dimension is not the chunk's is passed
through unchanged and counted in :attr:`GlobalBatchDraws.unmatched` (tests assert there is none).

Not covered (documented in infra/README.md): CUDA's fused attention kernels draw their dropout
inside the kernel, not as a separate op, so with attention dropout on a GPU the ranks' attention
masks are their own; CUDA's fused dropout (``native_dropout``) is handled like the CPU path but was
not run here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
log = logging.getLogger(__name__)

# In-place draws into a tensor (bernoulli_ is what dropout lowers to on CPU).
_INPLACE = {aten.bernoulli_.float, aten.uniform_.default, aten.normal_.default, aten.exponential_.default,
            aten.random_.default}
# Factory draws: their first argument is the size.
_FACTORY = {aten.rand.default, aten.rand.generator, aten.randn.default, aten.randn.generator}
# Every other random op name, only to count what passes through unmatched.
_RANDOM_NAMES = ("bernoulli", "rand", "uniform", "normal", "exponential", "random_", "multinomial", "dropout",
                 "poisson", "geometric", "cauchy", "log_normal")


def _dense(t: torch.Tensor) -> bool:
    """True when ``t`` is a permutation of a contiguous tensor (what ``empty_like`` gives)."""
    like = _global_like(t, t.shape[0])
    return all(a == b for a, b, size in zip(like.stride(), t.stride(), t.shape) if size > 1)


def _global_like(t: torch.Tensor, n: int) -> torch.Tensor:
    """An empty tensor of ``t``'s shape with n rows and ``t``'s memory layout: the tensor one process
    draws into (dropout's noise is ``empty_like(input)``, e.g. the transposed output of attention),
    so that the generator fills it in the same order."""
    # (Not t.is_contiguous(): it ignores the strides of size-1 dims, which here say where the rows go.)
    # Outermost first. A size-1 dim (a rank's one-row chunk) has the stride of the dim just outside
    # it, where a view or transpose put it: on a tie it goes inside, as its rows do with n > 1.
    order = sorted(range(t.dim()), key=lambda d: (-t.stride(d), t.shape[d] == 1))
    shape = [n, *t.shape[1:]]
    base = torch.empty([shape[d] for d in order], dtype=t.dtype, device=t.device)
    return base.permute([order.index(d) for d in range(t.dim())])


class GlobalBatchDraws(TorchDispatchMode):
    """Random draws of chunk-shaped tensors become draws of the n-row tensor, chunk rows kept."""

    def __init__(self, n: int, start: int, stop: int):
        super().__init__()
        if not 0 <= start <= stop <= n:
            raise ValueError(f"chunk [{start}, {stop}) is not inside a batch of {n} rows")
        self.n, self.start, self.stop = n, start, stop
        self.matched = 0
        self.unmatched: list[str] = []

    def _chunk_shaped(self, shape: torch.Size | tuple | list) -> bool:
        return len(shape) >= 1 and int(shape[0]) == self.stop - self.start

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # torch's dispatch protocol
        kwargs = kwargs or {}
        if func in _INPLACE and self._chunk_shaped(args[0].shape) and _dense(args[0]):
            self.matched += 1
            out = args[0]
            full = _global_like(out, self.n)
            func(full, *args[1:], **kwargs)
            out.copy_(full[self.start : self.stop])
            return out
        if func in _FACTORY and self._chunk_shaped(args[0]):
            self.matched += 1
            full = func([self.n, *args[0][1:]], *args[1:], **kwargs)
            return full[self.start : self.stop].clone()
        if func is aten.native_dropout.default and len(args) > 2 and args[2] and self._chunk_shaped(args[0].shape):
            # CUDA's fused dropout: the mask of a ones tensor of the global shape, as the kernel
            # draws it for an input of that shape; the output as the kernel forms it.
            self.matched += 1
            x, p = args[0], float(args[1])
            _, mask_full = func(torch.ones((self.n, *x.shape[1:]), dtype=x.dtype, device=x.device), p, True)
            mask = mask_full[self.start : self.stop].contiguous()
            scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)
            return x.mul(mask).mul_(scale), mask
        name = func.overloadpacket.__name__
        if any(s in name for s in _RANDOM_NAMES) and "backward" not in name:
            self.unmatched.append(f"{func}{[tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args[:1]]}")
        return func(*args, **kwargs)


@contextmanager
def chunk_draws(n: int, start: int, stop: int) -> Iterator[GlobalBatchDraws]:
    """The rule for an explicit chunk (the pure form, testable without a process group)."""
    with GlobalBatchDraws(n, start, stop) as mode:
        yield mode
    _report_unmatched(mode.unmatched)


@contextmanager
def global_batch_draws(n: int, chunk: tuple[int, int] | None = None) -> Iterator[GlobalBatchDraws | None]:
    """Inside: this rank's forward over its chunk of an ``n``-row batch draws the batch's masks.

    ``chunk``: the rank's [start, stop) when it is not :func:`lira.distributed.chunk_bounds`'s (a
    rank without rows still draws, on a stand-in row, so that it consumes the RNG as the others
    do). A no-op (yields None) on one process.
    """
    from lira.distributed.env import world_size
    from lira.distributed.shard import chunk_bounds

    if world_size() == 1:
        yield None
        return
    start, stop = chunk if chunk is not None else chunk_bounds(n)
    with chunk_draws(n, start, stop) as mode:
        yield mode


_REPORTED: set[str] = set()


def _report_unmatched(ops: list[str]) -> None:
    """Warn, once per op and shape, about a random draw the rule passed through: that rank drew its
    own values there, so the N-rank run no longer ends where the 1-process run ends."""
    for op in dict.fromkeys(ops):
        if op not in _REPORTED:
            _REPORTED.add(op)
            log.warning("distributed: random op %s inside a global-batch forward is not chunk-shaped; its "
                        "values are this rank's own, not one process's (lira.distributed.draws)", op)
