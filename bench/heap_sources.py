"""What train_arca's memory is once its encoders are gone: tensors, or native heap.

Runs ``lira stage train_arca`` in-process in a workspace (a run's clone, as bench/stage_memory.py
takes; its Arca checkpoint and tuned-feature cache are removed first, so the LoRA epoch runs) and
reads, just before and just after the tuned LRL features are computed (the LoRA copy released,
the merged copy dropped) and at the stage's end: RSS, glibc's ``mallinfo2`` (bytes malloc holds
in use and free), every tensor over 1 MiB that ``gc`` finds, and which models are still alive.
Memory in use by malloc but in no tensor and no model is native: oneDNN's primitive cache,
the tokenizer, library buffers. ``--onednn-cache N`` sets ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``
before torch loads (oneDNN's default is 1024 primitives).

Usage: ``.venv/bin/python bench/heap_sources.py --root DIR [--onednn-cache N]``
-> bench/results/heap_sources[_onednn<N>].json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command, git_state, loadavg, machine_info, write_result


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def snapshot(tag: str) -> dict[str, Any]:
    import psutil
    import torch

    from lira.runtime import trim_heap

    gc.collect()
    trim_heap()
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    mi = libc.mallinfo2()
    objs = gc.get_objects()
    storages = {}
    for o in objs:
        if isinstance(o, torch.Tensor) and o.untyped_storage().nbytes() > 2**20:
            storages[o.untyped_storage().data_ptr()] = o.untyped_storage().nbytes()
    models = sorted({type(o).__name__ for o in objs if isinstance(o, torch.nn.Module) and type(o).__name__.endswith("Model")})
    row = {"at": tag, "rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
           "malloc_in_use_mib": round(mi.uordblks / 2**20, 1), "malloc_free_mib": round(mi.fordblks / 2**20, 1),
           "malloc_mmapped_mib": round(mi.hblkhd / 2**20, 1),
           "tensors_over_1mib_mib": round(sum(storages.values()) / 2**20, 1), "tensor_storages_over_1mib": len(storages),
           "models_alive": models}
    print(f"  {tag:>24}: RSS {row['rss_mib']:7.0f} MiB, malloc in use {row['malloc_in_use_mib']:6.0f} MiB, "
          f"tensors > 1 MiB {row['tensors_over_1mib_mib']:5.0f} MiB, models {models}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="a run's workspace (it is written to: use a copy)")
    ap.add_argument("--onednn-cache", type=int, default=None, help="ONEDNN_PRIMITIVE_CACHE_CAPACITY (default: oneDNN's)")
    args = ap.parse_args()
    if args.onednn_cache is not None:
        os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(args.onednn_cache)  # read when oneDNN loads
    os.environ.setdefault("LIRA_QUIET", "1")

    from lira.config import load_params
    from lira.stages import run_stage
    from lira.train import arca_run

    root = args.root.resolve()
    params = load_params(root / "params.yaml", ["tracking.enabled=false"])
    cache = root / params.shared.paths.cache
    shutil.rmtree(cache / "checkpoints" / "arca", ignore_errors=True)
    for d in (cache / "features").glob("*lora*"):
        shutil.rmtree(d)

    rows: list[dict[str, Any]] = []
    tuned = arca_run.tuned_lrl_slots

    def measured(*a: Any, **k: Any) -> Any:
        rows.append(snapshot("before tuned features"))
        out = tuned(*a, **k)
        rows.append(snapshot("after tuned features"))
        return out

    arca_run.tuned_lrl_slots = measured
    load0, t0 = loadavg(), time.perf_counter()
    run_stage("train_arca", params, root)
    wall = time.perf_counter() - t0
    rows.append(snapshot("stage end"))
    if len(rows) != 3:
        raise SystemExit(f"the stage computed no tuned features ({len(rows) - 1} snapshots): is LoRA enabled in {root}?")
    payload = {"bench": "heap_sources", "command": command(), "machine": machine_info(), "git": git_state(),
               "onednn_primitive_cache": args.onednn_cache, "wall_s": round(wall, 1), "load_start": load0,
               "load_end": loadavg(), "snapshots": rows}
    suffix = "" if args.onednn_cache is None else f"_onednn{args.onednn_cache}"
    write_result(f"heap_sources{suffix}", payload)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
