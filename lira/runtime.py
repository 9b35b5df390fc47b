"""Process-wide runtime settings (threads, seeds) and per-stage cost accounting."""

from __future__ import annotations

import json
import os
import random
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lira.config import PathsParams, SharedParams

# Bounded native caches, set before torch creates its first oneDNN primitive (both are read then,
# not at `import torch`; lira.encoders imports this module; a value the user exported wins). oneDNN's primitive cache (default 1024)
# and PyTorch's ideep LRU of oneDNN computations (default 1024) keep one entry per matmul shape,
# and length-sorted batches of varying length bring a new shape at nearly every step: over
# train_arca's LoRA epoch they grew its RSS peak from ~1.6 to 2.26 GiB. A forward's and backward's
# own shapes fit in 32, so the epoch ran in the same time (bench/results/stage_memory_caps*.json;
# README, "Peak RSS of the process tree"), and a recreated primitive computes the same numbers.
NATIVE_CACHE_CAPACITY = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "32", "LRU_CACHE_CAPACITY": "32"}
for _name, _capacity in NATIVE_CACHE_CAPACITY.items():
    os.environ.setdefault(_name, _capacity)
del _name, _capacity


def configure_runtime(shared: SharedParams, torch: bool = True) -> None:
    """Threads and seeds for a stage. ``torch=False`` (a stage that never touches torch, e.g.
    build_dataset) skips importing it: torch's import is most of such a stage's start-up."""
    if torch:
        import torch as _torch

        _torch.set_num_threads(shared.threads)
    seed_everything(shared.seed, torch=torch)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def seed_everything(seed: int, torch: bool = True) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if torch:
        import torch as _torch

        _torch.manual_seed(seed)


_MALLOC_TRIM: list = []  # [glibc's malloc_trim or None], looked up once


def trim_heap() -> None:
    """Give the C allocator's free pages back to the OS (glibc ``malloc_trim(0)``; elsewhere a no-op).

    Batches of varying length allocate activations of new sizes at every step, and glibc keeps the
    freed chunks in its arenas instead of returning them: over train_arca's LoRA epoch on the sample
    RSS climbed from 1.0 to 2.5 GiB with no live tensor growing (fixed-length batches stay flat).
    Trimming after each batch brought that epoch's peak from 2.69 to 2.18 GiB; a varying-length
    training loop ran 30 batches in the same wall time with and without it (bench/stage_memory.py;
    README, "Peak RSS of the process tree").
    """
    if not _MALLOC_TRIM:
        import ctypes
        import ctypes.util

        fn = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            fn = getattr(libc, "malloc_trim", None)
        except OSError:
            pass
        if fn is not None:
            fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
        _MALLOC_TRIM.append(fn)
    if _MALLOC_TRIM[0] is not None:
        _MALLOC_TRIM[0](0)


def peak_rss_mb() -> float:
    """Peak RSS of this process or of its largest finished child (worker processes), in MB."""
    # ru_maxrss is in KiB on Linux; for RUSAGE_CHILDREN it is the largest waited-for descendant.
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024.0


@contextmanager
def stage_cost(name: str, root: Path, paths: PathsParams) -> Iterator[None]:
    """Record wall time and peak RSS of a stage in <metrics>/cost/<name>.json (read by evaluate)."""
    t0 = time.perf_counter()
    yield
    from lira import distributed
    from lira.io import write_json

    if not distributed.is_main():  # under torchrun rank 0 records it (its own RSS; the ranks' count beside)
        return
    cost = {"stage": name, "seconds": round(time.perf_counter() - t0, 3), "peak_rss_mb": round(peak_rss_mb(), 1)}
    if distributed.world_size() > 1:
        cost["ranks"] = distributed.world_size()
    write_json(root / paths.metrics / "cost" / f"{name}.json", cost)


def device(shared: SharedParams) -> str:
    """``shared.device`` resolved: "auto" becomes cuda when there is one."""
    import torch

    if shared.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if shared.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("shared.device is 'cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    return shared.device


def dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)
