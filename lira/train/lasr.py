"""LaSR's stage-2 trainer: the fusion head on top of Arca, with CorrQueue and DocQueue.

Per step, one batch of each task present in the train split:

* retrieval (a batch of queries of ONE language): list = in-batch items (graded relevance from
  qrels) ++ the top-m hardest same-language DocQueue items (never a query's own positives);
  ``L_task`` = listwise softmax cross-entropy (target ∝ 2^rel - 1), ``L_rank`` = DocQueue objective
  (soft-nDCG@k + hinge + variance); items are enqueued only after the loss is computed;
* STS: ``L_task`` = MSE(cos(z_a, z_b), score/5), ``L_corr`` over batch ++ CorrQueue;
* multiple choice: cross-entropy over cos(z_q, z_c)/T;
* consistency: LRL-only vs English-only predictions (score MSE; symmetric KL for choices);
* anchoring: ``1 - cos(E_lr, sg(E_en))`` keeps the fine-tuned adaptor anchored.

``L = L_task + λ_corr L_corr + λ_rank L_rank + λ_cons L_cons + λ_anchor L_anchor``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lira.lasr import CorrQueue, DocQueue, hard_negatives
from lira.lasr.head import choice_logits
from lira.lasr.net import LiraNet
from lira.losses import DocQueueObjective, anchoring_loss, correlation_loss, score_mse, symmetric_kl
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
class LasrConfig:
    d_model: int = 128
    residual: bool = False
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.1
    path_dropout: float = 0.5
    corr_queue: int = 512
    corr_a: float = 0.5
    corr_tau: float = 0.05
    doc_queue: int = 1024
    top_m: int = 16
    ndcg_k: int = 10
    ndcg_tau: float = 0.05
    margin: float = 0.2
    temperature: float = 0.05
    lambda_corr: float = 0.5
    lambda_rank: float = 1.0
    lambda_hinge: float = 0.5
    lambda_var: float = 0.1
    lambda_cons: float = 0.2
    lambda_anchor: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 20
    batch_size: int = 32
    patience: int = 5
    seed: int = 13
    use_english: bool = True  # False: the "drop English" ablation (LRL path only, train and test)


@dataclass
class LasrResult:
    net: LiraNet
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    resumed_from: int | None = None


# Pairwise entries per chunk in retrieval_eval (16 MB per float32 [chunk, I, I] tensor).
_EVAL_PAIRS_PER_CHUNK = 1 << 22


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


def retrieval_eval(net: LiraNet, data: LasrData, split: str, use_english: bool = True, k: int = 10) -> dict[str, Any]:
    """Exact nDCG@k (gain 2^rel - 1) of the ``split`` queries against every item of their language.

    This is the in-training early-stopping signal, so it must be cheap: :func:`soft_ndcg` at a
    vanishing temperature is the exact nDCG@k (tested against ranx's ``ndcg_burges``), computed in
    one batched call; the reported numbers of the evaluate stage come from ranx itself.
    """
    from lira.losses import soft_ndcg

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
    # Scores -> distinct integer ranks (ties broken by item index, as ranx-based evaluation does),
    # so at tau = 0.01 every pairwise sigmoid is saturated and the soft ranks are the hard ones.
    order = torch.argsort(-scores, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order).contiguous())
    # soft_ndcg materialises [Q, I, I] pairwise tensors (140 dev queries x 700 items: 275 MB
    # each, over 1 GB at once); the lists are independent, so score a few queries at a time.
    step = max(1, _EVAL_PAIRS_PER_CHUNK // max(1, scores.shape[1] ** 2))
    neg_ranks = -ranks.float()
    per_q = torch.cat([
        soft_ndcg(neg_ranks[i : i + step], rel[i : i + step], k, tau=0.01, mask=mask[i : i + step])
        for i in range(0, len(q), step)
    ]).numpy()
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


def train_lasr(
    data: LasrData,
    net: LiraNet,
    cfg: LasrConfig,
    checkpointer: Checkpointer | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> LasrResult:
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    d = net.head.d_in  # the width of z
    corrq, docq = CorrQueue(cfg.corr_queue), DocQueue(cfg.doc_queue, d)
    # z is unit-norm, so each coordinate's std is at most ~1/sqrt(d): that is the variance target.
    objective = DocQueueObjective(k=cfg.ndcg_k, tau=cfg.ndcg_tau, margin=cfg.margin, lambda_h=cfg.lambda_hinge,
                                  lambda_r=cfg.lambda_var, target_std=0.5 / d**0.5)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    stopper = EarlyStopping(cfg.patience, mode="max")
    stateful = {"net": net, "corrq": corrq, "docq": docq, "opt": opt}
    history, start, resumed = restore(checkpointer, stateful, stopper, gen, cfg.epochs)
    sts_train = np.flatnonzero(data.sts_split == "train")
    mc_train = np.flatnonzero(data.mc_split == "train")
    en_on = cfg.use_english

    def z_of(rows: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        e_lr, e_en = net.anchored(data.lr[rows], data.en[rows])
        en_mask = data.has_en[rows] if en_on else torch.zeros(len(rows), dtype=torch.bool)
        return net.head(e_lr, e_en, data.lang[rows], en_mask=en_mask), e_lr, e_en

    def anchor_term(rows: Tensor, e_lr: Tensor, e_en: Tensor) -> Tensor:
        m = data.has_en[rows]
        return anchoring_loss(e_lr[m], e_en[m]) if m.any() else e_lr.new_zeros(())

    def consistency(rows_a: Tensor, rows_b: Tensor) -> Tensor:
        """Scores from the LRL path alone vs the English path alone should agree."""
        m = data.has_en[rows_a] & data.has_en[rows_b]
        if not en_on or not m.any():
            return data.lr.new_zeros(())
        a, b = rows_a[m], rows_b[m]
        s_lr = (net.lrl_only(data.lr[a], data.lang[a]) * net.lrl_only(data.lr[b], data.lang[b])).sum(-1)
        s_en = (net.en_only(data.en[a], data.lang[a]) * net.en_only(data.en[b], data.lang[b])).sum(-1)
        return score_mse(s_lr, s_en)

    for epoch in tqdm(range(start, cfg.epochs), desc="train_lasr", unit="epoch", disable=not progress):
        net.train()
        r_batches = _retrieval_batches(data, cfg.batch_size, gen)
        s_batches = _cycle(sts_train, cfg.batch_size, gen)
        m_batches = _cycle(mc_train, cfg.batch_size, gen)
        # An epoch is one pass over the retrieval queries (the main task); STS and MC batches cycle.
        steps = len(r_batches) or max(len(s_batches), len(m_batches))
        sums: dict[str, float] = {}
        for step in range(steps):
            losses: dict[str, Tensor] = {}
            if r_batches:
                qb = torch.as_tensor(r_batches[step % len(r_batches)])
                # Each query's primary positive (highest relevance; ties by item index) joins the batch.
                pos = [max(data.qrels[q].items(), key=lambda kv: (kv[1], -kv[0]))[0] for q in qb.tolist()]
                items = torch.as_tensor(sorted(set(pos)))
                rows_q, rows_i = data.query_text[qb], data.item_text[items]
                zq, eq_lr, eq_en = z_of(rows_q)
                zi, ei_lr, ei_en = z_of(rows_i)
                rel = torch.tensor([[float(data.qrels[q].get(i, 0)) for i in items.tolist()] for q in qb.tolist()])
                scores = zq @ zi.T
                pos_lists = [[i for i, r in data.qrels[q].items() if r > 0] for q in qb.tolist()]
                positives = torch.full((len(qb), max(map(len, pos_lists))), -1, dtype=torch.long)
                for n, pl in enumerate(pos_lists):
                    positives[n, : len(pl)] = torch.tensor(pl, dtype=torch.long)
                cand, valid = docq.candidates(data.query_lang[qb], positives)
                hard, hard_mask = hard_negatives(zq, cand, valid, cfg.top_m) if cfg.doc_queue > 0 else (scores.new_zeros(len(qb), 0), torch.zeros(len(qb), 0, dtype=torch.bool))
                all_scores = torch.cat([scores, hard], 1)
                all_rel = torch.cat([rel, torch.zeros_like(hard)], 1)
                all_mask = torch.cat([torch.ones_like(scores, dtype=torch.bool), hard_mask], 1)
                gain = (2.0**all_rel - 1.0) * all_mask
                target = gain / gain.sum(1, keepdim=True).clamp_min(1e-9)
                logits = (all_scores / cfg.temperature).masked_fill(~all_mask, float("-inf"))
                losses["retrieval"] = -(target * torch.log_softmax(logits, 1).masked_fill(~all_mask, 0.0)).sum(1).mean()
                l_rank, _ = objective(all_scores, all_rel, all_mask, torch.cat([zq, zi]))
                losses["rank"] = cfg.lambda_rank * l_rank
                losses["anchor_r"] = cfg.lambda_anchor * anchor_term(torch.cat([rows_q, rows_i]), torch.cat([eq_lr, ei_lr]), torch.cat([eq_en, ei_en]))
                qpos = torch.as_tensor(pos)
                losses["cons_r"] = cfg.lambda_cons * consistency(rows_q, data.item_text[qpos])
                pending_items = (zi.detach(), data.item_lang[items], items)
            else:
                pending_items = None
            if s_batches:
                sb = torch.as_tensor(s_batches[step % len(s_batches)])
                za, ea_lr, ea_en = z_of(data.sts_a[sb])
                zb, eb_lr, eb_en = z_of(data.sts_b[sb])
                pred = (za * zb).sum(-1)
                label = data.sts_score[sb] / 5.0
                losses["sts"] = F.mse_loss(pred, label)
                q_pred, q_label = corrq.contents()
                # Over batch ++ queue; only batch-vs-all pairs are formed (the queue keeps its own part).
                losses["corr"] = cfg.lambda_corr * correlation_loss(pred, label, a=cfg.corr_a, tau=cfg.corr_tau, queue_pred=q_pred,
                                                                    queue_label=q_label, queue_rank_sums=corrq.rank_sums(cfg.corr_tau))
                losses["cons_s"] = cfg.lambda_cons * consistency(data.sts_a[sb], data.sts_b[sb])
                pending_corr = (pred.detach(), label)
            else:
                pending_corr = None
            if m_batches:
                mb = torch.as_tensor(m_batches[step % len(m_batches)])
                ch = data.mc_choices[mb]
                cmask = ch >= 0
                zq_mc, _, _ = z_of(data.mc_q[mb])
                zc_flat, _, _ = z_of(ch.clamp_min(0).reshape(-1))
                zc = zc_flat.reshape(*ch.shape, -1)
                logits = choice_logits(zq_mc, zc, cmask, cfg.temperature)
                losses["mc"] = F.cross_entropy(logits, data.mc_answer[mb])
                # Consistency on a few questions per batch: each costs 2 x (1 + C) extra head passes.
                sub = mb[: min(len(mb), 8)]
                if en_on and data.has_en[data.mc_q[sub]].all():
                    chs, cms = data.mc_choices[sub], data.mc_choices[sub] >= 0
                    flat = chs.clamp_min(0).reshape(-1)
                    lq = net.lrl_only(data.lr[data.mc_q[sub]], data.lang[data.mc_q[sub]])
                    eq = net.en_only(data.en[data.mc_q[sub]], data.lang[data.mc_q[sub]])
                    lc = net.lrl_only(data.lr[flat], data.lang[flat]).reshape(*chs.shape, -1)
                    ec = net.en_only(data.en[flat], data.lang[flat]).reshape(*chs.shape, -1)
                    losses["cons_m"] = cfg.lambda_cons * symmetric_kl(
                        choice_logits(lq, lc, cms, cfg.temperature), choice_logits(eq, ec, cms, cfg.temperature), cms)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            # Enqueue only after the loss is computed: a batch never competes with itself.
            if pending_items is not None and cfg.doc_queue > 0:
                docq.enqueue(*pending_items)
            if pending_corr is not None and cfg.corr_queue > 0:
                corrq.enqueue(*pending_corr)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
        dev = retrieval_eval(net, data, "dev", use_english=en_on)
        row = {"epoch": epoch, **{k: v / max(steps, 1) for k, v in sums.items()}, "dev_ndcg10": dev["ndcg"]}
        history.append(row)
        stop = stopper.step(row["dev_ndcg10"] if np.isfinite(row["dev_ndcg10"]) else -row["loss"], epoch, {"net": net.state_dict()})
        save_checkpoint(checkpointer, epoch, stateful, stopper, gen, history, stop)
        if on_epoch is not None:
            on_epoch(epoch, row)
        if stop:
            break
    if stopper.best_state is not None:
        net.load_state_dict(stopper.best_state["net"])
    net.eval()
    return LasrResult(net, history, stopper.best_epoch, resumed)
