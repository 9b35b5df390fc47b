"""Arca's config (the ``train_arca`` section of params.yaml): the only place its defaults live."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lira.config_base import ConfigSection


class RewardConfig(ConfigSection):
    """R_k = 0.1*(alpha*s + beta*e + gamma*p) + delta*sim_k (the paper never published these)."""

    alpha: float = Field(0.5, ge=0, description="weight of the LLM critic's semantic score s")
    beta: float = Field(0.25, ge=0, description="weight of the LLM critic's emotion score e")
    gamma: float = Field(0.25, ge=0, description="weight of the LLM critic's pragmatics score p")
    delta: float = Field(1.0, ge=0, description="weight of the embedding critic's similarity sim")


class ArcaConfig(ConfigSection):
    """Stage 1: the shared anchor adaptor and the Actor (see :mod:`lira.train.arca` for the loss)."""

    # Full width and residual by default: training starts exactly at the pretrained encoder (a
    # 384 -> 128 bottleneck trained from scratch lost 19 nDCG@10 points on the sample); the
    # bottleneck (d: 128, residual: false) stays a param.
    d: int | None = Field(None, ge=8, le=8192,
                          description="adaptor width; null = the encoder's width (needed by the residual adaptor)")
    residual: bool = Field(True, description="E = P + MLP(P) with the MLP's last layer zero-initialised")
    adaptor_hidden: int | None = Field(None, ge=8, description="adaptor MLP width; null = max(input width, d)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout inside the adaptor MLP")
    shared_adaptor: bool = Field(True, description="one adaptor for both paths (false: the separate-adaptors ablation)")
    stop_grad_en: bool = Field(True, description="detach E_en in L_anchor (only the LRL path moves)")
    actor_hidden: int = Field(32, ge=4, description="the Actor MLP's width")
    actor_extra_features: bool = Field(True, description="length ratio and leakage flags beside [s, e, p, sim]")
    baseline: Literal["none", "running_mean", "leave_one_out"] = Field(
        "leave_one_out", description="the REINFORCE baseline b in -log pi(a) (R_a - b)")
    reward: RewardConfig = Field(RewardConfig(), description="the critic reward's weights")
    use_llm_critic: bool = Field(True, description="feed the LLM critic's scores to the Actor and the reward")
    use_embedding_critic: bool = Field(True, description="feed the embedding critic's sim to the Actor and the reward")
    eta: float = Field(1.0, ge=0, description="weight of L_anchor in L = L_RL + eta*L_anchor")
    # Not in the paper: a variance hinge that stops the shared adaptor from collapsing every input
    # to one point (which would zero the anchoring loss); 0 turns the guard off.
    lambda_var: float = Field(1.0, ge=0, description="weight of the variance guard L_var, a collapse guard on unit-norm E (not in the paper; 0 = off)")
    var_target: float = Field(0.4, gt=0, le=1, description="target per-dim std of unit-norm E, x 1/sqrt(d)")
    # In-batch InfoNCE between the two paths (not in the paper; 0 = off): see lira/train/arca.py.
    # Off by default: L_rank below is the same in-batch objective plus what it lacks (a margin,
    # duplicate masking, queued English negatives).
    lambda_nce: float = Field(0.0, ge=0, description="weight of the in-batch InfoNCE L_nce (0 = off)")
    nce_temperature: float = Field(0.05, gt=0, description="InfoNCE temperature")
    # LaBSE-style translation ranking (lira.losses.translation_ranking): each LRL text against its
    # Actor-chosen translation, the batch's other translations (and a FIFO of past ones) as
    # negatives. The defaults are the recipe measured on the sample's dev split and FLORES train
    # folds (bench/recipe.py): E5's cosines are compressed (it was trained at T = 0.01), so a scale
    # of 20 barely ranks and a margin of 0.1 exceeds the typical positive-negative gap.
    lambda_rank: float = Field(1.0, ge=0, description="weight of the translation-ranking term L_rank (0 = off)")
    rank_scale: float = Field(50.0, gt=0, description="L_rank's softmax scale s = 1 / temperature")
    rank_margin: float = Field(0.05, ge=0, lt=2, description="L_rank's additive margin m on the positive's cosine")
    rank_symmetric: bool = Field(True, description="L_rank in both directions (LRL -> EN and EN -> LRL) or LRL -> EN only")
    rank_queue: int = Field(256, ge=0, le=1_000_000,
                            description="FIFO of past batches' English targets used as extra L_rank negatives (0 = off)")
    # Not in the paper. The shared adaptor carries the English path too, so anchoring the LRL path
    # moved English text away from the frozen encoder (cos 0.31 to it after Arca on the sample) and
    # LiRA's English STS fell 1.05 points below frozen (issue 13's forgetting check). The guard of
    # sentence-transformers' make_multilingual.py: the English path distilled onto the teacher.
    lambda_self: float = Field(
        1.0, ge=0, description="weight of the English self-anchoring guard L_self = 1 - cos(A(P_en), sg(frozen English "
        "embedding)) on the chosen translations: keeps the English path at the frozen encoder (not in the paper; 0 = off; "
        "applies to the residual form, which starts at the frozen encoder; the bottleneck and non-residual forms have no "
        "frozen start to keep)")
    # With LoRA on, an epoch is a live encoder pass (minutes on a CPU) and one was what the recipe
    # needed; the later epochs train the adaptor and the Actor on features recomputed once through
    # the tuned encoder, which is cheap.
    lora_epochs: int = Field(1, ge=0, le=10000,
                             description="epochs in which the LRL encoder's LoRA adapters train (when LoRA is on); "
                             "later epochs read the LRL path through the tuned, then fixed, encoder")
    lr: float = Field(2e-3, gt=0, le=1, description="AdamW learning rate of the adaptor and the Actor")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    epochs: int = Field(30, ge=1, le=10000, description="maximum epochs")
    batch_size: int = Field(32, ge=2, le=65536, description="texts per step (the last short batch is dropped)")
    # eps1 alone rewards any common offset (every cosine -> 1 while bitext accuracy falls): the
    # default signal is discriminative, so wrecking the geometry scores low on it.
    stop_on: Literal["bitext", "eps1"] = Field(
        "bitext", description="early-stopping signal on dev, scored for the untrained start too: bitext = top-1 "
        "bitext accuracy + mean margin cos(E_lr, E_en of its translation) - max cos(E_lr, E_en of another text), per "
        "language then averaged (higher is better; a collapse scores 0 on both); eps1 = centred anchoring error (lower)")
    patience: int = Field(5, ge=1, description="epochs without a better dev signal (stop_on) before stopping")
