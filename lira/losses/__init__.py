"""lira's losses: pure tensor math, one idea per file (sentence-transformers style)."""

from lira.losses.anchoring import anchoring_error, anchoring_loss
from lira.losses.choice import choice_cross_entropy
from lira.losses.consistency import score_mse, symmetric_kl
from lira.losses.correlation import correlation_loss, pearson, soft_spearman
from lira.losses.distillation import mse_distillation
from lira.losses.docqueue import DocQueueObjective, margin_hinge, variance_term
from lira.losses.info_nce import info_nce
from lira.losses.listwise import listwise_softmax_ce
from lira.losses.ranks import soft_rank
from lira.losses.reinforce import RunningMeanBaseline, critic_reward, reinforce_loss
from lira.losses.self_anchoring import self_anchoring_loss
from lira.losses.soft_ndcg import SoftNDCGLoss, exact_ndcg, ideal_dcg, soft_ndcg
from lira.losses.translation_ranking import (
    TranslationRankingLoss,
    duplicate_free_batches,
    translation_ranking_loss,
)

__all__ = [
    "DocQueueObjective",
    "RunningMeanBaseline",
    "SoftNDCGLoss",
    "TranslationRankingLoss",
    "anchoring_error",
    "anchoring_loss",
    "choice_cross_entropy",
    "correlation_loss",
    "critic_reward",
    "duplicate_free_batches",
    "exact_ndcg",
    "ideal_dcg",
    "info_nce",
    "listwise_softmax_ce",
    "margin_hinge",
    "mse_distillation",
    "pearson",
    "reinforce_loss",
    "score_mse",
    "self_anchoring_loss",
    "soft_ndcg",
    "soft_rank",
    "soft_spearman",
    "symmetric_kl",
    "translation_ranking_loss",
    "variance_term",
]
