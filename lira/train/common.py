"""What every trainer shares: resumable atomic checkpoints, early stopping, RNG state."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lira.io import atomic_path


def run_key(*parts: Any) -> str:
    """A stable hash of everything that determines a training run (params, data fingerprints)."""
    blob = json.dumps([code_fingerprint(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def code_fingerprint() -> str:
    """Hash of the training code: a checkpoint written by other code is never resumed."""
    import lira

    base = Path(lira.__file__).parent
    h = hashlib.sha256()
    for sub in ("train", "arca", "lasr", "losses"):
        for f in sorted((base / sub).glob("*.py")):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "gen": gen.get_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["gen"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


class Checkpointer:
    """One file per run key, replaced atomically at the end of each epoch.

    A killed run restarts from its last finished epoch; because the RNG states are saved too, it
    ends exactly where an uninterrupted run would.
    """

    def __init__(self, folder: str | Path, key: str):
        self.path = Path(folder) / f"{key}.pt"

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

    def save(self, state: dict[str, Any]) -> None:
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without improvement; remembers the best weights."""

    patience: int
    mode: str = "min"  # "min" or "max"
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict[str, Any] | None = field(default=None, repr=False)

    def step(self, value: float, epoch: int, state: dict[str, Any]) -> bool:
        """Record one epoch's dev value; returns True when training should stop."""
        better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_state = copy.deepcopy(state)
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "best_state": self.best_state}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs, self.best_state = s["best"], s["best_epoch"], s["bad_epochs"], s["best_state"]


def restore(
    checkpointer: Checkpointer | None, stateful: dict[str, Any], stopper: EarlyStopping, gen: torch.Generator, epochs: int
) -> tuple[list[dict[str, float]], int, int | None]:
    """Load the last checkpoint into ``stateful`` (name -> object with load_state_dict).

    Returns (history, first epoch to run, epoch resumed from or None); a run that had stopped early
    resumes as finished.
    """
    ck = checkpointer.load() if checkpointer is not None else None
    if ck is None:
        return [], 0, None
    for name, obj in stateful.items():
        obj.load_state_dict(ck[name])
    stopper.load_state_dict(ck["stopper"])
    set_rng_state(ck["rng"], gen)
    return ck["history"], (epochs if ck.get("stopped") else ck["epoch"] + 1), ck["epoch"]


def save_checkpoint(
    checkpointer: Checkpointer | None, epoch: int, stateful: dict[str, Any], stopper: EarlyStopping,
    gen: torch.Generator, history: list[dict[str, float]], stopped: bool,
) -> None:
    if checkpointer is None:
        return
    checkpointer.save({"epoch": epoch, **{k: v.state_dict() for k, v in stateful.items()}, "stopper": stopper.state_dict(),
                       "rng": rng_state(gen), "history": history, "stopped": stopped})


class Interrupt(Exception):
    """Raised by a test's epoch callback to simulate a kill between epochs."""
