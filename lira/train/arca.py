"""Arca's stage-1 trainer: the Actor picks a candidate, the shared adaptor anchors LRL to English.

    pi = softmax(Actor([s, e, p, sim, ...]_k))          a ~ pi            (per source text)
    E_lr = A(P(H_lr)),  E_en = A(P(H_en(c_a)))
    L = L_RL + eta * L_anchor + lambda_rank * L_rank + lambda_var * L_var + lambda_self * L_self (+ lambda_nce * L_nce)
    L_RL = -log pi(a) * (R_a - b),  L_anchor = mean_slots(1 - cos(E_lr, sg(E_en)))
    L_rank = translation_ranking(u_lr, sg(u_en); in-batch + queued English negatives, margin m)
    L_self = 1 - cos(u_en, sg(unit(mean_slots P_en)))      (the English path stays the frozen encoder)

The encoders are frozen (their pooled features come from the cache) unless LoRA is on, in which
case a :class:`~lira.train.live.LiveEncoderPath` recomputes the LRL path with gradients each step
(and the dev rows each epoch) for the first ``lora_epochs`` epochs; after them the LRL features
are recomputed once through the tuned encoder (in the pipeline: merged and on its inference
engine, the features every later stage reads, ``freeze_lrl``) and the adaptor and the Actor train
on in the cheap, cached way. The untrained start scores dev on the cached frozen features: LoRA's
B matrices start at zero, so the tuned path is then the frozen encoder. The English side stays
the frozen anchor.

``L_rank`` (:func:`lira.losses.translation_ranking_loss`, LaBSE's bidirectional additive-margin
ranking) is what the cosine anchoring lacks: anchoring pulls a text onto its translation but never
pushes it away from the others. Its negatives are the batch's other chosen translations (batches
are free of duplicate source texts, and an identical translation text is masked, not a negative)
plus a FIFO of the previous batches' English targets (``rank_queue``).

Three terms are not in the paper, and all are params. ``L_self``
(:func:`lira.losses.self_anchoring_loss`, ``lambda_self``): the adaptor is shared, so the anchoring
terms move the English path too (it is the anchor only through the stop-gradient); the guard keeps
English text where the frozen English encoder puts it, so LiRA does not forget English and the LRL
path is pulled onto the frozen English space (the ``make_multilingual.py`` recipe). It is 0 at the
residual start, and applies only to the residual form (full width), which starts at the frozen encoder. The other two: ``L_var`` (a VICReg variance hinge on the
batch's unit-normalised pooled E): without it a shared adaptor drives the anchoring loss to 0 by
adding one large common offset to every output (every cosine -> 1), which we observed on the
sample (dev bitext accuracy fell from 0.4 to 0.16 while eps1 -> 0). ``L_nce`` (in-batch InfoNCE
between the paths, :func:`lira.losses.info_nce`; on by default with ``lambda_nce`` 0.5, 0 turns it
off) is the standard discriminative alignment objective.

The hyper-parameters are :class:`lira.arca.config.ArcaConfig` (params.yaml's ``train_arca``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from lira.arca import Actor, AnchorAdaptors
from lira.arca.config import ArcaConfig
from lira.distributed import all_gather_with_grad, global_batch_draws, local_rows, sync_gradients
from lira.distributed.fsdp import full_state
from lira.losses import anchoring_error, anchoring_loss, info_nce, reinforce_loss, self_anchoring_loss, variance_term
from lira.losses.reinforce import RunningMeanBaseline
from lira.losses.translation_ranking import duplicate_free_batches, translation_ranking_loss
from lira.runtime import trim_heap
from lira.train.common import Checkpointer, EarlyStopping, restore, save_checkpoint

if TYPE_CHECKING:
    from lira.train.live import LiveEncoderPath


@dataclass
class ArcaData:
    lang: Tensor  # [N] long: index into the languages list
    lr: Tensor  # [N, S, H_lr] pooled LRL features (frozen encoder)
    cand: Tensor  # [N, K, S, H_en] pooled features of each candidate translation
    feats: Tensor  # [N, K, F] Actor features
    mask: Tensor  # [N, K] bool: candidate exists
    reward: Tensor  # [N, K] critic reward, NaN = unscored
    train_idx: Tensor  # long
    dev_idx: Tensor  # long
    # Optional ids for L_rank (equal id = equal text): duplicate-free batches by source text, and an
    # identical candidate translation is never a negative of its own row.
    src_key: Tensor | None = None  # [N] long
    cand_key: Tensor | None = None  # [N, K] long (-1 where missing)


@dataclass
class ArcaResult:
    adaptors: AnchorAdaptors
    actor: Actor
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    resumed_from: int | None = None
    lora: dict[str, Tensor] | None = None  # the best epoch's LoRA weights (live path only)
    lora_config: Any = None  # peft.LoraConfig of those weights


def adaptor_width(in_lr: int, in_en: int, d: int | None) -> int:
    return d if d is not None else max(in_lr, in_en)


def build_modules(data: ArcaData, cfg: ArcaConfig, seed: int) -> tuple[AnchorAdaptors, Actor]:
    torch.manual_seed(seed)
    d = adaptor_width(data.lr.shape[-1], data.cand.shape[-1], cfg.d)
    if cfg.residual:
        widths = {max(data.lr.shape[-1], data.cand.shape[-1])} if cfg.shared_adaptor else {data.lr.shape[-1], data.cand.shape[-1]}
        if widths != {d}:
            from lira.config import ConfigError

            raise ConfigError(f"train_arca.d = {cfg.d}: the residual adaptor (train_arca.residual) needs d equal to the "
                              f"encoder width {sorted(widths)} or null")
    adaptors = AnchorAdaptors(
        data.lr.shape[-1], data.cand.shape[-1], d, shared=cfg.shared_adaptor, hidden=cfg.adaptor_hidden, dropout=cfg.dropout,
        residual=cfg.residual,
    )
    actor = Actor(data.feats.shape[-1], cfg.actor_hidden)
    return adaptors, actor


@torch.no_grad()
def dev_report(adaptors: AnchorAdaptors, actor: Actor, data: ArcaData, idx: Tensor, n_langs: int) -> dict[str, Any]:
    """eps1 (mean 1 - cos over slots) and bitext top-1 accuracy per language, greedy choices."""
    adaptors.eval()
    actor.eval()
    out: dict[str, Any] = {"eps1": {}, "eps1_raw": {}, "bitext_acc": {}, "bitext_margin": {}}
    if len(idx) == 0:
        return out
    choice = actor.greedy(data.feats[idx], data.mask[idx])
    ok = data.mask[idx].any(-1)
    idx, choice = idx[ok], choice[ok]
    e_lr, e_en = adaptors(data.lr[idx], data.cand[idx, choice])
    err = anchoring_error(e_lr, e_en)
    for li in range(n_langs):
        sel = data.lang[idx] == li
        if sel.sum() == 0:
            continue
        out["eps1_raw"][li] = float(err[sel].mean())
        # Centred per language and path: a common offset (which makes every cosine ~1 and so zeroes
        # the raw error without aligning anything) cancels out; what remains is real anchoring.
        c_lr, c_en = e_lr[sel] - e_lr[sel].mean(0), e_en[sel] - e_en[sel].mean(0)
        out["eps1"][li] = float(anchoring_error(c_lr, c_en).mean())
        a = torch.nn.functional.normalize(e_lr[sel].mean(1), dim=-1)
        b = torch.nn.functional.normalize(e_en[sel].mean(1), dim=-1)
        sim = a @ b.T
        out["bitext_acc"][li] = float(sim.argmax(1).eq(torch.arange(len(a))).float().mean())
        # How far each text's translation stands above its closest other English text (0 alone).
        other = sim.masked_fill(torch.eye(len(a), dtype=torch.bool), float("-inf")).amax(1) if len(a) > 1 else sim.diag()
        out["bitext_margin"][li] = float((sim.diag() - other).mean())
    out["eps1_mean"] = float(np.mean(list(out["eps1"].values())))
    out["eps1_raw_mean"] = float(np.mean(list(out["eps1_raw"].values())))
    return out


def dev_row(dev: dict[str, Any]) -> dict[str, float]:
    """The dev numbers of one epoch's history row (means over languages; NaN without dev rows)."""
    mean = lambda k: float(np.mean(list(dev[k].values()))) if dev.get(k) else float("nan")
    return {"dev_anchor_error": dev.get("eps1_mean", float("nan")), "dev_bitext_acc": mean("bitext_acc"),
            "dev_bitext_margin": mean("bitext_margin")}


def stop_signal(row: dict[str, float], stop_on: str) -> float:
    """The early-stopping value of a history row, oriented so that higher is better."""
    if stop_on == "eps1":
        return -row["dev_anchor_error"]
    return row["dev_bitext_acc"] + row["dev_bitext_margin"]


def epoch_batches(data: ArcaData, batch_size: int, gen: torch.Generator) -> list[Tensor]:
    """One epoch's batches of train rows, full ones only (the variance guard, the baselines and the
    ranking's negatives are noisy on tiny batches). With ``src_key`` the batches hold no source
    text twice (sentence-transformers' NO_DUPLICATES sampler; seeded from ``gen``, so a resumed
    run draws the same batches)."""
    n = len(data.train_idx)
    if data.src_key is not None:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        keys = data.src_key[data.train_idx].tolist()
        # A train split smaller than one batch still trains (one short batch), as below.
        rows = duplicate_free_batches(keys, min(batch_size, max(n, 1)), seed=seed)
        return [data.train_idx[torch.as_tensor(r, dtype=torch.long)] for r in rows]
    perm = data.train_idx[torch.randperm(n, generator=gen)]
    starts = range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size)
    return [perm[i : i + batch_size] for i in starts]


def train_arca(
    data: ArcaData,
    cfg: ArcaConfig,
    n_langs: int,
    seed: int,
    lora_lr: float | None = None,
    checkpointer: Checkpointer | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    live: LiveEncoderPath | None = None,
    progress: bool = False,
    timer: Callable[[str], AbstractContextManager] | None = None,
    freeze_lrl: Callable[[LiveEncoderPath], Tensor] | None = None,
) -> ArcaResult:
    """Train adaptor + Actor (+ the LoRA adapters of ``live``, at ``lora_lr``, default ``cfg.lr``);
    resumable; early stopping on ``cfg.stop_on`` over the dev rows, the untrained start (epoch -1
    in the history) included, so the state returned is never below the start on dev. ``timer(name)`` (a context manager) wraps the dev
    evaluation, for benchmarks.

    ``freeze_lrl(live)``: when the LoRA epochs are over, the LRL slots [N, S, H] of every row
    through the encoder as they left it (the later epochs train on those); default
    ``live.refreshed`` over all rows. The pipeline passes one that computes them as inference
    will (the adapter merged, the encoder's inference engine) into the feature cache, where the
    stages after train_arca find them, and releases the live encoder."""
    from tqdm.auto import tqdm

    timer = timer or (lambda name: nullcontext())

    adaptors, actor = build_modules(data, cfg, seed)
    baseline = RunningMeanBaseline()
    groups = [{"params": list(adaptors.parameters()) + list(actor.parameters())}]
    if live is not None:
        groups.append({"params": live.parameters(), "lr": lora_lr or cfg.lr})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    stopper = EarlyStopping(cfg.patience, mode="max")
    stateful = {"adaptors": adaptors, "actor": actor, "baseline": baseline, "opt": full_state(opt)}
    if live is not None:
        stateful["lora"] = live
    history, start, resumed = restore(checkpointer, stateful, stopper, gen, cfg.epochs)

    def snapshot() -> dict[str, Any]:
        state = {"adaptors": adaptors.state_dict(), "actor": actor.state_dict()}
        if live is not None:
            state["lora"] = live.state_dict()
        return state

    # After the LoRA epochs the encoder is fixed: its features of every row, computed once.
    tuned_lr: Tensor | None = None

    def lora_trains(epoch: int) -> bool:
        return live is not None and epoch < cfg.lora_epochs

    def score_dev(epoch: int, row: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if tuned_lr is not None:
            dev_data = replace(data, lr=tuned_lr)
        elif live is not None and not live.adapters_are_zero():
            dev_data = replace(data, lr=live.refreshed(data.lr, data.dev_idx))
        else:
            dev_data = data
        with timer("dev_report"):
            dev = dev_report(adaptors, actor, dev_data, data.dev_idx, n_langs)
        row = {**row, **dev_row(dev)}
        history.append(row)
        value = stop_signal(row, cfg.stop_on)
        # No dev rows: nothing to choose by, so the last epoch is kept (a NaN never counts as better).
        return row, stopper.step(value if np.isfinite(value) else float(epoch), epoch, snapshot())

    if start == 0:
        # Epoch -1 is the untrained start: kept unless a trained epoch beats it on dev.
        score_dev(-1, {"epoch": -1})
    has_reward = bool(torch.isfinite(data.reward).any())
    epochs = range(start, cfg.epochs)
    for epoch in tqdm(epochs, desc="train_arca", unit="epoch", disable=not progress):
        # L_rank's FIFO of past English targets (unit rows) and their candidate-text ids; emptied
        # each epoch (as in bench/recipe.py), so a run resumed at an epoch boundary is exact.
        queue_vec = torch.zeros(0, adaptor_width(data.lr.shape[-1], data.cand.shape[-1], cfg.d))
        queue_grp = torch.zeros(0, dtype=torch.long)
        adaptors.train()
        actor.train()
        live_now = lora_trains(epoch)
        if live is not None and not live_now and tuned_lr is None:
            # The LoRA epochs are over (or were, before a resume): freeze the encoder's features.
            live.train(False)
            tuned_lr = freeze_lrl(live) if freeze_lrl is not None else live.refreshed(data.lr, torch.arange(len(data.lr)))
        if live_now:
            live.train()
        batches = epoch_batches(data, cfg.batch_size, gen)
        sums = {"loss": 0.0, "rl": 0.0, "anchor": 0.0, "rank": 0.0, "var": 0.0, "nce": 0.0, "self": 0.0}
        n_batches = 0
        # With a live encoder an epoch takes minutes on a CPU: show the batches too.
        for b in tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not progress or not live_now):
            b = b[data.mask[b].any(-1)]
            if len(b) < 2:
                continue
            # Under torchrun each rank runs its chunk of the batch; the losses below see the gathered
            # global batch (lira.distributed.gather), so every rank draws the same actions from ``gen``.
            b_loc = local_rows(b)
            logp = all_gather_with_grad(actor.log_probs(data.feats[b_loc], data.mask[b_loc]))
            a = torch.multinomial(logp.exp().detach(), 1, generator=gen).squeeze(-1)
            reward = torch.nan_to_num(data.reward[b], nan=0.0)
            valid = data.mask[b] & torch.isfinite(data.reward[b])
            # An unscored pick (NaN reward) carries no signal: its row leaves the RL term instead of
            # counting as reward 0 (reinforce_loss refuses such an action).
            rl = valid.gather(1, a[:, None]).squeeze(1)
            if has_reward and bool(rl.any()):
                l_rl = reinforce_loss(logp[rl], a[rl], reward[rl], valid[rl], cfg.baseline,
                                      baseline.value if cfg.baseline == "running_mean" else None)
                baseline.update(reward[rl].gather(1, a[rl][:, None]).squeeze(1))
            else:
                l_rl = logp.new_zeros(())
            p_lr = live.local_slots(b) if live_now else (tuned_lr if tuned_lr is not None else data.lr)[b_loc]
            with global_batch_draws(len(b)):  # the dropout masks one process draws (lira.distributed.draws)
                e_lr, e_en = map(all_gather_with_grad, adaptors(p_lr, data.cand[b_loc, local_rows(a)]))
            l_anchor = anchoring_loss(e_lr, e_en, stop_grad_en=cfg.stop_grad_en)
            u_lr = torch.nn.functional.normalize(e_lr.mean(1), dim=-1)
            u_en = torch.nn.functional.normalize(e_en.mean(1), dim=-1)
            if cfg.lambda_var > 0:
                # On unit vectors: a constant offset (cos -> 1 for every pair) shows up as std -> 0.
                target = cfg.var_target / u_lr.shape[-1] ** 0.5
                l_var = variance_term(u_lr, target) + variance_term(u_en, target)
            else:
                l_var = l_anchor.new_zeros(())
            l_nce = info_nce(u_lr, u_en, cfg.nce_temperature) if cfg.lambda_nce > 0 else l_anchor.new_zeros(())
            l_self = l_anchor.new_zeros(())
            if cfg.lambda_self > 0 and cfg.residual and u_en.shape[-1] == data.cand.shape[-1]:
                # The frozen English embedding of the chosen translations (the global batch, as u_en).
                l_self = self_anchoring_loss(u_en, torch.nn.functional.normalize(data.cand[b, a].mean(1), dim=-1))
            if cfg.lambda_rank > 0:
                target = u_en.detach() if cfg.stop_grad_en else u_en
                group = data.cand_key[b, a] if data.cand_key is not None else None
                has_q = len(queue_vec) > 0
                l_rank = translation_ranking_loss(
                    u_lr, target, scale=cfg.rank_scale, margin=cfg.rank_margin, symmetric=cfg.rank_symmetric,
                    group=group, extra_en=queue_vec if has_q else None,
                    extra_group=queue_grp if has_q and group is not None else None)
            else:
                l_rank = l_anchor.new_zeros(())
            loss = (l_rl + cfg.eta * l_anchor + cfg.lambda_rank * l_rank + cfg.lambda_var * l_var + cfg.lambda_nce * l_nce
                    + cfg.lambda_self * l_self)
            opt.zero_grad()
            loss.backward()
            sync_gradients(opt)
            opt.step()
            if live_now:
                trim_heap()  # the encoder's activations of this batch's length (lira.runtime.trim_heap)
            if cfg.lambda_rank > 0 and cfg.rank_queue > 0:
                # Enqueued after the loss: a batch is never its own negative (-1: no id to mask by).
                grp = group if group is not None else torch.full((len(b),), -1, dtype=torch.long)
                queue_vec = torch.cat([u_en.detach(), queue_vec])[: cfg.rank_queue]
                queue_grp = torch.cat([grp, queue_grp])[: cfg.rank_queue]
            for k, v in (("loss", loss), ("rl", l_rl), ("anchor", l_anchor), ("rank", l_rank), ("var", l_var),
                         ("nce", l_nce), ("self", l_self)):
                sums[k] += float(v.detach())
            n_batches += 1
        row, stop = score_dev(epoch, {"epoch": epoch, **{k: v / max(n_batches, 1) for k, v in sums.items()}})
        save_checkpoint(checkpointer, epoch, stateful, stopper, gen, history, stop)
        if on_epoch is not None:
            on_epoch(epoch, row)
        if stop:
            break
    if stopper.best_state is not None:
        adaptors.load_state_dict(stopper.best_state["adaptors"])
        actor.load_state_dict(stopper.best_state["actor"])
        if live is not None:
            live.load_state_dict(stopper.best_state["lora"])
    adaptors.eval()
    actor.eval()
    lora = None
    if live is not None:
        live.train(False)
        lora = live.state_dict()
    return ArcaResult(adaptors, actor, history, stopper.best_epoch, resumed, lora, live.lora_config if live else None)
