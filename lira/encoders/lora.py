"""LoRA adapters on an encoder: attach, read and write their weights, fingerprint a saved adapter.

An adapter folder is what peft writes and reads (``adapter_config.json`` +
``adapter_model.safetensors``), so any peft-aware tool can load lira's adapters. lira writes it
from a state dict rather than from a live peft model: trainers keep the best epoch's LoRA weights
as tensors (early stopping, checkpoints), and the stage that saves them may no longer hold the
model they were trained in.

Features computed through an adapter are cached under a key that includes the adapter's content
hash (:func:`adapter_sha256`), never its path: the same weights share a cache, new weights never
read stale features.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from lira.io import atomic_dir

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def lora_config(r: int, alpha: float, dropout: float, target_modules: Sequence[str]):  # noqa: ANN201 - peft.LoraConfig
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), bias="none")


def lora_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights of a peft-wrapped model (detached copies; peft's key names)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def load_lora_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy adapter weights into a peft-wrapped model; a key that does not fit is an error."""
    from peft import set_peft_model_state_dict

    res = set_peft_model_state_dict(model, state)
    bad = [k for k in getattr(res, "unexpected_keys", []) if "lora_" in k]
    if bad:
        raise ValueError(f"LoRA state does not fit this model: unexpected keys {bad[:3]}...")


def save_adapter(folder: str | Path, config, state: dict[str, torch.Tensor]) -> Path:  # noqa: ANN001 - peft.LoraConfig
    """Write a peft adapter folder atomically; returns ``folder``."""
    from safetensors.torch import save_file

    with atomic_dir(folder) as tmp:
        config.save_pretrained(str(tmp))
        cfg_path = tmp / CONFIG_FILE
        cfg_path.write_text(_canonical_config(cfg_path.read_bytes()), encoding="utf-8")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS_FILE))
    return Path(folder)


def adapter_sha256(folder: str | Path) -> str:
    """Content hash of a saved adapter (its config and weights): what feature caches key on."""
    folder = Path(folder)
    h = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        path = folder / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; not a peft LoRA adapter folder")
        h.update(name.encode())
        data = path.read_bytes()
        h.update(_canonical_config(data).encode() if name == CONFIG_FILE else data)
    return h.hexdigest()


def _canonical_config(raw: bytes) -> str:
    """peft keeps target_modules as a set, so its JSON order changes from process to process (string
    hashing is randomised): sort it, and the keys, so equal adapters hash equal. peft also records
    where the base model was loaded from on the training machine (``base_model_name_or_path``): a
    machine path, which made equal adapters hash differently from two roots and would travel into
    registered model folders. The adapter is merged into the encoder its model folder names by spec,
    so that field is dropped."""
    cfg = json.loads(raw)
    if "base_model_name_or_path" in cfg:
        cfg["base_model_name_or_path"] = None
    for k, v in cfg.items():
        if k.endswith("modules") and isinstance(v, list) and all(isinstance(x, str) for x in v):
            cfg[k] = sorted(v)
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"

