"""Scale-out on torch.distributed: stages run unchanged under ``torchrun --nproc-per-node N``.

* :mod:`~lira.distributed.env`: the process group from torchrun's environment (no-op without it);
* :mod:`~lira.distributed.shard`: which rows of a batch or list are this rank's;
* :mod:`~lira.distributed.gather`: all-gather with the gradient through the local shard;
* :mod:`~lira.distributed.grads`: the data-parallel gradient all-reduce;
* :mod:`~lira.distributed.fsdp`: FSDP2 sharding of the live LoRA encoder (``strategy: fsdp``);
* :mod:`~lira.distributed.draws`: dropout masks drawn for the global batch (rank-invariant);
* :mod:`~lira.distributed.outputs`: rank-0-only atomic outputs;
* :mod:`~lira.distributed.launch`: ``lira stage`` relaunching itself under torchrun.

On one process every helper returns its input or does nothing, so the single-process path is the
code path it was.
"""

import importlib
from typing import Any

# Lazy: lira.config imports DistributedConfig, and `lira --help` must not pay for importing torch.
_HOME = {
    "DistributedConfig": "config",
    **dict.fromkeys(["active", "barrier", "init_from_env", "is_main", "launched", "local_rank", "rank", "shutdown",
                     "world_size"], "env"),
    **dict.fromkeys(["all_gather_no_grad", "all_gather_rows", "all_gather_with_grad"], "gather"),
    **dict.fromkeys(["broadcast_parameters", "sync_gradients"], "grads"),
    "global_batch_draws": "draws",
    **dict.fromkeys(["on_main", "output_dir"], "outputs"),
    **dict.fromkeys(["chunk_bounds", "local_items", "local_rows"], "shard"),
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'lira.distributed' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lira.distributed.{_HOME[name]}"), name)


__all__ = [
    "DistributedConfig",
    "active",
    "all_gather_no_grad",
    "all_gather_rows",
    "all_gather_with_grad",
    "barrier",
    "broadcast_parameters",
    "chunk_bounds",
    "global_batch_draws",
    "init_from_env",
    "is_main",
    "launched",
    "local_items",
    "local_rank",
    "local_rows",
    "on_main",
    "output_dir",
    "rank",
    "shutdown",
    "sync_gradients",
    "world_size",
]
