"""Training cost: one LiRA step (Arca; LaSR) and one epoch vs MSE distillation, the queues' share of
a LaSR step, and memory over 1000 LaSR steps with the queues at capacity.

Everything runs lira's own trainers (``lira.train.arca.train_arca``, ``lira.train.lasr.train_lasr``,
``lira.eval.systems.train_distill``) with the configs ``params.yaml`` gives, on synthetic cached
features of realistic shape (a step's cost depends on shapes, not on values): pooled slots
[N, S=4, H=384] as mE5-small gives them, K=3 candidates, d=256, LaSR batch 32, 7 languages.

How each figure is measured (perf_counter; no profiler overhead inside a step):

* step time = (epoch wall time - the per-epoch dev evaluation, timed by wrapping it) / steps per
  epoch, median over epochs after the first;
* queue share, two ways: (a) ``ops``: perf_counter around every queue call (CorrQueue.contents /
  enqueue, DocQueue.candidates / enqueue, hard_negatives) plus the forward of the correlation loss
  over batch ++ queue, as a share of training time; (b) ``differential``: (step with queues at
  capacity - step with capacity 0) / step with queues - everything the queues cost, the backward
  of the extra loss terms included. Queues are pre-filled to capacity with random entries
  (unit embeddings, random languages, real item ids), so every timed step runs at capacity.
* memory: RSS (psutil) and the bytes of every live torch tensor (gc scan, storages deduplicated)
  after 50, 500 and 1000 LaSR steps with the queues at the params' capacities (on a retrieval +
  STS task mix - the two tasks that use queues - so 1000 steps fit the time budget), and after
  one and two epochs at capacity 4096.

Thread settings: torch threads from params (2); ``OMP_WAIT_POLICY=PASSIVE`` unless the caller
sets it (see bench/_common.py) - the Arca step is also timed with 1 thread and with OpenMP's
default wait policy, in separate processes, to show how much that choice matters here.

Usage: ``.venv/bin/python bench/training.py [--quick]`` -> bench/results/training.json
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

if not os.environ.get("LIRA_BENCH_KEEP_ENV"):
    C.set_threads(2)

import numpy as np
import torch


# ------------------------------------------------------------------------------ synthetic data
def synthetic_arca_data(n_train: int, n_dev: int, k: int, s: int, h: int, n_langs: int, n_feats: int,
                        seed: int = 0):
    """ArcaData of the given shape: random pooled slots, K candidates each, critic features/rewards."""
    from lira.train.arca import ArcaData

    g = torch.Generator().manual_seed(seed)
    n = n_train + n_dev
    return ArcaData(
        lang=torch.randint(0, n_langs, (n,), generator=g),
        lr=torch.randn(n, s, h, generator=g),
        cand=torch.randn(n, k, s, h, generator=g),
        feats=torch.rand(n, k, n_feats, generator=g),
        mask=torch.ones(n, k, dtype=torch.bool),
        reward=torch.rand(n, k, generator=g) * 2,
        train_idx=torch.arange(n_train),
        dev_idx=torch.arange(n_train, n),
    )


def synthetic_lasr_data(n_langs: int, train_q: int, dev_q: int, items: int, sts_train: int, mc_train: int,
                        n_choices: int, s: int, h: int, extra_rows: int = 2000, seed: int = 0):
    """LasrData with ``items`` items and ``train_q + dev_q`` queries per language (1-2 positives each),
    ``sts_train`` STS pairs and ``mc_train`` multiple-choice questions drawn over the text rows."""
    from lira.train.lasr import LasrData

    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_items, n_q = n_langs * items, n_langs * (train_q + dev_q)
    n = n_items + n_q + extra_rows
    lang = torch.randint(0, n_langs, (n,), generator=g)
    item_lang = torch.arange(n_items) // items
    query_lang = torch.arange(n_q) // (train_q + dev_q)
    lang[:n_items], lang[n_items : n_items + n_q] = item_lang, query_lang
    split = np.array((["train"] * train_q + ["dev"] * dev_q) * n_langs, dtype=object)
    qrels = []
    for q in range(n_q):
        li = int(query_lang[q])
        pos = rng.choice(items, size=int(rng.integers(1, 3)), replace=False) + li * items
        qrels.append({int(p): 1 for p in pos})
    return LasrData(
        lr=torch.randn(n, s, h, generator=g), en=torch.randn(n, s, h, generator=g),
        has_en=torch.ones(n, dtype=torch.bool), lang=lang,
        item_text=torch.arange(n_items), item_lang=item_lang,
        query_text=torch.arange(n_items, n_items + n_q), query_lang=query_lang, query_split=split, qrels=qrels,
        sts_a=torch.randint(0, n, (sts_train,), generator=g), sts_b=torch.randint(0, n, (sts_train,), generator=g),
        sts_score=torch.rand(sts_train, generator=g) * 5, sts_split=np.array(["train"] * sts_train, dtype=object),
        mc_q=torch.randint(0, n, (mc_train,), generator=g),
        mc_choices=torch.randint(0, n, (mc_train, n_choices), generator=g),
        mc_answer=torch.randint(0, n_choices, (mc_train,), generator=g),
        mc_split=np.array(["train"] * mc_train, dtype=object),
    )


def lasr_steps_per_epoch(data: Any, batch_size: int) -> int:
    """Steps train_lasr takes per epoch on ``data`` (the longest task's batch count, short batches dropped)."""
    from lira.train.lasr import _cycle, _retrieval_batches

    g = torch.Generator().manual_seed(0)
    r = _retrieval_batches(data, batch_size, g)
    s = _cycle(np.flatnonzero(data.sts_split == "train"), batch_size, g)
    m = _cycle(np.flatnonzero(data.mc_split == "train"), batch_size, g)
    return max(len(r), len(s), len(m))


# ------------------------------------------------------------------------------ instrumentation
@dataclass
class OpTimer:
    """Accumulated perf_counter time and call count per named operation."""

    total: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.total[name] += time.perf_counter() - t0
            self.calls[name] += 1

    def wrap(self, name: str, fn: Any) -> Any:
        def inner(*a: Any, **k: Any) -> Any:
            with self(name):
                return fn(*a, **k)

        return inner

    def sum(self, names: list[str]) -> float:
        return float(sum(self.total.get(n, 0.0) for n in names))


QUEUE_OPS = ["corr.contents", "corr.enqueue", "doc.candidates", "doc.enqueue", "hard_negatives"]


def prefilled_queues(prefill: bool, corr_cap: int, doc_cap: int, dim: int, n_langs: int, n_items: int, seed: int = 0) -> tuple:
    """CorrQueue / DocQueue at the given capacities, full of random entries when ``prefill``
    (the steady state of a long run); the trainer times their operations through its ``timer``."""
    from lira.lasr.queues import CorrQueue, DocQueue

    g = torch.Generator().manual_seed(seed)
    corrq, docq = CorrQueue(corr_cap), DocQueue(doc_cap, dim)
    if prefill and corr_cap:
        corrq.enqueue(torch.rand(corr_cap, generator=g) * 2 - 1, torch.rand(corr_cap, generator=g))
    if prefill and doc_cap:
        emb = torch.nn.functional.normalize(torch.randn(doc_cap, dim, generator=g), dim=-1)
        docq.enqueue(emb, torch.randint(0, n_langs, (doc_cap,), generator=g), torch.randint(0, n_items, (doc_cap,), generator=g))
    return corrq, docq


def tensor_bytes() -> int:
    """Bytes held by every live torch tensor (each storage counted once)."""
    import warnings

    seen: dict[int, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance() pokes deprecated torch attributes of some gc objects
        for o in gc.get_objects():
            try:
                if isinstance(o, torch.Tensor) and o.device.type == "cpu":
                    st = o.untyped_storage()
                    seen[st.data_ptr()] = st.nbytes()
            except (RuntimeError, ReferenceError):
                continue
    return int(sum(seen.values()))


def memory_snapshot() -> dict[str, float]:
    import psutil

    gc.collect()
    return {"rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
            "tensor_mib": round(tensor_bytes() / 2**20, 2)}


def per_step_times(epoch_walls: list[float], eval_walls: list[float], steps: int) -> list[float]:
    """Per-step seconds of each epoch: (epoch wall - its dev evaluation) / steps."""
    return [(w - e) / steps for w, e in zip(epoch_walls, eval_walls)]


def flat(values: list[float], tol: float) -> bool:
    """Memory is flat when the later samples grow by at most ``tol`` over the first at-capacity one."""
    return bool(values) and max(values[1:] or values) - values[0] <= tol


# ------------------------------------------------------------------------------ runs
def run_arca(data: Any, cfg: Any, n_langs: int, seed: int) -> dict[str, Any]:
    from lira.train.arca import train_arca

    timer = OpTimer()
    stamps: list[float] = []
    t0 = time.perf_counter()
    evals: list[float] = []

    def on_epoch(epoch: int, row: dict) -> None:
        stamps.append(time.perf_counter())
        evals.append(timer.total["dev_report"] - sum(evals))

    train_arca(data, cfg, n_langs, seed, on_epoch=on_epoch, timer=timer)
    walls = np.diff([t0, *stamps]).tolist()
    steps = len(data.train_idx) // cfg.batch_size
    per_step = per_step_times(walls, evals, steps)
    later = per_step[1:] or per_step
    return {"epochs": len(walls), "steps_per_epoch": steps, "step_s": C.summary(later),
            "epoch_s_train_only": C.summary([s * steps for s in later]), "dev_eval_s": C.summary(evals)}


def run_distill(x: np.ndarray, y: np.ndarray, epochs: int, lr: float, bs: int, seed: int) -> dict[str, Any]:
    from lira.eval.systems import train_distill

    train_distill(x[: bs * 4], y[: bs * 4], 1, lr, bs, seed)  # warm-up (allocator, kernels)
    walls = []
    for _ in range(epochs):  # one epoch per call: same work, per-epoch timings
        t0 = time.perf_counter()
        train_distill(x, y, 1, lr, bs, seed)
        walls.append(time.perf_counter() - t0)
    steps = math.ceil(len(x) / bs)
    later = walls[1:] or walls
    return {"epochs": epochs, "steps_per_epoch": steps, "step_s": C.summary([w / steps for w in later]),
            "epoch_s_train_only": C.summary(later)}


def build_lasr_net(params: Any, data: Any, arca_over: dict[str, Any], cfg: Any, seed: int) -> Any:
    """LiraNet exactly as the train_lasr stage builds it (Arca's modules, then build_net)."""
    from lira.train.arca import build_modules
    from lira.train.lasr_run import build_net

    s, h = data.lr.shape[1], data.lr.shape[2]
    probe = synthetic_arca_data(2, 0, 1, s, h, int(data.lang.max()) + 1, 4)  # only the widths matter
    adaptors, _ = build_modules(probe, params.train_arca.replaced(**arca_over), params.shared.seed)
    return build_net(adaptors, cfg, len(params.shared.languages), params.shared.s_feat, seed)


def run_lasr(data: Any, params: Any, epochs: int, corr_queue: int, doc_queue: int, prefill: bool = True,
             memory_at_steps: tuple[int, ...] = (), seed: int = 13, arca_over: dict[str, Any] | None = None,
             lasr_over: dict[str, Any] | None = None) -> dict[str, Any]:
    """train_lasr for ``epochs`` with the given capacities; timings, queue-op shares, memory samples."""
    from lira.train.lasr import train_lasr

    cfg = params.train_lasr.replaced(corr_queue=corr_queue, doc_queue=doc_queue, epochs=epochs, patience=10**6,
                                     **(lasr_over or {}))
    n_langs = int(data.lang.max()) + 1
    net = build_lasr_net(params, data, arca_over or {}, cfg, seed)
    timer = OpTimer()
    queues = prefilled_queues(prefill, cfg.corr_queue, cfg.doc_queue, net.head.d_in, n_langs, len(data.item_text), seed)
    steps = lasr_steps_per_epoch(data, cfg.batch_size)
    walls: list[float] = []
    evals: list[float] = []
    memory: dict[int, dict[str, float]] = {}
    start = [time.perf_counter()]

    def on_epoch(epoch: int, row: dict) -> None:
        walls.append(time.perf_counter() - start[0])
        evals.append(timer.total["retrieval_eval"] - sum(evals))
        done = (epoch + 1) * steps
        if done in memory_at_steps:
            memory[done] = memory_snapshot()
        start[0] = time.perf_counter()  # memory sampling is not training time

    train_lasr(data, net, cfg, seed, on_epoch=on_epoch, timer=timer, queues=queues)
    per_step = per_step_times(walls, evals, steps)
    later = per_step[1:] or per_step
    train_s = float(sum(w - e for w, e in zip(walls, evals)))
    ops = {k: {"total_s": round(timer.total[k], 4), "calls": timer.calls[k],
               "per_call_ms": round(1e3 * timer.total[k] / max(timer.calls[k], 1), 3)}
           for k in [*QUEUE_OPS, "corr_loss_forward"]}
    return {"corr_queue": corr_queue, "doc_queue": doc_queue, "z_dim": int(net.head.d), "epochs": len(walls),
            "steps_per_epoch": steps,
            "steps": len(walls) * steps, "step_s": C.summary(later), "all_step_s": C.summary(per_step),
            "train_s": round(train_s, 3), "ops": ops,
            "queue_ops_share": timer.sum(QUEUE_OPS) / train_s if train_s else None,
            "queue_ops_plus_corr_loss_forward_share": timer.sum([*QUEUE_OPS, "corr_loss_forward"]) / train_s
            if train_s else None,
            "memory": {str(k): v for k, v in sorted(memory.items())}}


def arca_step_subprocess(threads: int, extra_env: dict[str, str | None], quick: bool, d: int | None) -> dict[str, Any]:
    """Median Arca step in a fresh process with ``threads`` torch threads; ``extra_env`` values of
    None remove the variable (the child then runs with the library default)."""
    import json
    import os
    import subprocess

    cmd = [sys.executable, __file__, "--arca-step-only", "--threads", str(threads), *(["--quick"] if quick else []),
           *(["--d", str(d)] if d is not None else [])]
    load_start = C.loadavg()
    env = {k: v for k, v in {**os.environ, **extra_env}.items() if v is not None}
    env["LIRA_BENCH_KEEP_ENV"] = "1"  # the child must not re-add the wait policy this run removed
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    res: dict[str, Any] = {"threads": threads, "env": extra_env, "load_start": load_start, "load_end": C.loadavg()}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        res["step_s"] = json.loads(lines[-1])["step_s"]
    else:
        res["error"] = (proc.stderr or proc.stdout)[-500:]
    return res


def arca_step_only(args: argparse.Namespace) -> None:
    """The Arca step timing alone (for arca_step_subprocess): prints {"step_s": median}."""
    import json

    from lira.config import load_params
    from lira.train.inputs import FLAG_COLUMNS

    params = load_params(C.ROOT / "params.yaml")
    torch.set_num_threads(args.threads or params.shared.threads)
    n_feats = 6 + ((1 + len(FLAG_COLUMNS)) if params.train_arca.actor_extra_features else 0)
    n_train, n_dev = (800, 160) if args.quick else (2400, 480)
    data = synthetic_arca_data(n_train, n_dev, len(params.translate.agents), params.shared.s_feat, 384,
                               len(params.shared.languages), n_feats)
    over = {} if args.d is None else {"d": args.d}
    r = run_arca(data, params.train_arca.replaced(epochs=3, patience=10**6, **over), len(params.shared.languages),
                 params.shared.seed)
    print(json.dumps({"step_s": r["step_s"]["median"]}))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller data and fewer steps (about 1-2 min)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: params shared.threads)")
    ap.add_argument("--capacity", type=int, default=4096, help="queue capacity of the share measurement")
    ap.add_argument("--d", type=int, default=None, help="Arca's adaptor width (default: params train_arca.d)")
    ap.add_argument("--d-model", type=int, default=None, help="LaSR's width, the queues' d (default: params)")
    ap.add_argument("--share-only", action="store_true",
                    help="only the queues' share of a LaSR step at --capacity, no-queue and at-capacity runs "
                         "interleaved over --rounds (a paired figure on a shared machine) -> queue_share.json")
    ap.add_argument("--rounds", type=int, default=3, help="--share-only: interleaved rounds")
    ap.add_argument("--arca-step-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.arca_step_only:
        arca_step_only(args)
        return {}
    if args.share_only:
        return share_only(args)

    from lira.config import load_params
    from lira.train.inputs import FLAG_COLUMNS

    params = load_params(C.ROOT / "params.yaml")
    threads = args.threads or params.shared.threads
    torch.set_num_threads(threads)
    n_langs, s, h, k = len(params.shared.languages), params.shared.s_feat, 384, len(params.translate.agents)
    n_feats = 6 + ((1 + len(FLAG_COLUMNS)) if params.train_arca.actor_extra_features else 0)
    q = args.quick
    n_train, n_dev = (800, 160) if q else (2400, 480)
    arca_over = {} if args.d is None else {"d": args.d}
    lasr_over = {} if args.d_model is None else {"d_model": args.d_model}
    out: dict[str, Any] = {"quick": q, "threads": threads, "overrides": {**arca_over, **lasr_over},
                           "shapes": {"S": s, "H": h, "K": k, "n_langs": n_langs, "arca_train_texts": n_train}}
    print(f"training bench ({'quick' if q else 'default'}): {n_train} train texts, S={s}, H={h}, K={k}, "
          f"threads {threads}, load {C.loadavg()}")

    # --- Arca vs MSE distillation on the same texts (slots for Arca, their mean for distillation)
    arca_epochs = 4 if q else 6
    data = synthetic_arca_data(n_train, n_dev, k, s, h, n_langs, n_feats)
    cfg = params.train_arca.replaced(epochs=arca_epochs, patience=10**6, **arca_over)
    from lira.train.arca import adaptor_width

    out["shapes"]["arca_d"] = adaptor_width(h, h, cfg.d)
    retries = 0 if q else 1  # --quick never waits for a quieter machine
    arca, arca_meta = C.measured(lambda: run_arca(data, cfg, n_langs, params.shared.seed), retries=retries)
    x = torch.nn.functional.normalize(data.lr[:n_train].mean(1), dim=-1).numpy()
    y = torch.nn.functional.normalize(data.cand[:n_train, 0].mean(1), dim=-1).numpy()
    distill, distill_meta = C.measured(lambda: run_distill(x, y, arca_epochs, params.evaluate.distill_lr,
                                                           params.train_arca.batch_size, params.shared.seed),
                                      retries=retries)
    out["arca"] = {**arca, "batch_size": cfg.batch_size, **arca_meta}
    out["mse_distill"] = {**distill, "batch_size": params.train_arca.batch_size, **distill_meta}
    # Thread sensitivity: on 2 cores shared with other work, OpenMP's spin-waiting can make 2 threads
    # far slower than 1. Each setting runs in its own process (the wait policy is read at startup).
    sens = {}
    for label, t, extra in (("1 thread", 1, {"OMP_WAIT_POLICY": None}),
                            ("2 threads, default OpenMP wait policy", 2, {"OMP_WAIT_POLICY": None}),
                            ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, {"OMP_WAIT_POLICY": "PASSIVE"})):
        sens[label] = arca_step_subprocess(t, extra, q, args.d)
    out["arca_step_by_threads"] = sens
    out["arca_vs_distill_epoch_ratio"] = arca["epoch_s_train_only"]["median"] / distill["epoch_s_train_only"]["median"]
    print(f"  Arca step {C.fmt_s(arca['step_s']['median'])}, epoch {C.fmt_s(arca['epoch_s_train_only']['median'])}"
          f" | MSE distill step {C.fmt_s(distill['step_s']['median'])}, epoch "
          f"{C.fmt_s(distill['epoch_s_train_only']['median'])} | Arca/distill epoch x{out['arca_vs_distill_epoch_ratio']:.1f}")
    print("  Arca step by threads: " + ", ".join(f"{t}: {C.fmt_s(v.get('step_s'))} (load {v['load_end']})"
                                                      for t, v in sens.items()))

    # --- LaSR: sample-like task mix; 7 languages, batch 32
    if q:
        ld = synthetic_lasr_data(n_langs, train_q=32, dev_q=8, items=60, sts_train=320, mc_train=160, n_choices=4,
                                 s=s, h=h, extra_rows=600)
    else:
        ld = synthetic_lasr_data(n_langs, train_q=224, dev_q=16, items=300, sts_train=1600, mc_train=800,
                                 n_choices=4, s=s, h=h)
    spe = lasr_steps_per_epoch(ld, params.train_lasr.batch_size)
    cq, dq = params.train_lasr.corr_queue, params.train_lasr.doc_queue
    cap = args.capacity
    lasr: dict[str, Any] = {"steps_per_epoch": spe, "batch_size": params.train_lasr.batch_size}
    print(f"  LaSR: {spe} steps/epoch; queues: none and {cap}/{cap} (pre-filled to capacity)")
    # LaSR runs are not retried under load: each costs minutes; their loads are in the JSON.
    runs = {}
    for name, (c1, c2, ep, mem) in {
        "no_queue": (0, 0, 3, ()),
        f"capacity_{cap}": (cap, cap, 2, tuple(spe * i for i in (1, 2))),
    }.items():
        runs[name], meta = C.measured(lambda c1=c1, c2=c2, ep=ep, mem=mem: run_lasr(
            ld, params, ep, c1, c2, memory_at_steps=mem, arca_over=arca_over, lasr_over=lasr_over), retries=0)
        runs[name].update(meta)
        r = runs[name]
        print(f"    {name:16s} step {C.fmt_s(r['step_s']['median'])} ({r['steps']} steps)  queue ops "
              f"{100 * r['queue_ops_share']:.1f}%  +corr-loss fwd {100 * r['queue_ops_plus_corr_loss_forward_share']:.1f}%"
              f"  (load {meta['load_start']}->{meta['load_end']})")
    t_q, t_0 = runs[f"capacity_{cap}"]["step_s"]["median"], runs["no_queue"]["step_s"]["median"]
    share = (t_q - t_0) / t_q
    lasr["runs"] = runs
    out["shapes"]["lasr_z_dim"] = runs["no_queue"]["z_dim"]
    lasr["queue_share_at_capacity"] = {"capacity": cap, "differential": share,
                                       "ops_only": runs[f"capacity_{cap}"]["queue_ops_share"],
                                       "ops_plus_corr_loss_forward":
                                           runs[f"capacity_{cap}"]["queue_ops_plus_corr_loss_forward_share"],
                                       "target": 0.10, "met": share <= 0.10}
    print(f"  queue share at capacity {cap}: {100 * share:.1f}% of a LaSR step (target <= 10%)")

    # --- 1000 steps at the params' capacities (queues full from step 1), memory sampled on the way.
    # Retrieval + STS only (the two tasks with queues; no multiple choice): half the step cost, so
    # 1000 steps fit the time budget. Its queue share is therefore relative to a lighter step.
    n_mem = 200 if q else 1000
    marks = (50, 100, 200) if q else (50, 500, 1000)
    ld_mem = synthetic_lasr_data(n_langs, train_q=32 if q else 224, dev_q=8 if q else 16, items=60 if q else 300,
                                 sts_train=320 if q else 1600, mc_train=0, n_choices=4, s=s, h=h,
                                 extra_rows=600 if q else 2000)
    spe_mem = lasr_steps_per_epoch(ld_mem, params.train_lasr.batch_size)
    marks_epoch = tuple(sorted({max(1, round(m / spe_mem)) * spe_mem for m in marks}))
    mem_run, meta = C.measured(lambda: run_lasr(ld_mem, params, math.ceil(n_mem / spe_mem), cq, dq,
                                                memory_at_steps=marks_epoch, arca_over=arca_over,
                                                lasr_over=lasr_over), retries=0)
    runs["params_queues_retrieval_sts"] = {**mem_run, **meta}
    lasr["queue_share_at_params"] = {"capacities": [cq, dq], "task_mix": "retrieval + STS",
                                     "ops_plus_corr_loss_forward": mem_run["queue_ops_plus_corr_loss_forward_share"]}
    print(f"    params {cq}/{dq}   step {C.fmt_s(mem_run['step_s']['median'])} ({mem_run['steps']} steps, retrieval+STS)"
          f"  queue ops + corr-loss fwd {100 * mem_run['queue_ops_plus_corr_loss_forward_share']:.1f}%"
          f"  (load {meta['load_start']}->{meta['load_end']})")

    mem = mem_run["memory"]
    rss = [v["rss_mib"] for v in mem.values()]
    ten = [v["tensor_mib"] for v in mem.values()]
    cap_mem = runs[f"capacity_{cap}"]["memory"]
    lasr["memory"] = {
        "queues": f"{cq}/{dq}", "task_mix": "retrieval + STS", "steps": mem_run["steps"], "samples": mem,
        "rss_growth_mib": rss[-1] - rss[0] if rss else None, "tensor_growth_mib": ten[-1] - ten[0] if ten else None,
        "flat_rss_16mib": flat(rss, 16.0), "flat_tensors_0.1mib": flat(ten, 0.1),
        f"capacity_{cap}_samples": cap_mem,
        f"capacity_{cap}_flat_tensors_0.1mib": flat([v["tensor_mib"] for v in cap_mem.values()], 0.1),
    }
    out["lasr"] = lasr
    print(f"  memory ({cq}/{dq}): " + ", ".join(f"{s_} steps {v['rss_mib']:.0f} MiB RSS / {v['tensor_mib']:.1f} "
                                                  f"MiB tensors" for s_, v in mem.items()))
    print(f"  memory ({cap}/{cap}): " + ", ".join(f"{s_} steps {v['rss_mib']:.0f} MiB RSS / {v['tensor_mib']:.1f} "
                                                    f"MiB tensors" for s_, v in cap_mem.items()))
    out["lira_epoch_vs_distill"] = {
        "arca_epoch_s": arca["epoch_s_train_only"]["median"],
        "lasr_epoch_s_no_queue": runs["no_queue"]["step_s"]["median"] * spe,
        "lasr_epoch_s_at_capacity": runs[f"capacity_{cap}"]["step_s"]["median"] * spe,
        "distill_epoch_s": distill["epoch_s_train_only"]["median"],
        "note": "Arca and distillation epochs cover the same train texts; a LaSR epoch covers the task batches",
    }
    path = C.write_result("training", out)
    print(f"  -> {path.relative_to(C.ROOT)}")
    return out


def share_only(args: argparse.Namespace) -> dict[str, Any]:
    """The queue share at capacity, paired: each round runs LaSR without queues and with both queues
    pre-filled to ``--capacity`` back to back (order alternating), on the --quick task mix (a step's
    cost depends on the batch and queue shapes, not on how many batches an epoch has)."""
    from lira.config import load_params

    params = load_params(C.ROOT / "params.yaml")
    torch.set_num_threads(args.threads or params.shared.threads)
    n_langs, s, h = len(params.shared.languages), params.shared.s_feat, 384
    ld = synthetic_lasr_data(n_langs, train_q=32, dev_q=8, items=60, sts_train=320, mc_train=160, n_choices=4,
                             s=s, h=h, extra_rows=600)
    cap, rounds, shares = args.capacity, [], []
    load_start = C.loadavg()
    for r in range(args.rounds):
        order = [("no_queue", 0), ("capacity", cap)]
        if r % 2:
            order.reverse()
        got = {}
        for name, c in order:
            res = run_lasr(ld, params, 2, c, c)
            got[name] = {"step_s": res["step_s"]["median"], "load": C.loadavg(), "ops": res["ops"],
                         "train_s": res["train_s"],
                         "ops_plus_corr_loss_forward": res.get("queue_ops_plus_corr_loss_forward_share")}
        share = (got["capacity"]["step_s"] - got["no_queue"]["step_s"]) / got["capacity"]["step_s"]
        shares.append(share)
        rounds.append({**got, "share": round(share, 4)})
        print(f"  round {r + 1}: no queue {C.fmt_s(got['no_queue']['step_s'])}, at {cap} "
              f"{C.fmt_s(got['capacity']['step_s'])}: share {100 * share:.1f}% (load {C.loadavg()})", flush=True)
    med = float(np.median(shares))
    # Measured inside the same steps (numerator and denominator under the same load): the queue
    # calls plus the correlation loss's forward, as a share of training time - a lower bound of the
    # full share (the backward of the queue terms is not in it), but not at the mercy of load drift.
    inside = [r["capacity"]["ops_plus_corr_loss_forward"] for r in rounds]
    out = {"capacity": cap, "batch_size": params.train_lasr.batch_size, "rounds": rounds, "share_median": round(med, 4),
           "share_min": round(min(shares), 4), "share_max": round(max(shares), 4), "target": 0.10,
           "ops_plus_corr_loss_forward_share": {"median": round(float(np.median(inside)), 4),
                                                "min": round(min(inside), 4), "max": round(max(inside), 4)},
           "met": med <= 0.10 and float(np.median(inside)) <= 0.10,
           "load_start": load_start, "load_end": C.loadavg(),
           "note": "share = (step at capacity - step without queues) / step at capacity, per round; median over rounds"}
    path = C.write_result("queue_share", out)
    print(f"  queue share at {cap}: median {100 * med:.1f}% [{100 * min(shares):.1f}, {100 * max(shares):.1f}] -> "
          f"{path.relative_to(C.ROOT)}")
    return out


if __name__ == "__main__":
    main()
