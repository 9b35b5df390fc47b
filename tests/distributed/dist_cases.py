"""What the distributed tests run: tiny cases built here, and the per-rank entry point.

A rank process (torch.multiprocessing.spawn) joins a gloo group from the same environment variables
torchrun sets, runs a case, and writes what it ended with under ``out/`` (safetensors and JSON:
nothing is pickled back to the test).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from lira.arca import AnchorAdaptors
from lira.arca.config import ArcaConfig
from lira.lasr import CorrQueue, DocQueue
from lira.lasr.config import LasrConfig
from lira.lasr.head import LaSRHead
from lira.lasr.net import LiraNet
from lira.train.arca import ArcaData, train_arca
from lira.train.common import Checkpointer
from lira.train.lasr import LasrData, train_lasr

SEED = 5
# Dropout on (the params' defaults): each rank draws the masks one process draws for the global
# batch and keeps its rows (lira.distributed.draws), so the runs agree to rounding with it.
ARCA = ArcaConfig(d=8, residual=False, epochs=3, batch_size=16, patience=10, lr=5e-3, dropout=0.1,
                  lambda_nce=0.5, lambda_var=1.0, baseline="leave_one_out")
LASR = LasrConfig(epochs=3, batch_size=6, patience=10, corr_queue=12, doc_queue=12, top_m=3, lr=3e-3, dropout=0.1,
                  path_dropout=0.5)
# The live LoRA path (train_arca tunes the LRL encoder's adapters) on a tiny BERT (width 32, its
# own hidden and attention dropout 0.1) with LoRA dropout 0.1: under torchrun sharded by FSDP2.
ARCA_LIVE = ArcaConfig(d=8, residual=False, epochs=3, lora_epochs=2, batch_size=8, patience=10, lr=5e-3, dropout=0.1,
                       lambda_nce=0.5, lambda_var=1.0, baseline="leave_one_out")
LIVE_LORA_LR = 5e-3
LIVE_TEXTS = [f"the river {w} flows past mill {i}" for i, w in enumerate(
    ["slowly", "fast", "north", "under the old bridge", "at night", "in spring", "quietly", "loud", "west", "again",
     "twice", "south", "by the town", "east", "far", "near", "down", "up", "home", "away", "over", "out", "in", "on"])]


def arca_case(n: int = 48, k: int = 3, h: int = 8) -> ArcaData:
    g = torch.Generator().manual_seed(0)
    lr = torch.randn(n, 1, h, generator=g)
    clean = lr @ (torch.randn(h, h, generator=g) / h**0.5)
    cand = torch.stack([clean + 0.05 * torch.randn(n, 1, h, generator=g), clean + 0.5 * torch.randn(n, 1, h, generator=g),
                        torch.randn(n, 1, h, generator=g)], 1)
    quality = torch.tensor([0.9, 0.6, 0.1])
    feats = torch.stack([quality.expand(n, k) + 0.05 * torch.randn(n, k, generator=g), torch.zeros(n, k)], -1)
    reward = quality.expand(n, k) + 0.05 * torch.randn(n, k, generator=g)
    idx = torch.arange(n)
    return ArcaData(lang=idx % 2, lr=lr, cand=cand, feats=feats, mask=torch.ones(n, k, dtype=torch.bool), reward=reward,
                    train_idx=idx[:36], dev_idx=idx[36:])


def lasr_case(n_items: int = 16, n_queries: int = 28, h: int = 8) -> LasrData:
    g = torch.Generator().manual_seed(1)
    items = torch.randn(n_items, 1, h, generator=g)
    target = torch.arange(n_queries) % n_items
    queries = items[target] + 0.3 * torch.randn(n_queries, 1, h, generator=g)
    sts_a = torch.randn(20, 1, h, generator=g)
    sts_b = sts_a + torch.linspace(0.1, 2.0, 20)[:, None, None] * torch.randn(20, 1, h, generator=g)
    mc_q = torch.randn(8, 1, h, generator=g)
    mc_c = torch.randn(8, 3, 1, h, generator=g)
    mc_c[:, 1] = mc_q + 0.1 * torch.randn(8, 1, h, generator=g)
    lr = torch.cat([items, queries, sts_a, sts_b, mc_q, mc_c.reshape(-1, 1, h)])
    n, off = len(lr), n_items + n_queries
    item_lang = torch.arange(n_items) % 2
    lang = torch.zeros(n, dtype=torch.long)
    lang[:n_items], lang[n_items:off] = item_lang, item_lang[target]
    mc_base = off + 40
    return LasrData(
        lr=lr, en=lr + 0.05 * torch.randn(n, 1, h, generator=g), has_en=torch.ones(n, dtype=torch.bool), lang=lang,
        item_text=torch.arange(n_items), item_lang=item_lang, query_text=torch.arange(n_items, off),
        query_lang=item_lang[target], query_split=np.array(["train"] * 20 + ["dev"] * 8, dtype=object),
        qrels=[{int(t): 2, int((t + 2) % n_items): 1} for t in target],
        sts_a=torch.arange(off, off + 20), sts_b=torch.arange(off + 20, off + 40), sts_score=torch.linspace(5.0, 0.0, 20),
        sts_split=np.array(["train"] * 14 + ["test"] * 6, dtype=object),
        mc_q=torch.arange(mc_base, mc_base + 8),
        mc_choices=torch.stack([torch.arange(mc_base + 8 + 3 * i, mc_base + 11 + 3 * i) for i in range(8)]),
        mc_answer=torch.ones(8, dtype=torch.long), mc_split=np.array(["train"] * 6 + ["test"] * 2, dtype=object),
    )


def lasr_net() -> LiraNet:
    torch.manual_seed(2)
    return LiraNet(AnchorAdaptors(8, 8, 8, residual=False), LaSRHead(8, n_langs=2, n_slots=1, n_layers=1, n_heads=2,
                                                                     dropout=0.0, path_dropout=0.0))


def queues() -> tuple[CorrQueue, DocQueue]:
    return CorrQueue(LASR.corr_queue), DocQueue(LASR.doc_queue, 8)


def flat_state(prefix: str, state: dict) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().clone().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}


def run_training(out: Path, tag: str) -> None:
    """Arca then LaSR on the tiny cases; weights, queues and loss histories to ``out``."""
    from safetensors.torch import save_file

    from lira.distributed import world_size

    # The last epoch's weights are in the checkpoints (the results hold the best epoch's, which may
    # be the untrained start on a case this small): one folder per world size, written by rank 0.
    ck = out / f"ck-world{world_size()}"
    arca = train_arca(arca_case(), ARCA, n_langs=2, seed=SEED, checkpointer=Checkpointer(ck, "arca"))
    corrq, docq = queues()
    lasr = train_lasr(lasr_case(), lasr_net(), LASR, SEED, queues=(corrq, docq), checkpointer=Checkpointer(ck, "lasr"))
    tensors = {**flat_state("corrq", corrq.state_dict()), **flat_state("docq", docq.state_dict()),
               **flat_state("best.adaptors", arca.adaptors.state_dict()), **flat_state("best.actor", arca.actor.state_dict()),
               **flat_state("best.net", lasr.net.state_dict())}
    save_file(tensors, str(out / f"{tag}.safetensors"))
    hist = {"arca": arca.history, "lasr": lasr.history}
    (out / f"{tag}.json").write_text(json.dumps(hist, default=float))


def live_case(n: int = 24, k: int = 3) -> ArcaData:
    g = torch.Generator().manual_seed(7)
    cand = torch.randn(n, k, 1, 8, generator=g)
    quality = torch.tensor([0.9, 0.5, 0.1])
    feats = torch.stack([quality.expand(n, k) + 0.05 * torch.randn(n, k, generator=g), torch.zeros(n, k)], -1)
    idx = torch.arange(n)
    # lr: a placeholder the live path replaces (its width is the encoder's).
    return ArcaData(lang=idx % 2, lr=torch.zeros(n, 1, 32), cand=cand, feats=feats, mask=torch.ones(n, k, dtype=torch.bool),
                    reward=quality.expand(n, k) + 0.05 * torch.randn(n, k, generator=g), train_idx=idx[:18], dev_idx=idx[18:])


def live_path(model_dir: str, strategy: str, precision: str = "fp32"):
    """The tiny BERT with fresh LoRA adapters (seeded), sharded when ``strategy`` is fsdp under torchrun;
    ``precision`` is the LoRA forwards' (shared.encoders.lrl.lora.train_precision)."""
    from lira.distributed.fsdp import shard_encoder
    from lira.encoders import Encoder, EncoderSettings
    from lira.train.live import LiveEncoderPath

    enc = Encoder(EncoderSettings(spec=f"hf:{model_dir}", max_length=32, batch_size=4))
    torch.manual_seed(SEED)
    enc.add_lora(4, 8.0, 0.1, ["query", "value"])
    shard_encoder(enc.model, strategy)
    # Mostly queries: some chunks hold no passage, and their rank runs a stand-in row.
    kinds = ["passage" if i % 5 == 0 else "query" for i in range(len(LIVE_TEXTS))]
    return LiveEncoderPath(enc, LIVE_TEXTS, kinds, s_feat=1, precision=precision)


def run_live(out: Path, tag: str, model_dir: str, strategy: str, epochs: int | None = None, precision: str = "fp32") -> None:
    """train_arca with the live LoRA path; its checkpoint (rank 0's) in ``out/live-<tag>``, and what
    each rank held of the adapters."""
    from lira.distributed import rank
    from lira.distributed.fsdp import is_sharded_tensor

    live = live_path(model_dir, strategy, precision)
    cfg = ARCA_LIVE if epochs is None else ARCA_LIVE.model_copy(update={"epochs": epochs})
    train_arca(live_case(), cfg, n_langs=2, seed=SEED, lora_lr=LIVE_LORA_LR, checkpointer=Checkpointer(out / f"live-{tag}", "arca"),
               live=live)
    lora = [p for n, p in live.encoder.model.named_parameters() if "lora_" in n]
    held = {"sharded": live.sharded, "dtensors": sum(is_sharded_tensor(p) for p in lora),
            "local_numel": sum((p.to_local() if is_sharded_tensor(p) else p).numel() for p in lora),
            "full_numel": sum(p.numel() for p in lora)}
    (out / f"live-{tag}-rank{rank()}.json").write_text(json.dumps(held))


def run_features(out: Path, tag: str, model_dir: str, cache_root: str, texts: list[str]) -> None:
    from safetensors.torch import save_file

    from lira.encoders import Encoder, EncoderSettings
    from lira.encoders.features import FeatureCache, cached_features

    # fp32: the check is that sharding the texts changes nothing; a bf16 engine (auto's pick on a
    # bf16 CPU) rounds a text differently in another batch's padding, a numeric effect that
    # tests/encoders/test_precision.py bounds on its own.
    enc = Encoder(EncoderSettings(spec=f"hf:{model_dir}", max_length=32, batch_size=3, precision="fp32"))
    enc.freeze()
    feats = cached_features(enc, FeatureCache(cache_root, "tiny", s_feat=2), texts, "query")
    save_file({"slots": torch.from_numpy(feats.slots), "mean": torch.from_numpy(feats.mean)}, str(out / f"feat-{tag}.safetensors"))


def first_step_gradients(out: Path, tag: str) -> None:
    """The gradients of LaSR's first step (every task, queues pre-filled by a previous step) and of
    Arca's, after the all-reduce: the single-process gradients, to rounding."""
    from safetensors.torch import save_file

    from lira.distributed import sync_gradients
    from lira.losses import DocQueueObjective
    from lira.train.lasr import LasrStep, epoch_batches, mc_step, retrieval_step, sts_step

    data, net = lasr_case(), lasr_net()
    corrq, docq = queues()
    objective = DocQueueObjective(k=LASR.ndcg_k, tau=LASR.ndcg_tau, margin=LASR.margin, lambda_h=LASR.lambda_hinge,
                                  lambda_r=LASR.lambda_var, target_std=LASR.var_target / 8**0.5)
    st = LasrStep(data, net, LASR, corrq, docq, objective)
    r, sb, mb = epoch_batches(data, LASR.batch_size, torch.Generator().manual_seed(SEED))
    grads = {}
    for step in range(2):  # the second step sees the queues the first one filled
        net.zero_grad()
        losses, after_r = retrieval_step(st, torch.as_tensor(r[step]))
        out_s, after_s = sts_step(st, torch.as_tensor(sb[step % len(sb)]))
        losses.update(out_s)
        losses.update(mc_step(st, torch.as_tensor(mb[step % len(mb)])))
        sum(losses.values()).backward()
        sync_gradients(net.parameters())
        after_r()
        after_s()
    grads.update({f"lasr.{k}": p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    save_file(grads, str(out / f"grads-{tag}.safetensors"))


class KillRank:
    """A LaSR timer that ends rank ``victim``'s process hard in the middle of epoch ``epoch``."""

    def __init__(self, victim: int, epoch: int):
        self.victim, self.epoch, self.seen_epochs, self.steps = victim, epoch, 0, 0

    def on_epoch(self, epoch: int, row: dict) -> None:
        self.seen_epochs = epoch + 1

    def __call__(self, name: str):
        from contextlib import nullcontext

        from lira.distributed import rank

        if name == "backward" and self.seen_epochs == self.epoch and rank() == self.victim:
            self.steps += 1
            if self.steps == 2:
                os._exit(17)  # no cleanup, no exception: as a SIGKILL'd or OOM-killed rank would end
        return nullcontext()


def run_killed(out: Path, ck_dir: str) -> None:
    kill = KillRank(victim=1, epoch=2)
    train_lasr(lasr_case(), lasr_net(), LASR, SEED, checkpointer=Checkpointer(ck_dir, "k"), timer=kill,
               on_epoch=kill.on_epoch)


def rank_main(r: int, world: int, port: int, job: str, out: str, *args: str) -> None:
    """torch.multiprocessing.spawn's entry: torchrun's environment, then the job."""
    os.environ.update({"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from lira import distributed

    assert distributed.init_from_env("gloo", timeout_s=60)
    try:
        if job == "train":
            run_training(Path(out), f"rank{r}")
            first_step_gradients(Path(out), f"rank{r}")
            model_dir, cache_root, texts = args
            run_features(Path(out), f"rank{r}", model_dir, cache_root, json.loads(texts))
        elif job == "grads":
            first_step_gradients(Path(out), f"rank{r}")
        elif job == "killed":
            run_killed(Path(out), *args)
        elif job == "live":
            run_live(Path(out), *args)
        elif job == "live-bf16":
            run_live(Path(out), *args, precision="bf16")
    finally:
        distributed.shutdown()
