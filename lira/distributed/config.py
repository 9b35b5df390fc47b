"""``shared.distributed``: how many processes a stage runs as, and how they talk."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lira.config_base import ConfigSection


class DistributedConfig(ConfigSection):
    nproc_per_node: int = Field(1, ge=1, le=64, description=(
        "processes per machine for the stages that scale out (critic_score, train_arca, train_lasr): with more "
        "than 1, `lira stage NAME` relaunches itself under torchrun; 1 = one plain process, as without this section"))
    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description=(
        "torch.distributed backend: auto = nccl when CUDA is available, else gloo (CPU)"))
    strategy: Literal["grads", "fsdp"] = Field("grads", description=(
        "how the trained modules are data-parallel under torchrun: grads = every rank holds a full copy and the "
        "gradients are summed over the ranks (lira.distributed.grads); fsdp = train_arca's LoRA-wrapped LRL encoder "
        "(shared.encoders.lrl.lora.enabled) is sharded with torch FSDP2 (fully_shard, one unit per transformer "
        "block), each rank holding 1/N of the backbone and its adapters, for backbones that do not fit one device; "
        "the adaptor, Actor and LaSR head stay replicated. On one process both are the plain path"))
    timeout_s: int = Field(1800, ge=10, le=86400, description=(
        "seconds a collective (a barrier after a sharded feature fill, a gradient all-reduce) waits for the "
        "other ranks before failing: a dead rank then stops the run instead of hanging it"))
