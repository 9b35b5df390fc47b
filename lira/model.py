"""A trained LiRA model as users load it: encoder specs + adaptors + LaSR (+ Actor) in one folder.

Folder layout (written by the train_lasr stage, format ``lira-model/2``)::

    lira_model.json     languages, S_feat, encoder settings (each backbone named by its content
                        hash, ``backbone_sha256``), adaptor/LaSR/Actor shapes, variant
    net.safetensors     AnchorAdaptors + LaSRHead weights (LiraNet)
    actor.safetensors   the Actor (optional; picks among translation candidates)
    lora_lrl/           the LRL encoder's LoRA adapter, peft format (only when train_arca tuned it;
                        ``encoders.lrl.adapter`` and ``adapter_sha256`` in lira_model.json name it)
    manifest.json       the sha256 of every other file (written last: it marks the folder complete)

Loading verifies every file against the manifest and refuses a mismatch, naming the file. The
manifest sits in the same folder as what it covers, so on its own it catches damage, not a forger
who rewrites it too; the registry closes that: a registered version records the manifest's own
hash as a tag (``lira.manifest_sha256``) and loading from the registry checks the manifest against it.

``LiraModel.embed(texts, lang)`` reads LRL text (the English path is used when translations are
given - e.g. from the translate stage - and dropped otherwise, which LaSR is trained for) and
anchor-language text (``lang="en"``: the English path alone), into one space.
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

MODEL_FORMAT = "lira-model/2"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "lira-manifest/1"


def save_lira_model(folder: str | Path, net: LiraNet, meta: dict, actor: Actor | None = None, use_english: bool = True) -> None:
    """Write a model folder (weights first, then ``lira_model.json``, ``manifest.json`` last).

    ``meta`` names what the weights do not (variant, languages, S_feat, encoder settings, agents);
    the net and the Actor describe themselves (their ``config()``).
    """
    from safetensors.torch import save_file

    from lira.io import atomic_path, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "encoders": {path: _with_backbone_hash(d) for path, d in meta["encoders"].items()}}
    _settings(meta["encoders"]["lrl"], folder)  # an adapter the meta names must be there, unchanged
    parts = [("net", net)] + ([("actor", actor)] if actor is not None else [])
    for name, module in parts:
        with atomic_path(folder / f"{name}.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp))
    write_json(folder / "lira_model.json", {
        "format": MODEL_FORMAT, **meta, "arca": net.adaptors.config(), "lasr": {**net.head.config(), "use_english": use_english},
        "actor": actor.config() if actor is not None else None,
    })
    write_manifest(folder)


def write_manifest(folder: str | Path) -> str:
    """Record the sha256 of every file in ``folder`` (hidden ones aside) in ``manifest.json``;
    returns the manifest's own sha256 (what the registry records)."""
    from lira.integrity import file_sha256, tree_files
    from lira.io import write_text

    folder = Path(folder)
    files = {rel: file_sha256(folder / rel) for rel in tree_files(folder, skip=[MANIFEST])}
    write_text(folder / MANIFEST, json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=2, sort_keys=True) + "\n")
    return manifest_sha256(folder)


def manifest_sha256(folder: str | Path) -> str:
    from lira.integrity import bytes_sha256

    path = Path(folder) / MANIFEST
    if not path.exists():
        from lira.integrity import IntegrityError

        raise IntegrityError(f"{path}: missing; the model folder's files cannot be verified (re-save it with this lira)")
    return bytes_sha256(path.read_bytes())


def verify_manifest(folder: str | Path, expected_sha256: str | None = None) -> None:
    """Every file of ``folder`` matches ``manifest.json``, and nothing unlisted is there; with
    ``expected_sha256`` (a registry tag) the manifest itself must have that hash. Refuses naming the file."""
    from lira.integrity import IntegrityError, file_sha256, tree_files

    folder = Path(folder)
    path = folder / MANIFEST
    got = manifest_sha256(folder)
    if expected_sha256 is not None and got != expected_sha256:
        raise IntegrityError(
            f"{path}: sha256 {got[:12]} differs from the {expected_sha256[:12]} recorded when this model was "
            "registered (the folder was changed after registration): refused"
        )
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
        files = man["files"]
        if man.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
            raise ValueError(f"format {man.get('format')!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{path}: not a lira manifest ({e})") from None
    for rel, want in sorted(files.items()):
        f = folder / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not f.is_file():
            raise IntegrityError(f"{f}: listed in {MANIFEST} but missing: refused")
        if file_sha256(f) != want:
            raise IntegrityError(f"{f}: content differs from its sha256 in {MANIFEST} (tampered or damaged): refused")
    extra = [rel for rel in tree_files(folder, skip=[MANIFEST]) if rel not in files]
    if extra:
        raise IntegrityError(f"{folder / extra[0]}: not listed in {MANIFEST}: refused")


def load_net(folder: str | Path, manifest_sha256: str | None = None) -> tuple[LiraNet, Actor | None, dict]:
    """The trained net (and Actor) of a model folder and its meta, every file verified against the
    folder's manifest first; no encoders (see :meth:`LiraModel.load`)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path = folder / "lira_model.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{folder}: not a lira model folder (no lira_model.json)")
    verify_manifest(folder, manifest_sha256)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {MODEL_FORMAT!r} (retrain or re-save it with this lira)")
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


def _with_backbone_hash(d: dict) -> dict:
    """An encoder entry naming its backbone by content hash (what :meth:`LiraModel.load` checks)."""
    from lira.encoders.base import backbone_sha256

    sha = backbone_sha256(d["spec"])
    if sha is None:
        raise ValueError(f"encoder {d['spec']!r}: not available locally, so its content hash cannot be recorded")
    if d.get("backbone_sha256") not in (None, sha):
        raise ValueError(f"encoder {d['spec']!r}: its content changed since training (backbone_sha256 differs)")
    return {**d, "backbone_sha256": sha}


def _check_backbone(d: dict, meta_path: Path) -> None:
    from lira.encoders.base import backbone_sha256
    from lira.integrity import IntegrityError

    want = d.get("backbone_sha256")
    if not want:
        raise IntegrityError(f"{meta_path}: encoder {d['spec']!r} is not named by a content hash (no backbone_sha256)")
    got = backbone_sha256(d["spec"])
    if got is None:
        raise IntegrityError(f"{meta_path}: encoder {d['spec']!r} is not available locally; its backbone cannot be checked")
    if got != want:
        raise IntegrityError(
            f"{meta_path}: the backbone of encoder {d['spec']!r} has content hash {got[:12]}, not the "
            f"{want[:12]} this model was saved with (changed, or another model under that name): refused"
        )


def _settings(d: dict, folder: Path, trust_remote_code: bool | None = None) -> EncoderSettings:
    """Encoder settings from a folder's entry; ``trust_remote_code`` (the caller's word) overrides the file's."""
    fields = {k: v for k, v in d.items() if k in EncoderSettings.model_fields and k not in ("adapter", "adapter_sha256")}
    if trust_remote_code is not None:
        fields["trust_remote_code"] = trust_remote_code
    try:
        settings = EncoderSettings.model_validate(fields)
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
    def load(
        cls, folder: str | Path, cache_dir: str | Path | None = None, trust_remote_code: bool = False,
        manifest_sha256: str | None = None,
    ) -> LiraModel:
        """Load a model folder. It runs no code from the folder or its backbone: the backbone must have
        the content hash the folder names, and a backbone that needs its own Python code
        (``trust_remote_code`` in ``lira_model.json``) loads only if the caller passes
        ``trust_remote_code=True`` - what the file says never enables it. Every file is verified against
        the folder's manifest first, and the manifest against ``manifest_sha256`` when given (the
        registry's tag)."""
        folder = Path(folder)
        net, actor, meta = load_net(folder, manifest_sha256)
        meta_path = folder / "lira_model.json"
        models_dir = Path(cache_dir or default_cache_dir()) / "models"
        for path in ("lrl", "en"):
            d = meta["encoders"][path]
            if d.get("trust_remote_code") is True and not trust_remote_code:
                raise ValueError(
                    f"{meta_path}: encoder {d['spec']!r} asks to run its own Python code (trust_remote_code: true). "
                    "lira never enables that because a model folder says so: pass --trust-remote-code (CLI) or "
                    "trust_remote_code=True (API) if you trust this model"
                )
            _check_backbone(d, meta_path)
        lrl_s, en_s = (_settings(meta["encoders"][p], folder, trust_remote_code and bool(meta["encoders"][p].get("trust_remote_code")))
                       for p in ("lrl", "en"))
        lrl = Encoder(lrl_s, models_dir)
        en = lrl if en_s == lrl_s else Encoder(en_s, models_dir)
        return cls(meta, net, lrl, en, actor)

    @property
    def anchor_language(self) -> str:
        """The anchor language (English by default): its text is read on the English path alone."""
        return self.meta.get("anchor_language", "en")

    def lang_ids(self, lang: str | Sequence[str], n: int) -> torch.Tensor:
        """Index of each text's language in the model's languages; the anchor language maps to -1."""
        langs = [lang] * n if isinstance(lang, str) else list(lang)
        if len(langs) != n:
            raise ValueError(f"{len(langs)} languages for {n} texts")
        known = [*self.languages, self.anchor_language]
        unknown = sorted({x for x in langs if x not in known})
        if unknown:
            raise ValueError(f"language(s) {unknown} not in this model's languages {known}")
        return torch.tensor([self.languages.index(x) if x in self.languages else -1 for x in langs], dtype=torch.long)

    @torch.no_grad()
    def embed(
        self, texts: Sequence[str], lang: str | Sequence[str], kind: str = "query", translations: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """LiRA embeddings z [N,d] (unit norm), all in one space: LRL ``texts`` fused with their
        ``translations`` when given (LRL path alone otherwise); anchor-language (English) texts on
        the English path alone, with the head's anchor-language entry (translations ignored)."""
        texts = list(texts)
        if translations is not None and len(list(translations)) != len(texts):
            raise ValueError(f"{len(list(translations))} translations for {len(texts)} texts")
        out = np.zeros((len(texts), self.net.head.d_in), np.float32)
        if not texts:
            return out
        langs = self.lang_ids(lang, len(texts))
        anchor = torch.nonzero(langs < 0).squeeze(1).tolist()
        if anchor:
            en = torch.from_numpy(encode_features(self.en, [texts[i] for i in anchor], kind, self.s_feat).slots)
            out[anchor] = self.net.en_only(en).numpy()
        rest = torch.nonzero(langs >= 0).squeeze(1).tolist()
        if rest:
            trans = None if translations is None else [list(translations)[i] for i in rest]
            out[rest] = self._embed_lrl([texts[i] for i in rest], langs[rest], kind, trans)
        return out

    def _embed_lrl(self, texts: list[str], langs: torch.Tensor, kind: str, translations: list[str | None] | None) -> np.ndarray:
        lr = torch.from_numpy(encode_features(self.lrl, texts, kind, self.s_feat).slots)
        if self.meta["lasr"].get("use_english", True) and translations is not None:
            has = torch.tensor([bool(t) for t in translations])
            en = torch.zeros(len(texts), self.s_feat, self.en.hidden_size)
            if has.any():
                idx = torch.nonzero(has).squeeze(1)
                en[idx] = torch.from_numpy(encode_features(self.en, [translations[i] for i in idx.tolist()], kind, self.s_feat).slots)
            z = self.net(lr, en, langs, en_mask=has)
        else:
            z = self.net.lrl_only(lr, langs)
        return z.numpy().astype(np.float32)
