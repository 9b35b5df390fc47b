"""LaSR's config (the ``train_lasr`` section of params.yaml): the only place its defaults live."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lira.config_base import ConfigSection

Ablation = Literal["no_queue", "no_llm_critic", "no_embedding_critic", "separate_adaptors", "drop_english"]


class LasrConfig(ConfigSection):
    """Stage 2: the LaSR fusion head, its queues and loss weights (see :mod:`lira.train.lasr`)."""

    d_model: int = Field(128, ge=8, le=4096, description="LaSR's internal width (inputs are projected to it)")
    # Residual by default: z starts as normalize(mean of the unit paths), i.e. exactly the frozen
    # encoder on LRL-only input when Arca is residual at full width and S_feat = 1.
    residual: bool = Field(True, description="z = normalize(mean of the input paths + zero-initialised head output)")
    n_layers: int = Field(2, ge=1, le=8, description="transformer layers")
    n_heads: int = Field(4, ge=1, le=64, description="attention heads")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout inside the transformer")
    path_dropout: float = Field(0.5, ge=0, le=1, description="probability of dropping the English path per example")
    corr_queue: int = Field(512, ge=0, le=1_000_000, description="CorrQueue capacity in (prediction, label) pairs; 0 = off")
    corr_a: float = Field(0.5, ge=0, le=1, description="L_corr = a (1 - pearson) + (1 - a) (1 - soft spearman)")
    corr_tau: float = Field(0.05, gt=0, description="soft-rank temperature of the soft Spearman")
    doc_queue: int = Field(1024, ge=0, le=1_000_000, description="DocQueue capacity in items; 0 = off")
    top_m: int = Field(16, ge=1, description="hard negatives taken from the DocQueue per query")
    ndcg_k: int = Field(10, ge=1, description="cut-off k of the soft nDCG")
    ndcg_tau: float = Field(0.05, gt=0, description="soft-rank temperature of the soft nDCG")
    margin: float = Field(0.2, ge=0, description="margin of the positive-vs-hard-negative hinge")
    temperature: float = Field(0.05, gt=0, description="softmax temperature of the retrieval and choice losses")
    lambda_corr: float = Field(0.5, ge=0, description="weight of L_corr")
    lambda_rank: float = Field(1.0, ge=0, description="weight of the DocQueue objective L_rank")
    lambda_hinge: float = Field(0.5, ge=0, description="weight of the hinge inside L_rank")
    lambda_var: float = Field(0.1, ge=0, description="weight of the variance term inside L_rank")
    # z is unit-norm, so each coordinate's std is at most ~1/sqrt(d): the target is a share of that.
    var_target: float = Field(0.5, gt=0, le=1, description="target per-dim std of z inside L_rank, x 1/sqrt(d)")
    lambda_cons: float = Field(0.2, ge=0, description="weight of the LRL-vs-English consistency terms")
    lambda_anchor: float = Field(0.5, ge=0, description="weight of L_anchor (keeps the tuned adaptor anchored)")
    # LaSR trains the shared adaptor and the anchor-language entry, which together are LiRA's English
    # path: the same guard as train_arca.lambda_self, on the head's output (lira.losses.self_anchoring).
    lambda_self: float = Field(
        1.0, ge=0, description="weight of the English self-anchoring guard 1 - cos(z of English text via the anchor "
        "entry, sg(frozen English embedding)) on the batch's translations: LiRA's English path stays at the frozen "
        "encoder (0 = off; applies to the residual, full-width form, which starts at the frozen encoder)")
    lr: float = Field(1e-3, gt=0, le=1, description="AdamW learning rate")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    epochs: int = Field(10, ge=1, le=10000, description="maximum epochs (one pass over the retrieval queries each)")
    batch_size: int = Field(32, ge=2, le=65536, description="examples per task batch")
    patience: int = Field(3, ge=1, description="epochs without a higher dev stop_on signal (the untrained start scored too) before stopping")
    # Fused-only stopping let the LRL-only path fall below the frozen encoder (89.2 vs 90.5 on the
    # sample's test split) while the fused path rose: the LRL-only path is served on its own too.
    stop_on: Literal["both", "fused"] = Field(
        "both", description="early-stopping signal on dev: both = mean of the fused and the LRL-only nDCG@10, an epoch "
        "with either path below the untrained start never kept over it; fused = the fused path's nDCG@10 alone")
    use_english: bool = Field(True, description="false: LRL path only, train and test (the drop-English ablation)")
    # None by default: three of the four retrain Arca, LoRA epoch included, which broke the run's
    # time budget; `make ablations` trains the paper's four beside LiRA (README).
    ablations: list[Ablation] = Field(
        default_factory=list,
        description="variants trained beside LiRA, each with one switch flipped (`make ablations`: "
        "[no_queue, no_llm_critic, no_embedding_critic, separate_adaptors])")
    # LiRA and its ablations are independent runs: train this many at once, in separate processes,
    # each with shared.threads // workers torch threads (LaSR's small matrices barely use 2 threads).
    workers: int = Field(2, ge=1, le=64, description="variants trained at once (separate processes, shared.threads split between them)")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> LasrConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads = {self.n_heads} must divide d_model = {self.d_model} (each head gets d_model / n_heads)")
        return self
