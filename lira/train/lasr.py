"""LaSR's stage-2 trainer: the fusion head on top of Arca, with CorrQueue and DocQueue.

Per step, one batch of each task present in the train split:

* retrieval (a batch of queries of ONE language): list = in-batch items (graded relevance from
  qrels) ++ the top-m hardest same-language DocQueue items (never a query's own positives);
  ``L_task`` = listwise softmax cross-entropy (target ∝ 2^rel - 1), ``L_rank`` = DocQueue objective
  (soft-nDCG@k + hinge + variance); items are enqueued only after the loss is computed;
* STS: ``L_task`` = MSE(cos(z_a, z_b), score/5), ``L_corr`` over batch ++ CorrQueue;
* multiple choice: cross-entropy over cos(z_q, z_c)/T;
* consistency: LRL-only vs English-only predictions (score MSE; symmetric KL for choices);
* anchoring: ``1 - cos(E_lr, sg(E_en))`` keeps the fine-tuned adaptor anchored;
* English self-anchoring (retrieval and STS batches): ``1 - cos(z_en(x), sg(f_en(x)))`` on the
  batch's translations, z_en = the English path through the head's anchor entry, f_en = the frozen
  English embedding, so LiRA does not forget English (:func:`lira.losses.self_anchoring_loss`).

``L = L_task + λ_corr L_corr + λ_rank L_rank + λ_cons L_cons + λ_anchor L_anchor + λ_self L_self``.

Each task is one named step (:func:`retrieval_step`, :func:`sts_step`, :func:`mc_step`); the
hyper-parameters are :class:`lira.lasr.config.LasrConfig` (params.yaml's ``train_lasr``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lira.distributed import all_gather_with_grad, global_batch_draws, local_rows, sync_gradients
from lira.lasr import CorrQueue, DocQueue, hard_negatives
from lira.lasr.config import LasrConfig
from lira.lasr.head import choice_logits
from lira.lasr.net import LiraNet
from lira.losses import (
    DocQueueObjective,
    anchoring_loss,
    choice_cross_entropy,
    correlation_loss,
    listwise_softmax_ce,
    score_mse,
    self_anchoring_loss,
    symmetric_kl,
)
from lira.train.common import Checkpointer, EarlyStopping, restore, save_checkpoint


@dataclass
class LasrData:
    """Everything indexes the text arrays (``lr``/``en`` rows)."""

    lr: Tensor  # [N,S,H_lr]
    en: Tensor  # [N,S,H_en] (zeros where no translation)
    has_en: Tensor  # [N] bool
    lang: Tensor  # [N] long
    # retrieval
    item_text: Tensor  # [I] text row of each item
    item_lang: Tensor  # [I]
    query_text: Tensor  # [Q]
    query_lang: Tensor  # [Q]
    query_split: np.ndarray  # [Q] str
    qrels: list[dict[int, int]]  # per query: item index -> relevance
    # sts
    sts_a: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    sts_b: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    sts_score: Tensor = field(default_factory=lambda: torch.zeros(0))
    sts_split: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    # multiple choice
    mc_q: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    mc_choices: Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))  # -1 padded
    mc_answer: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    mc_split: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))


@dataclass
class LasrResult:
    net: LiraNet
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    resumed_from: int | None = None


# Pairwise entries per chunk in retrieval_eval (16 MB per float32 [chunk, I, I] tensor).


@torch.no_grad()
def embed_rows(net: LiraNet, data: LasrData, rows: Tensor, use_english: bool = True, batch: int = 512) -> Tensor:
    """z of text rows (eval mode; the English path where a translation exists and use_english)."""
    net.eval()
    out = []
    for i in range(0, len(rows), batch):
        r = rows[i : i + batch]
        en_mask = data.has_en[r] if use_english else torch.zeros(len(r), dtype=torch.bool)
        out.append(net(data.lr[r], data.en[r], data.lang[r], en_mask=en_mask))
    return torch.cat(out) if out else torch.zeros(0, net.head.d_in)


def retrieval_eval(net: LiraNet, data: LasrData, split: str, use_english: bool = True, k: int = 10,
                   lrl_only_too: bool = False) -> dict[str, Any]:
    """Exact nDCG@k (gain 2^rel - 1) of the ``split`` queries against every item of their language.

    This is the in-training early-stopping signal, so it must be cheap: :func:`exact_ndcg` sorts
    each query's list once (tested equal to ranx's ``ndcg_burges`` and to :func:`soft_ndcg` at a
    vanishing temperature, which this used before at O(items^2) per query - 4 of a cold
    train_lasr's 15 s); the reported numbers of the evaluate stage come from ranx itself.
    """
    from lira.losses import exact_ndcg

    if lrl_only_too:  # ``ndcg_lrl_only``: the same queries on the LRL path alone (= ndcg without English)
        out = retrieval_eval(net, data, split, use_english, k)
        out["ndcg_lrl_only"] = retrieval_eval(net, data, split, False, k)["ndcg"] if use_english else out["ndcg"]
        return out
    q = np.flatnonzero(data.query_split == split)
    if len(q) == 0:
        return {"ndcg": float("nan"), "per_query": np.zeros(0), "query_index": q}
    zq = embed_rows(net, data, data.query_text[q], use_english)
    zi = embed_rows(net, data, data.item_text, use_english)
    scores = zq @ zi.T
    mask = data.query_lang[q][:, None] == data.item_lang[None, :]
    rel = torch.zeros_like(scores)
    for n, j in enumerate(q):
        for i, r in data.qrels[j].items():
            rel[n, i] = float(r)
    per_q = exact_ndcg(scores, rel, k, mask=mask).numpy()
    return {"ndcg": float(per_q.mean()), "per_query": per_q, "query_index": q}


def _cycle(idx: np.ndarray, bs: int, gen: torch.Generator) -> list[np.ndarray]:
    if len(idx) == 0:
        return []
    perm = idx[torch.randperm(len(idx), generator=gen).numpy()]
    n = max(len(perm) // bs, 1)
    return [perm[i * bs : (i + 1) * bs] for i in range(n)]  # the last short batch is dropped


def _retrieval_batches(data: LasrData, bs: int, gen: torch.Generator) -> list[np.ndarray]:
    """Batches of train queries, each of one language (so in-batch negatives are in-language)."""
    train = np.flatnonzero(data.query_split == "train")
    batches = []
    for lang in torch.unique(data.query_lang[train]).tolist():
        sel = train[(data.query_lang[train] == lang).numpy()]
        if len(sel) >= 2:
            batches += _cycle(sel, min(bs, len(sel)), gen)
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


_NO_TIMER: Callable[[str], AbstractContextManager] = lambda name: nullcontext()


@dataclass
class LasrStep:
    """What the task steps of one training step share: the data, the net, the queues, the config.

    ``timer(name)`` wraps each named piece of work (a context manager; a no-op by default) so that
    a benchmark can time the steps, the queue operations and the losses without patching.
    """

    data: LasrData
    net: LiraNet
    cfg: LasrConfig
    corrq: CorrQueue
    docq: DocQueue
    objective: DocQueueObjective
    timer: Callable[[str], AbstractContextManager] = _NO_TIMER

    def z_of(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        # Under torchrun each rank runs its chunk of ``rows``; every loss sees the gathered rows
        # (lira.distributed.gather), and the queues are filled with them, identically on every rank.
        # The chunk's dropout masks are those one process draws for ``rows`` (lira.distributed.draws).
        with global_batch_draws(len(rows)):
            d, rows = self.data, local_rows(rows)
            e_lr, e_en = self.net.anchored(d.lr[rows], d.en[rows])
            en_mask = d.has_en[rows] if self.cfg.use_english else torch.zeros(len(rows), dtype=torch.bool)
            z = self.net.head(e_lr, e_en, d.lang[rows], en_mask=en_mask)
        return all_gather_with_grad(z), all_gather_with_grad(e_lr), all_gather_with_grad(e_en)

    def lrl_only(self, rows: Tensor) -> Tensor:
        with global_batch_draws(len(rows)):
            rows = local_rows(rows)
            z = self.net.lrl_only(self.data.lr[rows], self.data.lang[rows])
        return all_gather_with_grad(z)

    def en_only(self, rows: Tensor) -> Tensor:
        with global_batch_draws(len(rows)):
            rows = local_rows(rows)
            z = en_only(self.net, self.data.en[rows], self.data.lang[rows])
        return all_gather_with_grad(z)

    def anchor_term(self, rows: Tensor, e_lr: Tensor, e_en: Tensor) -> Tensor:
        m = self.data.has_en[rows]
        return anchoring_loss(e_lr[m], e_en[m]) if m.any() else e_lr.new_zeros(())

    def self_anchor_term(self, rows: Tensor) -> Tensor:
        """L_self on the rows' translations: the English path alone vs the frozen English embedding."""
        d = self.data
        rows = rows[d.has_en[rows]]
        residual = self.net.head.residual and self.net.adaptors.config()["residual"]  # the forms that start at frozen
        if (self.cfg.lambda_self == 0 or not self.cfg.use_english or len(rows) == 0 or not residual
                or self.net.head.d_in != d.en.shape[-1]):
            return d.lr.new_zeros(())
        return self_anchoring_loss(self.en_only(rows), F.normalize(d.en[rows].mean(1), dim=-1))

    def consistency(self, rows_a: Tensor, rows_b: Tensor) -> Tensor:
        """Scores from the LRL path alone vs the English path alone should agree."""
        d = self.data
        m = d.has_en[rows_a] & d.has_en[rows_b]
        if not self.cfg.use_english or not m.any():
            return d.lr.new_zeros(())
        a, b = rows_a[m], rows_b[m]
        s_lr = (self.lrl_only(a) * self.lrl_only(b)).sum(-1)
        s_en = (self.en_only(a) * self.en_only(b)).sum(-1)
        return score_mse(s_lr, s_en)


def en_only(net: LiraNet, en: Tensor, lang: Tensor) -> Tensor:
    """The English path alone, read as anchor-language text (the head's anchor entry, as at
    inference on English text) where the head has one; else under the source text's language."""
    return net.en_only(en, None if net.head.anchor_index is not None else lang)


Pending = Callable[[], None]  # a queue update to run once the step's loss is computed


def retrieval_step(st: LasrStep, qb: Tensor) -> tuple[dict[str, Tensor], Pending]:
    """One batch of queries (one language): in-batch items ++ DocQueue hard negatives.

    L_task = listwise softmax cross-entropy, L_rank = the DocQueue objective, plus the anchoring
    and consistency terms; the batch's items are enqueued afterwards (the returned callable).
    """
    d, cfg = st.data, st.cfg
    # Each query's primary positive (highest relevance; ties by item index) joins the batch.
    pos = [max(d.qrels[q].items(), key=lambda kv: (kv[1], -kv[0]))[0] for q in qb.tolist()]
    items = torch.as_tensor(sorted(set(pos)))
    rows_q, rows_i = d.query_text[qb], d.item_text[items]
    zq, eq_lr, eq_en = st.z_of(rows_q)
    zi, ei_lr, ei_en = st.z_of(rows_i)
    rel = torch.tensor([[float(d.qrels[q].get(i, 0)) for i in items.tolist()] for q in qb.tolist()])
    scores = zq @ zi.T
    pos_lists = [[i for i, r in d.qrels[q].items() if r > 0] for q in qb.tolist()]
    positives = torch.full((len(qb), max(map(len, pos_lists))), -1, dtype=torch.long)
    for n, pl in enumerate(pos_lists):
        positives[n, : len(pl)] = torch.tensor(pl, dtype=torch.long)
    with st.timer("doc.candidates"):
        cand, valid = st.docq.candidates(d.query_lang[qb], positives)
    if cfg.doc_queue > 0:
        with st.timer("hard_negatives"):
            hard, hard_mask = hard_negatives(zq, cand, valid, cfg.top_m)
    else:
        hard, hard_mask = scores.new_zeros(len(qb), 0), torch.zeros(len(qb), 0, dtype=torch.bool)
    all_scores = torch.cat([scores, hard], 1)
    all_rel = torch.cat([rel, torch.zeros_like(hard)], 1)
    all_mask = torch.cat([torch.ones_like(scores, dtype=torch.bool), hard_mask], 1)
    losses = {"retrieval": listwise_softmax_ce(all_scores, all_rel, all_mask, cfg.temperature)}
    l_rank, _ = st.objective(all_scores, all_rel, all_mask, torch.cat([zq, zi]))
    losses["rank"] = cfg.lambda_rank * l_rank
    losses["anchor_r"] = cfg.lambda_anchor * st.anchor_term(torch.cat([rows_q, rows_i]), torch.cat([eq_lr, ei_lr]), torch.cat([eq_en, ei_en]))
    losses["cons_r"] = cfg.lambda_cons * st.consistency(rows_q, d.item_text[torch.as_tensor(pos)])
    losses["self_r"] = cfg.lambda_self * st.self_anchor_term(torch.cat([rows_q, rows_i]))
    pending = (zi.detach(), d.item_lang[items], items)

    def enqueue() -> None:
        if cfg.doc_queue > 0:
            with st.timer("doc.enqueue"):
                st.docq.enqueue(*pending)

    return losses, enqueue


def sts_step(st: LasrStep, sb: Tensor) -> tuple[dict[str, Tensor], Pending]:
    """One batch of STS pairs: L_task = MSE(cos(z_a, z_b), score / 5), L_corr over batch ++ CorrQueue."""
    d, cfg = st.data, st.cfg
    za, _, _ = st.z_of(d.sts_a[sb])
    zb, _, _ = st.z_of(d.sts_b[sb])
    pred = (za * zb).sum(-1)
    label = d.sts_score[sb] / 5.0
    losses = {"sts": F.mse_loss(pred, label)}
    with st.timer("corr.contents"):
        q_pred, q_label = st.corrq.contents()
    with st.timer("corr_loss_forward"):
        # Over batch ++ queue; only batch-vs-all pairs are formed (the queue keeps its own part).
        l_corr = correlation_loss(pred, label, a=cfg.corr_a, tau=cfg.corr_tau, queue_pred=q_pred, queue_label=q_label,
                                  queue_rank_sums=st.corrq.rank_sums(cfg.corr_tau))
    losses["corr"] = cfg.lambda_corr * l_corr
    losses["cons_s"] = cfg.lambda_cons * st.consistency(d.sts_a[sb], d.sts_b[sb])
    losses["self_s"] = cfg.lambda_self * st.self_anchor_term(torch.cat([d.sts_a[sb], d.sts_b[sb]]))
    pending = (pred.detach(), label)

    def enqueue() -> None:
        if cfg.corr_queue > 0:
            with st.timer("corr.enqueue"):
                st.corrq.enqueue(*pending)

    return losses, enqueue


def mc_step(st: LasrStep, mb: Tensor) -> dict[str, Tensor]:
    """One batch of multiple-choice questions: cross-entropy over cos(z_q, z_c) / T, plus the
    symmetric KL between the LRL-only and English-only choice distributions on a few of them."""
    d, cfg = st.data, st.cfg
    ch = d.mc_choices[mb]
    cmask = ch >= 0
    zq_mc, _, _ = st.z_of(d.mc_q[mb])
    zc_flat, _, _ = st.z_of(ch.clamp_min(0).reshape(-1))
    zc = zc_flat.reshape(*ch.shape, -1)
    losses = {"mc": choice_cross_entropy(choice_logits(zq_mc, zc, cmask, cfg.temperature), d.mc_answer[mb])}
    # Consistency on a few questions per batch: each costs 2 x (1 + C) extra head passes.
    sub = mb[: min(len(mb), 8)]
    if cfg.use_english and d.has_en[d.mc_q[sub]].all():
        chs, cms = d.mc_choices[sub], d.mc_choices[sub] >= 0
        flat = chs.clamp_min(0).reshape(-1)
        lq, eq = st.lrl_only(d.mc_q[sub]), st.en_only(d.mc_q[sub])
        lc = st.lrl_only(flat).reshape(*chs.shape, -1)
        ec = st.en_only(flat).reshape(*chs.shape, -1)
        losses["cons_m"] = cfg.lambda_cons * symmetric_kl(
            choice_logits(lq, lc, cms, cfg.temperature), choice_logits(eq, ec, cms, cfg.temperature), cms)
    return losses


def epoch_batches(data: LasrData, batch_size: int, gen: torch.Generator) -> tuple[list, list, list]:
    """(retrieval, STS, MC) batches of one epoch, in the order the generator draws them."""
    r = _retrieval_batches(data, batch_size, gen)
    s = _cycle(np.flatnonzero(data.sts_split == "train"), batch_size, gen)
    m = _cycle(np.flatnonzero(data.mc_split == "train"), batch_size, gen)
    return r, s, m


def stop_value(row: dict[str, float], start: dict[str, float] | None, stop_on: str) -> float:
    """The early-stopping value of a history row (higher is better).

    ``fused``: dev nDCG@10 of the fused path. ``both``: the mean of the fused and the LRL-only dev
    nDCG@10, and a trained epoch in which either path is below the untrained start (``start``, the
    epoch -1 row) on dev scores 1 lower, so it can never be kept over the start: each path the
    model serves is never below where it started. No dev queries: the lower train loss decides
    (the untrained start has none: it never wins then).
    """
    fused, lrl = row["dev_ndcg10"], row.get("dev_ndcg10_lrl_only", float("nan"))
    if not np.isfinite(fused):
        return -row.get("loss", float("inf"))
    if stop_on == "fused" or not np.isfinite(lrl):
        return fused
    value = 0.5 * (fused + lrl)
    if start is not None and row is not start and (fused < start["dev_ndcg10"] or lrl < start["dev_ndcg10_lrl_only"]):
        value -= 1.0
    return value


def train_lasr(
    data: LasrData,
    net: LiraNet,
    cfg: LasrConfig,
    seed: int,
    checkpointer: Checkpointer | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    timer: Callable[[str], AbstractContextManager] | None = None,
    queues: tuple[CorrQueue, DocQueue] | None = None,
) -> LasrResult:
    """Train ``net`` (Arca's adaptors + the LaSR head); resumable; early stopping on dev nDCG@10, the untrained
    start (epoch -1 in the history) scored too, so the net returned is never below it on dev.

    ``timer`` and ``queues`` (e.g. pre-filled ones) are for benchmarks; by default the queues start
    empty at the capacities ``cfg`` names.
    """
    from tqdm.auto import tqdm

    timer = timer or _NO_TIMER
    torch.manual_seed(seed)
    d = net.head.d_in  # the width of z
    corrq, docq = queues if queues is not None else (CorrQueue(cfg.corr_queue), DocQueue(cfg.doc_queue, d))
    # z is unit-norm, so each coordinate's std is at most ~1/sqrt(d): the target is a share of that.
    objective = DocQueueObjective(k=cfg.ndcg_k, tau=cfg.ndcg_tau, margin=cfg.margin, lambda_h=cfg.lambda_hinge,
                                  lambda_r=cfg.lambda_var, target_std=cfg.var_target / d**0.5)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    stopper = EarlyStopping(cfg.patience, mode="max")
    stateful = {"net": net, "corrq": corrq, "docq": docq, "opt": opt}
    history, start, resumed = restore(checkpointer, stateful, stopper, gen, cfg.epochs)
    st = LasrStep(data, net, cfg, corrq, docq, objective, timer)

    def score_dev(epoch: int, row: dict[str, float]) -> tuple[dict[str, float], bool]:
        with timer("retrieval_eval"):
            # The LRL-only path (no translation at inference) is scored too: it is a product of its own.
            dev = retrieval_eval(net, data, "dev", use_english=cfg.use_english, lrl_only_too=True)
        row = {**row, "dev_ndcg10": dev["ndcg"], "dev_ndcg10_lrl_only": dev.get("ndcg_lrl_only", float("nan"))}
        history.append(row)
        value = stop_value(row, next((r for r in history if r["epoch"] == -1), None), cfg.stop_on)
        return row, stopper.step(value, epoch, {"net": net.state_dict()})

    if start == 0:
        # Epoch -1 is the untrained start (Arca's adaptors, a fresh head): kept unless an epoch beats it on dev.
        score_dev(-1, {"epoch": -1})

    for epoch in tqdm(range(start, cfg.epochs), desc="train_lasr", unit="epoch", disable=not progress):
        net.train()
        r_batches, s_batches, m_batches = epoch_batches(data, cfg.batch_size, gen)
        # An epoch is one pass over the retrieval queries (the main task); STS and MC batches cycle.
        steps = len(r_batches) or max(len(s_batches), len(m_batches))
        sums: dict[str, float] = {}
        for step in range(steps):
            losses: dict[str, Tensor] = {}
            pending: list[Pending] = []
            if r_batches:
                with timer("retrieval_step"):
                    out, after = retrieval_step(st, torch.as_tensor(r_batches[step % len(r_batches)]))
                losses.update(out)
                pending.append(after)
            if s_batches:
                with timer("sts_step"):
                    out, after = sts_step(st, torch.as_tensor(s_batches[step % len(s_batches)]))
                losses.update(out)
                pending.append(after)
            if m_batches:
                with timer("mc_step"):
                    losses.update(mc_step(st, torch.as_tensor(m_batches[step % len(m_batches)])))
            loss = sum(losses.values())
            with timer("backward"):
                opt.zero_grad()
                loss.backward()
                sync_gradients(opt)
                opt.step()
            # Enqueue only after the loss is computed: a batch never competes with itself.
            for after in pending:
                after()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
        row, stop = score_dev(epoch, {"epoch": epoch, **{k: v / max(steps, 1) for k, v in sums.items()}})
        save_checkpoint(checkpointer, epoch, stateful, stopper, gen, history, stop)
        if on_epoch is not None:
            on_epoch(epoch, row)
        if stop:
            break
    if stopper.best_state is not None:
        net.load_state_dict(stopper.best_state["net"])
    net.eval()
    return LasrResult(net, history, stopper.best_epoch, resumed)
