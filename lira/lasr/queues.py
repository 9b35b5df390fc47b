"""FIFO memories for LaSR: CorrQueue (past (prediction, label) pairs for the correlation loss) and
DocQueue (past item embeddings for in-language hard negatives), plus hard-negative selection.

Both are fixed-size ring buffers held in registered buffers: memory is constant, they move with
``.to(device)``, and they are saved in ``state_dict`` (so a resumed run keeps its queue). Stored
values are always detached: a queue never carries gradient or keeps a past graph alive.
Enqueue only after the loss of the current batch is computed (otherwise a batch meets itself).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Ring(nn.Module):
    """Ring-buffer bookkeeping shared by the queues: ``ptr`` = next write slot, ``count`` = filled."""

    def __init__(self, capacity: int):
        super().__init__()
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.count)

    def _order(self) -> Tensor:
        """Indices of the filled slots, oldest first."""
        n, C = int(self.count), self.capacity
        start = int(self.ptr) if n == C else 0  # when not yet full, slot 0 is the oldest
        return (start + torch.arange(n, device=self.ptr.device)) % max(C, 1)

    def _write_slots(self, n: int) -> tuple[Tensor, int]:
        """Reserve slots for the last min(n, capacity) of n new rows; returns (slots, n_kept)."""
        C = self.capacity
        kept = min(n, C)
        slots = (int(self.ptr) + torch.arange(kept, device=self.ptr.device)) % max(C, 1)
        if C > 0:
            self.ptr.fill_((int(self.ptr) + kept) % C)
            self.count.fill_(min(int(self.count) + kept, C))
        return slots, kept

    def reset(self) -> None:
        self.ptr.zero_()
        self.count.zero_()

    def extra_repr(self) -> str:
        return f"capacity={self.capacity}"


class CorrQueue(_Ring):
    """FIFO of the last ``capacity`` (prediction, label) scalar pairs, detached.

    ``contents()`` returns them oldest first. Enqueuing a batch larger than the capacity keeps its
    last ``capacity`` values. Capacity 0 is a valid, always-empty queue (the "no queue" ablation).

    ``rank_sums(tau)`` gives, aligned with ``contents()``, each entry's queue-internal soft-rank sum
    ``c_k = sum_{j != k} sigmoid((x_j - x_k) / tau)`` for the predictions and for the labels - the
    part of the soft ranks over batch ++ queue that does not depend on the batch
    (:func:`lira.losses.ranks.soft_rank_with_tail`). The first call computes them (``O(Q^2)``,
    no autograd); from then on each ``enqueue`` updates them in ``O(B Q)``: the entries that stay
    lose the evicted values' terms and gain the new ones', the new entries are summed against the
    whole queue. Kept in float64 and rebuilt after ``load_state_dict`` (they are not saved, so
    checkpoints keep the same keys); each entry lives at most ``capacity / B`` updates, so rounding
    cannot accumulate beyond that.
    """

    def __init__(self, capacity: int):
        super().__init__(capacity)
        self.register_buffer("preds", torch.zeros(capacity))
        self.register_buffer("labels", torch.zeros(capacity))
        self.register_buffer("pred_sums", torch.zeros(capacity, dtype=torch.float64), persistent=False)
        self.register_buffer("label_sums", torch.zeros(capacity, dtype=torch.float64), persistent=False)
        self._sums_tau: float | None = None  # the tau the sums hold; None = not kept
        self.register_load_state_dict_post_hook(CorrQueue._after_load)

    @staticmethod
    def _after_load(module: CorrQueue, _keys: object) -> None:
        module._drop_sums()

    def _drop_sums(self) -> None:
        self._sums_tau = None

    def reset(self) -> None:
        super().reset()
        self._drop_sums()

    def contents(self) -> tuple[Tensor, Tensor]:
        idx = self._order()
        return self.preds[idx], self.labels[idx]

    @torch.no_grad()
    def rank_sums(self, tau: float) -> tuple[Tensor, Tensor]:
        """(pred sums, label sums) [n] float64, oldest first (see the class docstring)."""
        from lira.losses.ranks import self_sigmoid_sums

        idx = self._order()
        if self._sums_tau != tau:
            self.pred_sums[idx] = self_sigmoid_sums(self.preds[idx].double(), tau)
            self.label_sums[idx] = self_sigmoid_sums(self.labels[idx].double(), tau)
            self._sums_tau = tau
        return self.pred_sums[idx], self.label_sums[idx]

    @torch.no_grad()
    def enqueue(self, preds: Tensor, labels: Tensor) -> None:
        preds, labels = preds.detach().reshape(-1), labels.detach().reshape(-1)
        if preds.shape != labels.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and labels {tuple(labels.shape)} differ")
        old_count = int(self.count)
        slots, kept = self._write_slots(preds.shape[0])
        if not kept:
            return
        evicted = slots[slots < old_count]  # slots that held a value before this write
        old = (self.preds[evicted].double(), self.labels[evicted].double())
        self.preds[slots] = preds[-kept:].to(self.preds)
        self.labels[slots] = labels[-kept:].to(self.labels)
        if self._sums_tau is not None:
            self._update_sums(slots, evicted, old)

    def _update_sums(self, slots: Tensor, evicted: Tensor, old: tuple[Tensor, Tensor]) -> None:
        from lira.losses.ranks import sigmoid_sums

        tau = self._sums_tau
        filled = self._order()
        written = torch.zeros(self.capacity, dtype=torch.bool, device=slots.device)
        written[slots] = True
        stay = filled[~written[filled]]
        for values, sums, gone in ((self.preds, self.pred_sums, old[0]), (self.labels, self.label_sums, old[1])):
            x = values.double()
            new = x[slots]
            delta = sigmoid_sums(x[stay], new, tau)
            if len(evicted):
                delta = delta - sigmoid_sums(x[stay], gone, tau)
            sums[stay] += delta
            sums[slots] = sigmoid_sums(new, x[filled], tau) - 0.5  # the j = k term is sigmoid(0)

class DocQueue(_Ring):
    """FIFO of the last ``capacity`` item embeddings with their language id and item id, detached.

    ``candidates(query_lang, positive_items)`` returns the stored embeddings (oldest first) and a
    [Q, n] validity mask: valid[q, j] = (lang_j == query_lang_q) AND item_j not in positives_q,
    so a query never meets one of its own positives as a negative, and negatives stay in-language.
    Item ids must be >= 0 (-1 is the padding of ``positive_items``).
    """

    def __init__(self, capacity: int, dim: int):
        super().__init__(capacity)
        self.dim = dim
        self.register_buffer("emb", torch.zeros(capacity, dim))
        self.register_buffer("lang", torch.zeros(capacity, dtype=torch.long))
        self.register_buffer("item", torch.full((capacity,), -1, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, emb: Tensor, lang: Tensor, item_ids: Tensor) -> None:
        emb, lang, item_ids = emb.detach(), lang.detach().reshape(-1), item_ids.detach().reshape(-1)
        if emb.shape[-1] != self.dim or not (emb.shape[0] == lang.shape[0] == item_ids.shape[0]):
            raise ValueError(
                f"bad shapes: emb {tuple(emb.shape)}, lang {tuple(lang.shape)}, items {tuple(item_ids.shape)}"
            )
        if (item_ids < 0).any():
            raise ValueError("item ids must be >= 0 (-1 is reserved for padding)")
        slots, kept = self._write_slots(emb.shape[0])
        if kept:
            self.emb[slots] = emb[-kept:].to(self.emb)
            self.lang[slots] = lang[-kept:].to(self.lang)
            self.item[slots] = item_ids[-kept:].to(self.item)

    def candidates(self, query_lang: Tensor, positive_items: Tensor) -> tuple[Tensor, Tensor]:
        """query_lang [Q] long, positive_items [Q, P] long (-1 padded) -> (emb [n, d], valid [Q, n])."""
        idx = self._order()
        emb, lang, item = self.emb[idx], self.lang[idx], self.item[idx]
        same_lang = lang.unsqueeze(0) == query_lang.reshape(-1, 1)  # [Q, n]
        is_pos = (item.view(1, 1, -1) == positive_items.unsqueeze(-1)).any(dim=1)  # [Q, n]
        return emb, same_lang & ~is_pos


def hard_negatives(q: Tensor, cand: Tensor, valid: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """The m hardest valid negatives per query, by cosine score.

    score[q, j] = cos(q_q, cand_j); per query keep the top-m over {j : valid[q, j]}, highest first.
    q [Q, d], cand [N, d], valid [Q, N] bool -> (scores [Q, m], mask [Q, m] bool). Where a query
    has fewer than m valid candidates, the tail has mask False and score 0 (finite, so no NaN can
    reach a loss that forgets the mask). Gradient flows to q and cand through the kept scores.
    """
    Q, N = q.shape[0], cand.shape[0]
    if m <= 0 or N == 0:
        return q.new_zeros(Q, max(m, 0)), torch.zeros(Q, max(m, 0), dtype=torch.bool, device=q.device)
    scores = F.normalize(q, dim=-1) @ F.normalize(cand, dim=-1).T  # [Q, N]
    valid = valid.bool()
    k = min(m, N)
    idx = scores.masked_fill(~valid, float("-inf")).topk(k, dim=-1).indices  # [Q, k]
    top = scores.gather(1, idx)
    ok = valid.gather(1, idx)
    top = torch.where(ok, top, torch.zeros_like(top))
    if k < m:  # fewer candidates than m in total
        top = F.pad(top, (0, m - k))
        ok = F.pad(ok, (0, m - k), value=False)
    return top, ok
