"""The process group, read from torchrun's environment; without torchrun every helper is a no-op.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`init_from_env`
joins that group once per process (gloo on CPU, nccl on CUDA). Nothing here starts processes:
torchrun (or a Kubernetes / Prefect launcher around it) does.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported on first use: every stage calls is_main(), and a stage that never needs torch
# (build_dataset) must not pay its import. A process that has not imported torch.distributed
# cannot be in a process group, so active() is False without importing it.


def _dist():
    import torch.distributed as dist

    return dist


def launched() -> bool:
    """True when this process is one of several ranks that torchrun started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return _dist().get_world_size() if active() else 1


def rank() -> int:
    return _dist().get_rank() if active() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if active() else 0


def is_main() -> bool:
    return rank() == 0


def backend_for(choice: str = "auto") -> str:
    import torch

    if choice == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if choice == "nccl" and not torch.cuda.is_available():
        raise RuntimeError("shared.distributed.backend is 'nccl' but no CUDA device is available; use 'gloo' or 'auto'")
    return choice


def init_from_env(backend: str = "auto", timeout_s: int = 1800) -> bool:
    """Join torchrun's process group (once); False (and nothing done) outside torchrun."""
    if not launched():
        return False
    import torch

    dist = _dist()
    if dist.is_initialized():
        return True
    name = backend_for(backend)
    if name == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(name, timeout=timedelta(seconds=timeout_s))
    return True


def shutdown() -> None:
    if active() or ("torch.distributed" in sys.modules and _dist().is_initialized()):
        _dist().destroy_process_group()


def barrier() -> None:
    if active():
        _dist().barrier()


def comm_device() -> torch.device:
    """Where tensors must live for a collective: the rank's GPU under nccl, else the CPU."""
    import torch

    if active() and _dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def threads_per_rank(threads: int) -> int:
    """Each rank's share of ``shared.threads`` when several ranks share one machine."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if launched() else 1
    return max(1, threads // local)
