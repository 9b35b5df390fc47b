"""``lira stage NAME`` under several processes: relaunch through torchrun, or check the stage can.

With ``shared.distributed.nproc_per_node`` > 1 (or ``lira run --nproc N``, which sets
``LIRA_NPROC`` for the stages DVC starts), a plain ``lira stage NAME`` of a stage that scales out
re-executes itself as ``python -m torch.distributed.run --nproc-per-node N -m lira stage NAME ...``;
started by torchrun already, it just runs. Stages that do not scale out (they call LLM servers or
write many tables) run as one process whatever is asked.
"""

from __future__ import annotations

import os
import sys

# The stages whose work is sharded over ranks (encoding, training); the rest run on one process.
DISTRIBUTED_STAGES = ("critic_score", "train_arca", "train_lasr")
NPROC_ENV = "LIRA_NPROC"


def requested_nproc(configured: int) -> int:
    raw = os.environ.get(NPROC_ENV)
    if raw is None or raw == "":
        return configured
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{NPROC_ENV}={raw!r}: expected a positive integer (processes per node)")
    return int(raw)


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command line that runs ``lira <argv>`` as ``nproc`` local ranks."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "lira", *argv]


def check_stage(name: str) -> None:
    """Refuse, under torchrun, a stage that would only repeat its work on every rank."""
    from lira.config import ConfigError
    from lira.distributed.env import launched

    if launched() and name not in DISTRIBUTED_STAGES:
        raise ConfigError(f"stage {name!r} does not run under torchrun (each rank would redo it); the stages that "
                         f"scale out are {', '.join(DISTRIBUTED_STAGES)}: run {name!r} as one process")
