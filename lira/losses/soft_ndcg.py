"""Listwise soft-nDCG@k (LaSR's ranking objective)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lira.losses.ranks import soft_rank


def _gains(relevance: Tensor, mask: Tensor | None, dtype: torch.dtype) -> Tensor:
    rel = relevance.to(dtype)
    g = torch.pow(2.0, rel) - 1.0
    if mask is not None:
        g = torch.where(mask.to(torch.bool), g, torch.zeros_like(g))
    return g


def ideal_dcg(relevance: Tensor, k: int, mask: Tensor | None = None) -> Tensor:
    r"""Exact ideal DCG@k of each list (Burges gain).

    .. math::

        \mathrm{IDCG@k} = \sum_{i=1}^{\min(k, N)} \frac{2^{rel_{(i)}} - 1}{\log_2(1 + i)}

    with ``rel_(i)`` the relevances sorted in decreasing order; masked entries count as 0.

    Args:
        relevance: ``[Q, N]`` graded relevance (>= 0).
        k: cut-off.
        mask: optional ``[Q, N]`` bool.

    Returns:
        ``[Q]`` (float; 0 for lists without a relevant valid entry).
    """
    dtype = relevance.dtype if relevance.is_floating_point() else torch.get_default_dtype()
    g = _gains(relevance, mask, dtype)
    kk = min(k, g.shape[-1])
    top = torch.topk(g, kk, dim=-1).values
    disc = torch.log2(torch.arange(2, kk + 2, device=g.device, dtype=dtype))
    return (top / disc).sum(dim=-1)


def exact_ndcg(scores: Tensor, relevance: Tensor, k: int, mask: Tensor | None = None) -> Tensor:
    r"""Hard nDCG@k per list (Burges gain): the value :func:`soft_ndcg` tends to as ``tau -> 0``.

    .. math::

        \mathrm{DCG@k} = \sum_{i=1}^{\min(k, N)} \frac{2^{rel_{\pi(i)}} - 1}{\log_2(1 + i)}

    with ``pi`` the valid entries by decreasing score, ties broken by index (as ranx's run order
    does); masked entries never rank above a valid one. 0 for lists whose IDCG@k is 0. Sorting, so
    ``O(N log N)`` per list where the soft ranks are ``O(N^2)``: an evaluation, not a loss (no
    gradient through the ranking).
    """
    dtype = scores.dtype if scores.is_floating_point() else torch.get_default_dtype()
    valid = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    kk = min(k, scores.shape[-1])
    s = torch.where(valid, scores.to(dtype), torch.full_like(scores, float("-inf"), dtype=dtype))
    top = torch.argsort(-s, dim=-1, stable=True)[..., :kk]
    g = _gains(relevance, valid, dtype).gather(-1, top)
    disc = torch.log2(torch.arange(2, kk + 2, device=scores.device, dtype=dtype))
    dcg = (g / disc).sum(dim=-1)
    idcg = ideal_dcg(relevance.to(dtype), k, valid)
    ok = idcg > 0
    return torch.where(ok, dcg / torch.where(ok, idcg, torch.ones_like(idcg)), torch.zeros_like(dcg))


def soft_ndcg(scores: Tensor, relevance: Tensor, k: int, tau: float, mask: Tensor | None = None) -> Tensor:
    r"""Differentiable nDCG@k per list.

    With soft ranks ``r_i`` (:func:`lira.losses.ranks.soft_rank`, masked entries excluded),

    .. math::

        \mathrm{softDCG@k} = \sum_{i\ \mathrm{valid}} w_k(r_i)\,\frac{2^{rel_i} - 1}{\log_2(1 + r_i)},
        \qquad w_k(r) = \sigma\!\left(\frac{k + 0.5 - r}{\tau}\right)

    and ``softNDCG@k = softDCG@k / IDCG@k`` with the *exact* IDCG@k of the list's valid
    relevances (:func:`ideal_dcg`). The gain is Burges' ``2^rel - 1``, so as ``tau -> 0`` (and
    without score ties) this equals ranx's ``"ndcg_burges@k"`` (not ranx's ``"ndcg"``, which uses
    Jarvelin's linear gain ``rel``). The same ``tau`` sharpens the ranks (score units) and the
    top-k cut (rank units).

    Lists whose IDCG@k is 0 (no relevant valid entry) have no defined nDCG: they return exactly
    0 here, with a zero gradient and no NaN. Use ``ideal_dcg(relevance, k, mask) > 0`` to tell
    them apart; :class:`SoftNDCGLoss` averages only over lists with IDCG > 0.

    With a large ``tau`` the top-k weight leaks, and the value may slightly exceed 1; it is not
    clamped, since clamping would kill the gradient.

    Args:
        scores: ``[Q, N]`` model scores.
        relevance: ``[Q, N]`` graded relevance (>= 0).
        k: cut-off.
        tau: temperature.
        mask: optional ``[Q, N]`` bool of valid entries.

    Returns:
        ``[Q]`` soft nDCG@k.
    """
    r = soft_rank(scores, tau, mask)
    g = _gains(relevance, mask, scores.dtype)
    w = torch.sigmoid((k + 0.5 - r) / tau)
    dcg = (w * g / torch.log2(1.0 + r)).sum(dim=-1)
    idcg = ideal_dcg(relevance.to(scores.dtype), k, mask)
    ok = idcg > 0
    return torch.where(ok, dcg / torch.where(ok, idcg, torch.ones_like(idcg)), torch.zeros_like(dcg))


class SoftNDCGLoss(nn.Module):
    r"""``L = 1 - mean_{q : IDCG@k(q) > 0} softNDCG@k(q)`` (see :func:`soft_ndcg`).

    Lists with IDCG = 0 are skipped; if no list qualifies the loss is a graph-connected 0.
    """

    def __init__(self, k: int = 10, tau: float = 0.1) -> None:
        super().__init__()
        self.k = k
        self.tau = tau

    def forward(self, scores: Tensor, relevance: Tensor, mask: Tensor | None = None) -> Tensor:
        nd = soft_ndcg(scores, relevance, self.k, self.tau, mask)
        ok = ideal_dcg(relevance.to(scores.dtype), self.k, mask) > 0
        if not bool(ok.any()):
            return (nd * 0.0).sum()
        return 1.0 - nd[ok].mean()

    def extra_repr(self) -> str:
        return f"k={self.k}, tau={self.tau}"
