"""A trained LiRA model as users load it: encoder specs + adaptors + LaSR (+ Actor) in one folder.

Folder layout (written by the train_lasr stage, format ``lira-model/1``)::

    lira_model.json     languages, S_feat, encoder settings, adaptor/LaSR/Actor shapes, variant
    net.safetensors     AnchorAdaptors + LaSRHead weights (LiraNet)
    actor.safetensors   the Actor (optional; picks among translation candidates)
    lora_lrl/           the LRL encoder's LoRA adapter, peft format (only when train_arca tuned it;
                        ``encoders.lrl.adapter`` and ``adapter_sha256`` in lira_model.json name it)

``LiraModel.embed(texts, lang)`` reads LRL text (the English path is used when translations are
given - e.g. from the translate stage - and dropped otherwise, which LaSR is trained for).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lira.arca import Actor
from lira.encoders import Encoder, EncoderSettings, encode_features
from lira.lasr.net import LiraNet

MODEL_FORMAT = "lira-model/1"


def save_lira_model(folder: str | Path, net: LiraNet, meta: dict, actor: Actor | None = None, use_english: bool = True) -> None:
    """Write a model folder (weights first, ``lira_model.json`` last: its presence marks completeness).

    ``meta`` names what the weights do not (variant, languages, S_feat, encoder settings, agents);
    the net and the Actor describe themselves (their ``config()``).
    """
    from safetensors.torch import save_file

    from lira.io import atomic_path, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _settings(meta["encoders"]["lrl"], folder)  # an adapter the meta names must be there, unchanged
    parts = [("net", net)] + ([("actor", actor)] if actor is not None else [])
    for name, module in parts:
        with atomic_path(folder / f"{name}.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp))
    write_json(folder / "lira_model.json", {
        "format": MODEL_FORMAT, **meta, "arca": net.adaptors.config(), "lasr": {**net.head.config(), "use_english": use_english},
        "actor": actor.config() if actor is not None else None,
    })


def load_net(folder: str | Path) -> tuple[LiraNet, Actor | None, dict]:
    """The trained net (and Actor) of a model folder and its meta; no encoders (see :meth:`LiraModel.load`)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path = folder / "lira_model.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{folder}: not a lira model folder (no lira_model.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {MODEL_FORMAT!r}")
    net = LiraNet.from_meta(meta)
    net.load_state_dict(load_file(str(folder / "net.safetensors")))
    net.eval()
    actor = None
    if meta.get("actor") and (folder / "actor.safetensors").exists():
        actor = Actor.from_config(meta["actor"])
        actor.load_state_dict(load_file(str(folder / "actor.safetensors")))
        actor.eval()
    return net, actor, meta


def default_cache_dir() -> Path:
    return Path(os.environ.get("LIRA_CACHE", Path.home() / ".cache" / "lira"))


def _settings(d: dict, folder: Path) -> EncoderSettings:
    try:
        settings = EncoderSettings.model_validate({k: v for k, v in d.items() if k not in ("adapter", "adapter_sha256")})
    except ValueError as e:
        raise ValueError(f"{folder / 'lira_model.json'}: invalid encoder settings: {e}") from None
    if not d.get("adapter"):
        return settings
    loaded = settings.with_adapter(folder / d["adapter"])
    if loaded.adapter_sha256 != d.get("adapter_sha256"):
        raise ValueError(f"{folder / d['adapter']}: LoRA adapter content differs from the one this model was saved with")
    return loaded


class LiraModel:
    def __init__(self, meta: dict, net: LiraNet, lrl: Encoder, en: Encoder, actor: Actor | None = None):
        self.meta, self.net, self.lrl, self.en, self.actor = meta, net, lrl, en, actor
        self.languages: list[str] = meta["languages"]
        self.s_feat: int = meta["s_feat"]

    @classmethod
    def load(cls, folder: str | Path, cache_dir: str | Path | None = None) -> LiraModel:
        folder = Path(folder)
        net, actor, meta = load_net(folder)
        models_dir = Path(cache_dir or default_cache_dir()) / "models"
        lrl_s, en_s = _settings(meta["encoders"]["lrl"], folder), _settings(meta["encoders"]["en"], folder)
        lrl = Encoder(lrl_s, models_dir)
        en = lrl if en_s == lrl_s else Encoder(en_s, models_dir)
        return cls(meta, net, lrl, en, actor)

    def lang_ids(self, lang: str | Sequence[str], n: int) -> torch.Tensor:
        langs = [lang] * n if isinstance(lang, str) else list(lang)
        unknown = sorted({x for x in langs if x not in self.languages})
        if unknown:
            raise ValueError(f"language(s) {unknown} not in this model's languages {self.languages}")
        return torch.tensor([self.languages.index(x) for x in langs])

    @torch.no_grad()
    def embed(
        self, texts: Sequence[str], lang: str | Sequence[str], kind: str = "query", translations: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """Fused LiRA embeddings z [N,d] (unit norm) of LRL ``texts``."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.net.head.d_in), np.float32)
        langs = self.lang_ids(lang, len(texts))
        lr = torch.from_numpy(encode_features(self.lrl, texts, kind, self.s_feat).slots)
        use_en = self.meta["lasr"].get("use_english", True) and translations is not None
        if use_en:
            trans = list(translations)
            if len(trans) != len(texts):
                raise ValueError(f"{len(trans)} translations for {len(texts)} texts")
            has = torch.tensor([bool(t) for t in trans])
            en = torch.zeros(len(texts), self.s_feat, self.en.hidden_size)
            if has.any():
                idx = torch.nonzero(has).squeeze(1)
                en[idx] = torch.from_numpy(encode_features(self.en, [trans[i] for i in idx.tolist()], kind, self.s_feat).slots)
            z = self.net(lr, en, langs, en_mask=has)
        else:
            z = self.net.lrl_only(lr, langs)
        return z.numpy().astype(np.float32)
