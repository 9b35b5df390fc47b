"""Stage 4, train_arca: the Actor picks a translation per text; the shared adaptor anchors to English.

Reads the prepared texts, the candidates and their critic scores, and cached frozen-encoder
features; writes ``<paths.arca>/`` (adaptors.safetensors, actor.safetensors, config.json,
selected.parquet, and with ``shared.encoders.lrl.lora.enabled`` the tuned LoRA adapter in
``lora_lrl/``), ``<paths.metrics>/arca.json`` and ``<paths.plots>/arca_curve.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lira.config import ConfigError, Params
from lira.io import write_json, write_parquet, write_text
from lira.stages.common import candidate_features, candidates_with_scores, lang_index, prepared, text_features
from lira.train.arca import ArcaConfig, ArcaData, ArcaResult, adaptor_width, build_modules, dev_report, train_arca
from lira.train.common import Checkpointer, run_key
from lira.train.inputs import CandidateTable, actor_inputs, kind_of, selection
from lira.train.live import LiveEncoderPath

LORA_DIR = "lora_lrl"  # the LRL encoder's LoRA adapter, inside an Arca or a model folder


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


def prepare(params: Params, root: Path, progress: bool = True) -> ArcaInputs:
    texts = prepared(params, root, "texts")
    ct = candidates_with_scores(params, root, texts)
    lr_slots, _ = text_features(params, root, texts, progress="features lrl" if progress else None)
    cand_slots = candidate_features(params, root, ct, texts, progress="features en" if progress else None)
    return ArcaInputs(texts, ct, lr_slots, cand_slots, lang_index(params, texts))


def arca_config(params: Params, **override) -> ArcaConfig:
    c = params.train_arca
    cfg = ArcaConfig(
        d=c.d, residual=c.residual, hidden=c.adaptor_hidden, dropout=c.dropout, shared=c.shared_adaptor, stop_grad_en=c.stop_grad_en,
        actor_hidden=c.actor_hidden, baseline=c.baseline, eta=c.eta, lambda_var=c.lambda_var, var_target=c.var_target,
        lambda_nce=c.lambda_nce, nce_temperature=c.nce_temperature, lr=c.lr,
        weight_decay=c.weight_decay, epochs=c.epochs, batch_size=c.batch_size, patience=c.patience, seed=params.shared.seed,
        lora_lr=params.encoder("lrl").lora.lr,
    )
    for k, v in override.items():
        setattr(cfg, k, v)
    return cfg


def arca_data(inputs: ArcaInputs, params: Params, use_llm: bool | None = None, use_emb: bool | None = None) -> ArcaData:
    feats, mask, reward = actor_inputs(inputs.ct, params, use_llm, use_emb)
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
    )


def fit(
    params: Params, root: Path, inputs: ArcaInputs, use_llm: bool | None = None,
    use_emb: bool | None = None, progress: bool = True, **cfg_override,
) -> tuple[ArcaResult, ArcaData]:
    """Train (or resume, or reload a finished) Arca. The checkpoint key is what determines the run,
    so ablations that change nothing Arca sees (no_queue, drop_english) reuse the full run."""
    data = arca_data(inputs, params, use_llm, use_emb)
    cfg = arca_config(params, **cfg_override)
    key = run_key("arca", cfg.__dict__, params.train_arca.model_dump(), params.shared.s_feat,
                  params.resolved()["shared"]["encoders"], inputs.fingerprint(), use_llm, use_emb)
    ck = Checkpointer(root / params.shared.paths.cache / "checkpoints" / "arca", key)
    live = live_path(params, root, inputs)
    return train_arca(data, cfg, len(params.shared.languages), checkpointer=ck, live=live, progress=progress), data


def live_path(params: Params, root: Path, inputs: ArcaInputs) -> LiveEncoderPath | None:
    """The LRL encoder with fresh LoRA adapters (seeded), or None when LoRA is off."""
    lora = params.encoder("lrl").lora
    if not lora.enabled:
        return None
    from lira.encoders import Encoder, cache_dir, settings_from_params
    from lira.runtime import device

    # Its own instance: the shared frozen encoder (lira.encoders.load_encoder) must stay untouched.
    enc = Encoder(settings_from_params(params.encoder("lrl")), cache_dir(params, root) / "models", device=device(params))
    torch.manual_seed(params.shared.seed)  # LoRA's A matrices are drawn at random
    try:
        enc.add_lora(lora.r, lora.alpha, lora.dropout, lora.target_modules)
    except ValueError as e:
        raise ConfigError(f"shared.encoders.lrl.lora.target_modules: {e}") from None
    if lora.gradient_checkpointing:
        enc.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    kinds = inputs.texts["role"].map(kind_of).tolist()
    return LiveEncoderPath(enc, inputs.texts["text"].tolist(), kinds, params.shared.s_feat)


def save_lora(folder: Path, result: ArcaResult) -> Path | None:
    """Write the tuned adapter to ``folder/lora_lrl`` (peft's format); None when LoRA was off."""
    if result.lora is None:
        return None
    from lira.encoders.lora import save_adapter

    return save_adapter(folder / LORA_DIR, result.lora_config, result.lora)


def with_lrl_adapter(params: Params, root: Path, inputs: ArcaInputs, adapter: Path | None, progress: bool = True) -> ArcaInputs:
    """``inputs`` with the LRL features recomputed through a tuned adapter (cached by its hash)."""
    if adapter is None:
        return inputs
    slots, _ = text_features(params, root, inputs.texts, progress="features lrl+lora" if progress else None, adapter=adapter)
    return replace(inputs, lr_slots=slots)


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


def actor_probs(result: ArcaResult, data: ArcaData) -> np.ndarray:
    with torch.no_grad():
        return result.actor.log_probs(data.feats, data.mask).exp().numpy()


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


def save_arca(folder: Path, result: ArcaResult, data: ArcaData, params: Params, inputs: ArcaInputs) -> Path | None:
    """Write Arca's modules and config (and the LoRA adapter, whose path is returned if any)."""
    from safetensors.torch import save_file

    from lira.encoders.lora import adapter_sha256
    from lira.io import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    adapter = save_lora(folder, result)
    for name, module in (("adaptors", result.adaptors), ("actor", result.actor)):
        with atomic_path(folder / f"{name}.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp))
    cfg = arca_config(params)
    write_json(folder / "config.json", {
        "in_dim_lr": int(data.lr.shape[-1]), "in_dim_en": int(data.cand.shape[-1]),
        "d": adaptor_width(int(data.lr.shape[-1]), int(data.cand.shape[-1]), cfg.d), "residual": cfg.residual, "hidden": cfg.hidden,
        "shared": cfg.shared, "dropout": cfg.dropout, "actor_features": int(data.feats.shape[-1]), "actor_hidden": cfg.actor_hidden,
        "s_feat": params.shared.s_feat, "languages": params.shared.languages, "agents": inputs.ct.agents,
        "encoders": params.resolved()["shared"]["encoders"], "best_epoch": result.best_epoch,
        "lora_lrl": {"path": LORA_DIR, "sha256": adapter_sha256(adapter)} if adapter else None,
    })
    return adapter


def run(params: Params, root: Path) -> dict:
    inputs = prepare(params, root)
    data = arca_data(inputs, params)
    langs = params.shared.languages
    untrained = dev_report(*build_modules(data, arca_config(params)), data, data.dev_idx, len(langs))
    result, data = fit(params, root, inputs)
    probs = actor_probs(result, data)
    out = root / params.shared.paths.arca
    adapter = save_arca(out, result, data, params, inputs)
    if adapter is not None:  # the trained report reads the LRL path through the tuned encoder
        data = replace(data, lr=torch.from_numpy(with_lrl_adapter(params, root, inputs, adapter).lr_slots))
    trained = dev_report(result.adaptors, result.actor, data, data.dev_idx, len(langs))
    sel = selection_frame(inputs, probs)
    write_parquet(out / "selected.parquet", sel)

    share = sel.groupby(["lang", "agent"]).size().unstack(fill_value=0)
    share = (share.T / share.sum(1)).T.round(4)
    per_lang = {}
    for li, lang in enumerate(langs):
        per_lang[lang] = {
            "dev_eps1_untrained": untrained["eps1"].get(li),
            "dev_eps1_trained": trained["eps1"].get(li),
            "dev_eps1_raw_untrained": untrained["eps1_raw"].get(li),
            "dev_eps1_raw_trained": trained["eps1_raw"].get(li),
            "dev_bitext_acc_untrained": untrained["bitext_acc"].get(li),
            "dev_bitext_acc_trained": trained["bitext_acc"].get(li),
            "selection_share": share.loc[lang].to_dict() if lang in share.index else {},
        }
    improved = [lang for lang, v in per_lang.items() if v["dev_eps1_trained"] is not None and v["dev_eps1_trained"] < v["dev_eps1_untrained"]]
    summary = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "dev_eps1_untrained": untrained.get("eps1_mean"),
        "dev_eps1_trained": trained.get("eps1_mean"),
        "eps1_definition": "mean over slots of 1 - cos(E_lr, E_en), each path centred per language on the dev set",
        "eps1_lowered_in": f"{len(improved)}/{len(langs)}",
        "clean_preference": clean_preference(inputs.ct, probs),
        "selection_share": sel["agent"].value_counts(normalize=True).round(4).to_dict(),
        "fallback_quarantined": int(sel["fallback_quarantined"].sum()),
        "per_language": per_lang,
    }
    write_json(root / params.shared.paths.metrics / "arca.json", summary)
    curve = pd.DataFrame(result.history)
    write_text(root / params.shared.paths.plots / "arca_curve.csv", curve.to_csv(index=False))
    return summary
