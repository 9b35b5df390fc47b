"""Contrastive translation ranking: each LRL text must pick its own English translation out of a batch.

LaBSE's bidirectional dual-encoder objective with an additive margin (Feng et al. 2022), which is
sentence-transformers' ``MultipleNegativesRankingLoss`` (one direction) and its symmetric form
(``directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction"``) with a margin.
Why it is here: the cosine anchoring loss alone pulls each LRL text onto its translation but never
pushes it away from the other translations, so it can shrink the space (everything close to
everything); the ranking term keeps texts apart that mean different things.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NEG_INF = float("-inf")


def _check(u_lr: Tensor, u_en: Tensor, group: Tensor | None, extra: Tensor | None, extra_group: Tensor | None) -> None:
    if u_lr.ndim != 2 or u_lr.shape != u_en.shape:
        raise ValueError(f"u_lr and u_en must both be [B, d]: got {tuple(u_lr.shape)} and {tuple(u_en.shape)}")
    if u_lr.shape[0] == 0:
        raise ValueError("empty batch")
    if group is not None and group.shape != (u_lr.shape[0],):
        raise ValueError(f"group must be [B]={u_lr.shape[0]}: got {tuple(group.shape)}")
    if extra is not None and (extra.ndim != 2 or extra.shape[1] != u_lr.shape[1]):
        raise ValueError(f"extra negatives must be [M, {u_lr.shape[1]}]: got {tuple(extra.shape)}")
    if extra_group is not None:
        if extra is None:
            raise ValueError("extra_group given without extra negatives")
        if extra_group.shape != (extra.shape[0],):
            raise ValueError(f"extra_group must be [M]={extra.shape[0]}: got {tuple(extra_group.shape)}")
        if group is None:
            raise ValueError("extra_group needs group (the batch rows' ids) to compare against")


def _duplicate_mask(group: Tensor | None, b: int, device: torch.device) -> Tensor:
    """[B, B] True where column j is a duplicate of row i's positive (same group, j != i)."""
    if group is None:
        return torch.zeros(b, b, dtype=torch.bool, device=device)
    same = group[:, None] == group[None, :]
    return same & ~torch.eye(b, dtype=torch.bool, device=device)


def translation_ranking_loss(
    u_lr: Tensor,
    u_en: Tensor,
    scale: float = 20.0,
    margin: float = 0.0,
    symmetric: bool = True,
    group: Tensor | None = None,
    extra_en: Tensor | None = None,
    extra_group: Tensor | None = None,
) -> Tensor:
    r"""In-batch softmax translation ranking with an additive margin, one or both directions.

    With unit vectors ``u_lr`` (LRL texts) and ``u_en`` (their English translations), row ``i``'s
    positive is column ``i``; the scale is ``s = 1/T``; ``m`` is the additive margin; ``N_i`` is the
    set of valid negatives (the other in-batch translations, then the extra negatives ``q_k``,
    e.g. DocQueue items), leaving out every column whose ``group`` equals row ``i``'s (a duplicate of
    its own positive is not a negative):

    .. math::

        L_{lr \to en} = -\frac{1}{B} \sum_i \log
            \frac{e^{s(\cos(u^{lr}_i, u^{en}_i) - m)}}
                 {e^{s(\cos(u^{lr}_i, u^{en}_i) - m)} + \sum_{j \in N_i} e^{s \cos(u^{lr}_i, u^{en}_j)}
                  + \sum_{k \in Q_i} e^{s \cos(u^{lr}_i, q_k)}}

        L_{en \to lr} = -\frac{1}{B} \sum_i \log
            \frac{e^{s(\cos(u^{en}_i, u^{lr}_i) - m)}}
                 {e^{s(\cos(u^{en}_i, u^{lr}_i) - m)} + \sum_{j \in N_i} e^{s \cos(u^{en}_i, u^{lr}_j)}}

        L = \tfrac{1}{2}(L_{lr \to en} + L_{en \to lr}) \ \text{(symmetric)}, \quad
        L = L_{lr \to en} \ \text{(otherwise)}

    At ``m = 0`` with no duplicates, ``L_{lr->en}`` is sentence-transformers'
    ``MultipleNegativesRankingLoss(scale=s)`` with (anchor = LRL, positive = EN, negatives = extra),
    and the symmetric ``L`` is its ``directions=("query_to_doc", "doc_to_query"),
    partition_mode="per_direction"`` form. The extra negatives enter the LRL -> EN direction only (they
    are English-side items with no LRL partner to rank in the other direction).

    Args:
        u_lr: ``[B, d]`` LRL embeddings, unit-normalised (cosines are dot products).
        u_en: ``[B, d]`` English embeddings of the same rows, unit-normalised; detach it to keep
            English as a fixed anchor (the gradient then reaches ``u_lr`` only).
        scale: ``s = 1 / temperature`` (> 0).
        margin: ``m`` >= 0, subtracted from the positive's cosine (LaBSE reports m = 0.3).
        symmetric: average both directions (LaBSE's bidirectional loss) or LRL -> EN only.
        group: ``[B]`` integer ids; rows with equal ids share an English target (duplicates).
        extra_en: ``[M, d]`` extra unit-norm negatives for the LRL -> EN direction.
        extra_group: ``[M]`` ids of the extra negatives; one equal to row i's group is masked for row i.

    Returns:
        Scalar cross-entropy (>= 0).
    """
    _check(u_lr, u_en, group, extra_en, extra_group)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    b = u_lr.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=u_lr.device)
    dup = _duplicate_mask(group, b, u_lr.device)
    sim = u_lr @ u_en.T  # [B, B]: row i = LRL text i against every English translation
    logits = scale * (sim - margin * eye.to(sim.dtype))
    logits = logits.masked_fill(dup, NEG_INF)
    target = torch.arange(b, device=u_lr.device)

    fwd = logits
    if extra_en is not None and extra_en.shape[0] > 0:
        ext = scale * (u_lr @ extra_en.T)  # [B, M]
        if extra_group is not None:
            ext = ext.masked_fill(group[:, None] == extra_group[None, :], NEG_INF)
        fwd = torch.cat([logits, ext], dim=1)
    loss_fwd = nn.functional.cross_entropy(fwd, target)
    if not symmetric:
        return loss_fwd
    # EN -> LRL: column i of the same matrix (sim is symmetric in the pair, cos(a,b) = cos(b,a)).
    loss_bwd = nn.functional.cross_entropy(logits.T, target)
    return 0.5 * (loss_fwd + loss_bwd)


class TranslationRankingLoss(nn.Module):
    r"""Module form of :func:`translation_ranking_loss`:
    ``L = mean over directions of -log softmax(s*(cos - m*I))[i, i]`` over in-batch (+ extra) negatives,
    duplicates (same ``group``) masked.
    """

    def __init__(self, scale: float = 20.0, margin: float = 0.0, symmetric: bool = True) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.scale, self.margin, self.symmetric = float(scale), float(margin), bool(symmetric)

    def forward(self, u_lr: Tensor, u_en: Tensor, group: Tensor | None = None, extra_en: Tensor | None = None,
                extra_group: Tensor | None = None) -> Tensor:
        return translation_ranking_loss(u_lr, u_en, self.scale, self.margin, self.symmetric, group, extra_en, extra_group)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, margin={self.margin}, symmetric={self.symmetric}"


def duplicate_free_batches(keys: list, batch_size: int, seed: int, drop_last: bool = True) -> list[list[int]]:
    """Shuffle row indices into batches in which no two rows share a key (e.g. the English target's text).

    sentence-transformers' ``NO_DUPLICATES`` sampler, as a pure function: rows are visited in a seeded
    random order and each goes into the first open batch that does not already hold its key, so a
    repeated key is spread over different batches instead of being dropped. With ``drop_last`` the
    batches that end short of ``batch_size`` are left out (a short last batch has few negatives, and
    queue-based training assumes full batches); every returned batch is duplicate-free.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    g = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(keys), generator=g).tolist()
    batches: list[list[int]] = []
    seen: list[set] = []
    open_from = 0  # batches before this index are full
    for i in order:
        k = keys[i]
        j = open_from
        while j < len(batches) and (len(batches[j]) >= batch_size or k in seen[j]):
            j += 1
        if j == len(batches):
            batches.append([])
            seen.append(set())
        batches[j].append(i)
        seen[j].add(k)
        while open_from < len(batches) and len(batches[open_from]) >= batch_size:
            open_from += 1
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    return batches
