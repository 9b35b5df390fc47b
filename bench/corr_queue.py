"""What L_corr over batch ++ CorrQueue costs per LaSR step: the previous O(N^2) form vs the split one.

Per step, with the queue full at ``--capacity`` and a batch of ``--batch`` STS pairs:

* ``concat`` (the previous form): ``correlation_loss(cat([pred, q_pred]), cat([label, q_label]))``
  forward + backward - every pair of the N = B + Q entries, through autograd;
* ``split`` (lira's): ``correlation_loss(pred, label, queue_pred=.., queue_label=.., queue_rank_sums=
  corrq.rank_sums(tau))`` forward + backward, plus the ``enqueue`` that keeps the sums up to date.

Both are timed interleaved over ``--steps`` steps (median), and their values and gradients are
compared (max |diff|). The LaSR step that this is a share of is measured by bench/training.py;
pass its median step time with ``--step-s`` to get the share here too.
Usage: ``python bench/corr_queue.py [--capacity 4096] [--step-s 0.4]`` -> bench/results/corr_queue.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

C.set_threads(2)

import numpy as np
import torch


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capacity", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--step-s", type=float, default=None, help="median LaSR step time without queues (bench/training.py)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps = 8
    torch.set_num_threads(2)
    from lira.lasr.queues import CorrQueue
    from lira.losses.correlation import correlation_loss

    g = torch.Generator().manual_seed(0)
    q = CorrQueue(args.capacity)
    q.enqueue(torch.rand(args.capacity, generator=g) * 2 - 1, (torch.rand(args.capacity, generator=g) * 5).round() / 5)
    q.rank_sums(args.tau)
    t_concat, t_split, diffs = [], [], []
    load_start = C.loadavg()
    for _ in range(args.steps):
        pred = (torch.rand(args.batch, generator=g) * 2 - 1).requires_grad_(True)
        label = (torch.rand(args.batch, generator=g) * 5).round() / 5
        q_pred, q_label = q.contents()
        t0 = time.perf_counter()
        ref = correlation_loss(torch.cat([pred, q_pred]), torch.cat([label, q_label]), tau=args.tau)
        (g_ref,) = torch.autograd.grad(ref, pred)
        t_concat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        q_pred, q_label = q.contents()
        got = correlation_loss(pred, label, tau=args.tau, queue_pred=q_pred, queue_label=q_label,
                               queue_rank_sums=q.rank_sums(args.tau))
        (g_got,) = torch.autograd.grad(got, pred)
        q.enqueue(pred.detach(), label)
        t_split.append(time.perf_counter() - t0)
        diffs.append((abs(got.item() - ref.item()), float((g_got - g_ref).abs().max()), float(g_ref.abs().max())))
    out = {"capacity": args.capacity, "batch": args.batch, "steps": args.steps, "tau": args.tau,
           "concat_s": C.summary(t_concat), "split_s": C.summary(t_split),
           "speedup": float(np.median(t_concat) / np.median(t_split)),
           "max_abs_loss_diff": max(d[0] for d in diffs), "max_abs_grad_diff": max(d[1] for d in diffs),
           "max_abs_grad": max(d[2] for d in diffs), "load_start": load_start, "load_end": C.loadavg(),
           "quick": args.quick}
    if args.step_s:
        out["step_s_without_queue"] = args.step_s
        out["share_concat"] = out["concat_s"]["median"] / (args.step_s + out["concat_s"]["median"])
        out["share_split"] = out["split_s"]["median"] / (args.step_s + out["split_s"]["median"])
    print(f"L_corr at capacity {args.capacity}, batch {args.batch}: concat {C.fmt_s(out['concat_s']['median'])} vs split "
          f"{C.fmt_s(out['split_s']['median'])} per step (x{out['speedup']:.1f}); max |loss diff| {out['max_abs_loss_diff']:.2e}, "
          f"max |grad diff| {out['max_abs_grad_diff']:.2e} (max |grad| {out['max_abs_grad']:.2e}); load {load_start}->{out['load_end']}")
    if args.step_s:
        print(f"  share of a LaSR step ({C.fmt_s(args.step_s)} without queues): concat {100 * out['share_concat']:.1f}%, "
              f"split {100 * out['share_split']:.1f}%")
    C.write_result("corr_queue", out)
    return out


if __name__ == "__main__":
    main()
