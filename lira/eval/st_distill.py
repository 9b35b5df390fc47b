"""The real peer: sentence-transformers multilingual knowledge distillation of the WHOLE encoder.

This is the ``make_multilingual.py`` recipe (Reimers & Gurevych 2020) run as a plain torch loop
(sentence-transformers' trainer needs the ``datasets`` package, which lira does not install):

* teacher ``T`` = the encoder, frozen; student ``S`` = a full copy of it, every weight trainable;
* for each pair (LRL text ``x``, English text ``e``):

  .. math::

      L = \\tfrac{1}{2}\\left(\\mathrm{MSE}(S(x), T(e)) + \\mathrm{MSE}(S(e), T(e))\\right)

  which is ``sentence_transformers.losses.MSELoss`` with the teacher's English embedding as the
  label broadcast over both text columns; the second term keeps the student's English where the
  teacher's is (the recipe's guard against forgetting).

The sentence embedding is what the encoder's sentence-transformers form gives: mean pooling over
the tokens, then L2 normalisation (multilingual-e5's own configuration). Texts arrive with their
E5 prefixes already applied ("query: " / "passage: "), so one function serves any encoder.
Time and peak RSS of the training are recorded beside the student.
"""

from __future__ import annotations

import copy
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch


class PeakRSS:
    """Peak resident memory of this process over a block (sampled; ``ru_maxrss`` only ever grows).

    ``with PeakRSS() as m: ...`` then ``m.peak_mib``. A thread samples ``psutil`` every
    ``interval_s``; the start and end are sampled too, so a block shorter than the interval still
    has a value. Without psutil it falls back to ``resource.getrusage`` (the process's lifetime peak).
    """

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> float:
        try:
            import psutil

            return psutil.Process(os.getpid()).memory_info().rss / 2**20
        except ImportError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mib = max(self.peak_mib, self._rss())

    def __enter__(self) -> PeakRSS:  # noqa: PYI034 - a final class
        self.peak_mib = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mib = max(self.peak_mib, self._rss())


def sentence_transformer(folder: str | Path, max_length: int = 128, normalize: bool = True, device: str = "cpu"):
    """A local Hugging Face encoder folder as a SentenceTransformer: Transformer -> mean Pooling (-> Normalize)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: no config.json; st_distill needs a local Hugging Face encoder folder")
    tr = Transformer(str(folder), max_seq_length=max_length)
    mods = [tr, Pooling(tr.get_embedding_dimension(), "mean")]
    if normalize:
        mods.append(Normalize())
    return SentenceTransformer(modules=mods, device=device)


@torch.no_grad()
def st_embed(model, texts: Sequence[str], batch_size: int = 64):
    """Sentence embeddings [N, d] in eval mode, length-sorted batches (texts already prefixed)."""
    was = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: torch.Tensor | None = None
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        feats = _to(model.preprocess([texts[j] for j in idx]), model.device)
        emb = model(feats)["sentence_embedding"].float()
        if out is None:
            out = torch.zeros(len(texts), emb.shape[1])
        out[idx] = emb.cpu()
    model.train(was)
    return out if out is not None else torch.zeros(0, 0)


def _to(feats: dict, device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in feats.items()}


@dataclass
class DistillResult:
    student: object  # SentenceTransformer
    wall_s: float
    peak_rss_mib: float
    steps: int
    losses: list[float] = field(default_factory=list)  # per step
    settings: dict = field(default_factory=dict)


def st_distill(
    model,
    pairs: Sequence[tuple[str, str]],
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 2e-5,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    max_length: int = 128,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> DistillResult:
    """Distil the whole encoder on ``pairs`` = [(prefixed LRL text, prefixed English text), ...].

    Returns the trained student (a new SentenceTransformer; ``model`` itself is the teacher and is
    never changed), saved to ``out_dir`` as a sentence-transformers folder when given. AdamW with a
    linear warmup over ``warmup_ratio`` of the steps, then linear decay (the recipe's scheduler);
    shuffled batches, seeded; the last short batch is kept (MSE needs no negatives).
    """
    from sentence_transformers.sentence_transformer.losses import MSELoss
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if not pairs:
        raise ValueError("st_distill: no train pairs")
    for i, p in enumerate(pairs):
        if len(p) != 2 or not all(isinstance(t, str) and t.strip() for t in p):
            raise ValueError(f"st_distill: pair {i} is not two non-empty strings: {p!r}")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"st_distill: epochs {epochs}, batch_size {batch_size}, lr {lr}: all must be positive")
    teacher = sentence_transformer(model, max_length) if isinstance(model, str | Path) else model
    torch.manual_seed(seed)
    rng = random.Random(seed)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        student = copy.deepcopy(teacher)
        for p in teacher.parameters():
            p.requires_grad_(False)
        # the teacher's English embeddings are the labels: computed once, as the recipe does
        labels = st_embed(teacher, [e for _, e in pairs], batch_size)
        loss_fn = MSELoss(student)
        params = [p for p in student.parameters()]
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        steps_per_epoch = math.ceil(len(pairs) / batch_size)
        total = steps_per_epoch * epochs
        sched = get_linear_schedule_with_warmup(opt, int(warmup_ratio * total), total)
        losses: list[float] = []
        student.train()
        bar = tqdm(total=total, desc="st_distill", unit="step", disable=not progress or os.environ.get("LIRA_QUIET") == "1")
        for _ in range(epochs):
            order = list(range(len(pairs)))
            rng.shuffle(order)
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                f_lr = _to(student.preprocess([pairs[i][0] for i in idx]), student.device)
                f_en = _to(student.preprocess([pairs[i][1] for i in idx]), student.device)
                loss = loss_fn([f_lr, f_en], labels[idx].to(student.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.2e}")
        bar.close()
        student.eval()
        for p in student.parameters():
            p.requires_grad_(False)
        wall = time.perf_counter() - t0
    if out_dir is not None:
        from lira.io import atomic_dir

        with atomic_dir(out_dir) as tmp:
            student.save(str(tmp))
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup_ratio": warmup_ratio,
                "weight_decay": weight_decay, "max_grad_norm": max_grad_norm, "seed": seed,
                "max_length": max_length, "n_pairs": len(pairs)}
    return DistillResult(student=student, wall_s=wall, peak_rss_mib=mem.peak_mib, steps=len(losses),
                         losses=losses, settings=settings)
