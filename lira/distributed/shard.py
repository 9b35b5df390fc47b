"""Which part of a batch or a list is this rank's: contiguous chunks, in rank order.

Contiguous (not DistributedSampler's strided ``i::world``) so that concatenating the ranks' chunks
in rank order gives back the batch in its original order: the gathered global batch is then the
very batch a single process would see, and every loss over it is the same number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from lira.distributed.env import rank, world_size

T = TypeVar("T")


def chunk_bounds(n: int, world: int | None = None, r: int | None = None) -> tuple[int, int]:
    """[start, stop) of rank ``r``'s chunk of ``n`` items (sizes differ by at most 1, first ranks larger)."""
    world = world_size() if world is None else world
    r = rank() if r is None else r
    base, extra = divmod(n, world)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def local_rows(x: T) -> T:
    """This rank's contiguous chunk of a tensor, array or list (the whole of it on one process)."""
    if world_size() == 1:
        return x
    start, stop = chunk_bounds(len(x))  # type: ignore[arg-type]
    return x[start:stop]  # type: ignore[index]


def local_items(items: Sequence[T]) -> list[T]:
    return list(local_rows(list(items)))
