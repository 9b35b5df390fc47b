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


CHECKPOINT_FORMAT = "lira-checkpoint/1"


def encode_state(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """A training state -> (named tensors, a JSON-able tree that refers to them).

    What a trainer saves is nested dicts/lists/tuples of tensors, numpy arrays and scalars (module
    and optimizer state dicts, RNG states, history rows); each kind is tagged so that decoding gives
    back the same types: tuples stay tuples, integer dict keys (the optimizer's parameter ids) stay
    integers, NaN and inf survive (strict JSON has neither). Anything else is refused: no object
    is ever stored by reference to its class, so loading needs no pickle.
    """
    tensors: dict[str, torch.Tensor] = {}

    def enc(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            name = f"t{len(tensors)}"
            # a private contiguous copy: safetensors refuses views and shared storage
            tensors[name] = x.detach().cpu().contiguous().clone()
            return {"__tensor__": name}
        if isinstance(x, np.ndarray):
            if x.dtype == object:
                raise ValueError("checkpoint state: cannot store an object array")
            return {"__ndarray__": enc(x.tolist()), "dtype": x.dtype.str, "shape": list(x.shape)}
        if isinstance(x, bool) or x is None or isinstance(x, str):
            return x
        if isinstance(x, int | np.integer):
            return int(x)
        if isinstance(x, float | np.floating):
            x = float(x)
            return x if np.isfinite(x) else {"__float__": repr(x)}
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x) and not any(k.startswith("__") for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {"__items__": [[enc(k), enc(v)] for k, v in x.items()]}
        raise ValueError(f"checkpoint state: cannot store a {type(x).__name__}")

    return tensors, enc(obj)


def decode_state(tensors: dict[str, torch.Tensor], tree: Any) -> Any:
    """The inverse of :func:`encode_state`; a malformed tree raises ValueError."""

    def dec(x: Any) -> Any:
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            return x
        if "__tensor__" in x:
            if x["__tensor__"] not in tensors:
                raise ValueError(f"checkpoint refers to a missing tensor {x['__tensor__']!r}")
            return tensors[x["__tensor__"]]
        if "__ndarray__" in x:
            return np.array(dec(x["__ndarray__"]), dtype=np.dtype(x["dtype"])).reshape(x["shape"])
        if "__float__" in x:
            if x["__float__"] not in ("nan", "inf", "-inf"):
                raise ValueError(f"checkpoint: bad float {x['__float__']!r}")
            return float(x["__float__"])
        if "__tuple__" in x:
            return tuple(dec(v) for v in x["__tuple__"])
        if "__items__" in x:
            return {dec(k): dec(v) for k, v in x["__items__"]}
        return {k: dec(v) for k, v in x.items()}

    return dec(tree)


class Checkpointer:
    """One safetensors file per run key, replaced atomically at the end of each epoch.

    The file holds the state's tensors; its header metadata holds the rest of the state as JSON
    (:func:`encode_state`) and the sha256 of the tensor data, so nothing is unpickled on load and a
    damaged file is detected. A checkpoint that cannot be read is moved aside with a warning naming
    it, and the run restarts from scratch. A killed run restarts from its last finished epoch;
    because the RNG states are saved too, it ends exactly where an uninterrupted run would.
    """

    def __init__(self, folder: str | Path, key: str):
        self.path = Path(folder) / f"{key}.safetensors"

    def load(self) -> dict[str, Any] | None:
        from lira.distributed import barrier

        state, error = None, None
        if self.path.exists():
            try:
                state = self._read()
            except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, it is not resumable
                error = e
        barrier()  # under torchrun every rank has read the file before rank 0 may move it aside
        if error is not None:
            self.discard(f"unreadable checkpoint ({type(error).__name__}: {error})")
        return state

    def _read(self) -> dict[str, Any]:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
        if _tensors_sha256(tensors) != meta.get("tensors_sha256"):
            raise ValueError("tensor data does not match its recorded sha256")
        state = decode_state(tensors, json.loads(meta["state"]))
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
            raise ValueError("no epoch in the checkpoint state")  # noqa: TRY004 - load() reports any error alike
        return state

    def save(self, state: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        tensors, tree = encode_state(state)
        meta = {"format": CHECKPOINT_FORMAT, "state": json.dumps(tree, allow_nan=False),
                "tensors_sha256": _tensors_sha256(tensors)}
        with atomic_path(self.path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    def discard(self, reason: str) -> None:
        from lira.distributed import barrier, is_main
        from lira.integrity import move_aside

        if is_main():  # every rank reads the same file and finds the same fault: one moves it
            move_aside(self.path, reason)
        barrier()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


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
    # A checkpoint that decodes but does not fit (another shape, a missing part) must leave the
    # objects as they were: training then starts from scratch, not from a half-loaded state.
    initial = {name: copy.deepcopy(obj.state_dict()) for name, obj in stateful.items()}
    initial_rng = rng_state(gen)
    try:
        for name, obj in stateful.items():
            obj.load_state_dict(ck[name])
        stopper.load_state_dict(ck["stopper"])
        set_rng_state(ck["rng"], gen)
        return list(ck["history"]), (epochs if ck.get("stopped") else ck["epoch"] + 1), ck["epoch"]
    except Exception as e:  # noqa: BLE001 - any misfit means the same: not resumable
        for name, obj in stateful.items():
            obj.load_state_dict(initial[name])
        stopper.load_state_dict(EarlyStopping(stopper.patience, stopper.mode).state_dict())
        set_rng_state(initial_rng, gen)
        checkpointer.discard(f"checkpoint does not fit this run ({type(e).__name__}: {e})")
        return [], 0, None


def save_checkpoint(
    checkpointer: Checkpointer | None, epoch: int, stateful: dict[str, Any], stopper: EarlyStopping,
    gen: torch.Generator, history: list[dict[str, float]], stopped: bool,
) -> None:
    if checkpointer is None:
        return
    from lira.distributed import barrier, is_main

    # Every rank holds the same state (lira.distributed): rank 0 writes it, the others wait for it,
    # so a rank that dies later finds the checkpoint complete, for any world size to resume from.
    # Every rank builds it: a sharded module's full tensors are gathered from all (lira.distributed.fsdp).
    state = {"epoch": epoch, **{k: v.state_dict() for k, v in stateful.items()}, "stopper": stopper.state_dict(),
             "rng": rng_state(gen), "history": history, "stopped": stopped}
    if is_main():
        checkpointer.save(state)
    barrier()


class Interrupt(Exception):
    """Raised by a test's epoch callback to simulate a kill between epochs."""
