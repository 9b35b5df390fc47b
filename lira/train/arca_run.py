"""Arca on the pipeline's tables: its inputs, the resumable fit, the tuned LoRA adapter, the saved
folder. What train_arca, train_lasr (which refits Arca per ablation) and evaluate share.

Each function takes the ``shared`` section (paths, languages, seed, s_feat, the encoders) and, to
train, Arca's own config; never the whole params."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lira.arca.config import ArcaConfig
from lira.config import ConfigError, SharedParams
from lira.io import write_json
from lira.train.arca import ArcaData, ArcaResult, train_arca
from lira.train.common import Checkpointer, run_key
from lira.train.inputs import CandidateTable, actor_inputs, kind_of, selection
from lira.train.live import LiveEncoderPath, ReleasedPathError
from lira.train.tables import candidate_features, candidates_with_scores, lang_index, prepared, text_features

LORA_DIR = "lora_lrl"  # the LRL encoder's LoRA adapter, inside an Arca or a model folder

log = logging.getLogger(__name__)


def train_precision(requested: str, device: str) -> str:
    """``shared.encoders.lrl.lora.train_precision`` on ``device``: bf16 is CPU autocast (what was
    measured, bench/lora_precision.py), so on another device the LoRA forwards run fp32 - said in
    the log, as the default (bf16) must not stop a run that set ``shared.device: cuda``."""
    if requested == "bf16" and device != "cpu":
        log.warning("shared.encoders.lrl.lora.train_precision bf16 is CPU bf16 autocast; on device %s the LoRA "
                    "forwards run fp32", device)
        return "fp32"
    return requested


@dataclass
class ArcaInputs:
    texts: pd.DataFrame
    ct: CandidateTable
    lr_slots: np.ndarray
    cand_slots: np.ndarray
    lang: np.ndarray

    def fingerprint(self) -> str:
        return run_key(self.ct.text_ids, self.ct.agents, self.ct.text.tolist(), np.nan_to_num(self.ct.s).round(4).tolist(),
                       np.nan_to_num(self.ct.sim).round(4).tolist(), self.texts["split"].tolist())


def load_inputs(shared: SharedParams, root: Path, progress: bool = True) -> ArcaInputs:
    """The texts, their candidates with critic scores, and the frozen-encoder features of both paths."""
    texts = prepared(shared, root, "texts")
    ct = candidates_with_scores(shared, root, texts)
    lr_slots, _ = text_features(shared, root, texts, progress="features lrl" if progress else None)
    cand_slots = candidate_features(shared, root, ct, texts, progress="features en" if progress else None)
    return ArcaInputs(texts, ct, lr_slots, cand_slots, lang_index(shared, texts))


def arca_data(inputs: ArcaInputs, cfg: ArcaConfig) -> ArcaData:
    feats, mask, reward = actor_inputs(inputs.ct, cfg)
    split = inputs.texts["split"].to_numpy()
    return ArcaData(
        lang=torch.tensor(inputs.lang, dtype=torch.long),
        lr=torch.from_numpy(inputs.lr_slots),
        cand=torch.from_numpy(inputs.cand_slots),
        feats=feats,
        mask=mask,
        reward=reward,
        train_idx=torch.from_numpy(np.flatnonzero(split == "train")),
        dev_idx=torch.from_numpy(np.flatnonzero(split == "dev")),
        src_key=torch.as_tensor(text_ids(inputs.texts["text"].tolist()), dtype=torch.long),
        cand_key=torch.as_tensor(text_ids(inputs.ct.text.ravel().tolist()), dtype=torch.long).reshape(inputs.ct.text.shape),
    )


def text_ids(texts: list[str | None]) -> list[int]:
    """Equal texts -> equal ids (first-seen order), None -> -1: what the ranking loss's duplicate
    masking and duplicate-free batches compare."""
    ids: dict[str, int] = {}
    return [-1 if t is None else ids.setdefault(t, len(ids)) for t in texts]


def fit(shared: SharedParams, root: Path, inputs: ArcaInputs, cfg: ArcaConfig, progress: bool = True) -> tuple[ArcaResult, ArcaData]:
    """Train (or resume, or reload a finished) Arca under ``cfg`` (params' ``train_arca`` or an
    ablation's variant of it). The checkpoint key is what determines the run, so ablations that
    change nothing Arca sees (no_queue, drop_english) reuse the full run."""
    data = arca_data(inputs, cfg)
    lora_lr = shared.encoder("lrl").lora.lr
    key = run_key("arca", cfg.model_dump(mode="json"), shared.seed, lora_lr, shared.s_feat,
                  shared.resolved_encoders(), inputs.fingerprint())
    ck = Checkpointer(root / shared.paths.cache / "checkpoints" / "arca", key)
    # a frozen-encoder run has no adapters to reload: its checkpoint is read once, by the trainer
    finished = finished_lora_state(ck, cfg) if shared.encoder("lrl").lora.enabled else None

    def run(live: LiveEncoderPath | None) -> ArcaResult:
        return train_arca(data, cfg, len(shared.languages), shared.seed, lora_lr=lora_lr, checkpointer=ck, live=live,
                          progress=progress, freeze_lrl=lambda lv: tuned_lrl_slots(shared, root, inputs, lv, progress))

    try:
        return run(live_path(shared, root, inputs, finished_lora=finished)), data
    except ReleasedPathError:
        if finished is None:
            raise
        # the finished checkpoint did not fit after all (restore discarded it): train for real
        return run(live_path(shared, root, inputs)), data


def tuned_lrl_slots(shared: SharedParams, root: Path, inputs: ArcaInputs, live: LiveEncoderPath, progress: bool = True) -> torch.Tensor:
    """The LRL slots of every text through the adapter as the LoRA epochs left it, computed as
    inference computes them - the adapter saved, merged, run on the encoder's inference engine
    (:func:`with_lrl_adapter`) - and cached by the adapter's hash. The later epochs train on what
    train_lasr and evaluate read back, and when the best epoch's adapter is this one (the usual
    case) the stage's :func:`with_lrl_adapter` finds them cached instead of encoding every text a
    second time (a refresh through the live fp32 path took longer than that encoding). The live
    encoder is released first: its backbone and the merged one are never loaded together."""
    import tempfile

    from lira.encoders import release_encoders
    from lira.encoders.lora import save_adapter

    state, config = live.state_dict(), live.lora_config
    live.release()
    cache = root / shared.paths.cache
    cache.mkdir(parents=True, exist_ok=True)
    # Loading the merged encoder (transformers' and peft's module init) draws from the global RNG,
    # which the epochs after this one use for dropout: forked, a run is the same whether these
    # features were computed now or found in the cache.
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []), \
            tempfile.TemporaryDirectory(prefix="lora-after-epochs-", dir=cache) as tmp:
        adapter = save_adapter(Path(tmp) / LORA_DIR, config, state)
        slots = with_lrl_adapter(shared, root, inputs, adapter, progress).lr_slots
    release_encoders()
    return torch.from_numpy(slots)


def finished_lora_state(ck: Checkpointer, cfg: ArcaConfig) -> dict[str, torch.Tensor] | None:
    """The LoRA state of the checkpoint when it holds a finished run (stopped early or at its last
    epoch), else None (no checkpoint, or one to resume training from)."""
    state = ck.load()
    if not state or "lora" not in state:
        return None
    return state["lora"] if state.get("stopped") or state["epoch"] + 1 >= cfg.epochs else None


def live_path(shared: SharedParams, root: Path, inputs: ArcaInputs,
              finished_lora: dict[str, torch.Tensor] | None = None) -> LiveEncoderPath | None:
    """The LRL encoder with fresh LoRA adapters (seeded), or None when LoRA is off.

    ``finished_lora``: a finished run's adapters (:func:`finished_lora_state`): the path then holds
    them and the LoRA config alone (:meth:`LiveEncoderPath.from_state`), and no encoder is loaded."""
    from lira.distributed.fsdp import check_strategy, shard_encoder

    lora = shared.encoder("lrl").lora
    check_strategy(shared.distributed.strategy, lora.enabled)
    if not lora.enabled:
        return None
    kinds = inputs.texts["role"].map(kind_of).tolist()
    if finished_lora is not None:
        from lira.encoders.lora import lora_config
        from lira.runtime import device

        return LiveEncoderPath.from_state(finished_lora, lora_config(lora.r, lora.alpha, lora.dropout, lora.target_modules),
                                          inputs.texts["text"].tolist(), kinds, shared.s_feat,
                                          precision=train_precision(lora.train_precision, device(shared)))
    from lira.encoders import Encoder, EncoderSettings, cache_dir, release_encoders

    # The frozen encoders that filled the feature cache (load_inputs) are not needed while the LoRA
    # copy trains; kept, they stayed resident through the epoch (+1.5 GiB in a cold run's train_arca).
    release_encoders()
    from lira.runtime import device

    # Its own instance: the shared frozen encoder (lira.encoders.load_encoder) must stay untouched.
    enc = Encoder(EncoderSettings.of(shared.encoder("lrl")), cache_dir(shared, root) / "models", device=device(shared))
    torch.manual_seed(shared.seed)  # LoRA's A matrices are drawn at random
    try:
        enc.add_lora(lora.r, lora.alpha, lora.dropout, lora.target_modules)
    except ValueError as e:
        raise ConfigError(f"shared.encoders.lrl.lora.target_modules: {e}") from None
    if lora.gradient_checkpointing:
        enc.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    shard_encoder(enc.model, shared.distributed.strategy)  # strategy fsdp, under torchrun
    return LiveEncoderPath(enc, inputs.texts["text"].tolist(), kinds, shared.s_feat,
                           precision=train_precision(lora.train_precision, str(enc.device)))


def save_lora(folder: Path, result: ArcaResult) -> Path | None:
    """Write the tuned adapter to ``folder/lora_lrl`` (peft's format); None when LoRA was off."""
    if result.lora is None:
        return None
    from lira.encoders.lora import save_adapter

    return save_adapter(folder / LORA_DIR, result.lora_config, result.lora)


def with_lrl_adapter(shared: SharedParams, root: Path, inputs: ArcaInputs, adapter: Path | None, progress: bool = True) -> ArcaInputs:
    """``inputs`` with the LRL features recomputed through a tuned adapter (cached by its hash)."""
    if adapter is None:
        return inputs
    slots, _ = text_features(shared, root, inputs.texts, progress="features lrl+lora" if progress else None, adapter=adapter)
    return replace(inputs, lr_slots=slots)


def actor_probs(result: ArcaResult, data: ArcaData) -> np.ndarray:
    with torch.no_grad():
        return result.actor.log_probs(data.feats, data.mask).exp().numpy()


def selection_frame(inputs: ArcaInputs, probs: np.ndarray) -> pd.DataFrame:
    ct = inputs.ct
    choice, fallback = selection(ct, probs)
    rows = []
    for i, tid in enumerate(ct.text_ids):
        c = choice[i]
        rows.append({
            "text_id": tid,
            "lang": inputs.texts["lang"].iloc[i],
            "agent": ct.agents[c] if c >= 0 else None,
            "translation": ct.text[i, c] if c >= 0 else None,
            "prob": float(probs[i, c]) if c >= 0 else float("nan"),
            "fallback_quarantined": bool(fallback[i]),
        })
    return pd.DataFrame(rows)


def clean_preference(ct: CandidateTable, probs: np.ndarray) -> dict[str, float]:
    """How often the Actor's greedy pick (gate ignored) is a clean candidate when a planted one competes."""
    planted = np.vectorize(lambda x: x is not None and x != "clean")(ct.planted)
    clean = np.vectorize(lambda x: x == "clean")(ct.planted) & ct.valid
    contested = clean.any(1) & (planted & ct.valid).any(1)
    if not contested.any():
        return {"contested_texts": 0}
    pick = np.where(ct.valid, probs, -np.inf).argmax(1)
    rate = float(clean[np.arange(len(pick)), pick][contested].mean())
    chance = float((clean.sum(1) / ct.valid.sum(1).clip(min=1))[contested].mean())
    return {"contested_texts": int(contested.sum()), "actor_picks_clean": rate, "random_picks_clean": chance}


def save_arca(folder: Path, result: ArcaResult, data: ArcaData, shared: SharedParams, inputs: ArcaInputs) -> Path | None:
    """Write Arca's modules, each with its own config (and the LoRA adapter, whose path is returned if any)."""
    from safetensors.torch import save_file

    from lira.encoders.lora import adapter_sha256
    from lira.io import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    adapter = save_lora(folder, result)
    for name, module in (("adaptors", result.adaptors), ("actor", result.actor)):
        with atomic_path(folder / f"{name}.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp))
    adaptors = result.adaptors.config()
    write_json(folder / "config.json", {
        **adaptors, "actor_features": result.actor.n_features, "actor_hidden": result.actor.hidden,
        "s_feat": shared.s_feat, "languages": shared.languages, "agents": inputs.ct.agents,
        "encoders": shared.resolved_encoders(), "best_epoch": result.best_epoch,
        "lora_lrl": {"path": LORA_DIR, "sha256": adapter_sha256(adapter)} if adapter else None,
    })
    return adapter
