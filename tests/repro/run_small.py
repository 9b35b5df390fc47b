"""Run the pipeline's stages on a small slice of the sample with the tiny test BERT, in a fresh
process, and print one JSON line: the sha256 of every trained weight file and the metrics that
training and evaluation wrote (timings left out). Used by test_reproducible.py (twice, in two
processes) and by bench/determinism.py (under other thread counts and CPU instruction sets).

    python tests/repro/run_small.py ROOT BERT_DIR [--threads N]   (N: shared.threads, default 2)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
STAGES = ("build_dataset", "translate", "critic_score", "train_arca", "train_lasr", "evaluate")
# what varies from run to run by design: wall time, and the cost figures built from it
TIMING = ("seconds", "_s", "time", "timings", "cost", "throughput", "per_1k", "rss", "peak")


def _slice(bert: Path, cache: Path, threads: int) -> dict:
    spec = f"hf:{bert}"
    return {
        "shared": {"languages": ["vi", "th"], "s_feat": 2, "paths": {"cache": str(cache)}, "threads": threads,
                   "encoders": {"lrl": {"spec": spec, "max_length": 48}, "en": {"spec": spec, "max_length": 48}}},
        "build_dataset": {"max_per_language": 12},
        "train_arca": {"epochs": 2, "batch_size": 16},
        "train_lasr": {"epochs": 2, "batch_size": 8, "ablations": ["no_queue"], "corr_queue": 32, "doc_queue": 64,
                       "workers": 2},  # two worker processes, as the default pipeline trains its variants
        "evaluate": {"bootstrap_resamples": 100, "distill_epochs": 2},
        "tracking": {"enabled": False},
    }


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def _numbers(x, prefix: str = "") -> dict:  # x: any JSON value
    """Every number of a JSON document by its dotted path, timings left out."""
    if isinstance(x, dict):
        out: dict = {}
        for k, v in x.items():
            if not any(t in str(k).lower() for t in TIMING):
                out.update(_numbers(v, f"{prefix}{k}."))
        return out
    if isinstance(x, list):
        out = {}
        for i, v in enumerate(x):
            out.update(_numbers(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): x} if isinstance(x, (int, float)) and not isinstance(x, bool) else {}


def run_once(root: Path, overrides: dict) -> dict:
    """The six stages on the shipped sample in ``root`` under params.yaml merged with ``overrides``:
    {"weights": sha256 per trained weight file, "metrics": every number of arca/lasr/evaluate.json}."""
    import yaml

    sys.path.insert(0, str(REPO))
    from lira.config import load_params
    from lira.sample import SAMPLE_DIR
    from lira.stages import run_stage

    shutil.copytree(SAMPLE_DIR, root / "data" / "raw" / "sample", ignore=shutil.ignore_patterns("*.md"))
    data = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    params = load_params(root / "params.yaml")
    for s in STAGES:
        run_stage(s, params, root)
    weights = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted(root.glob("models/**/*.safetensors"))}
    metrics = {}
    for name in ("arca.json", "lasr.json", "evaluate.json"):
        metrics.update(_numbers(json.loads((root / "metrics" / name).read_text()), f"{name}:"))
    return {"weights": weights, "metrics": metrics}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("bert", type=Path)
    ap.add_argument("--threads", type=int, default=2, help="shared.threads (torch intra-op threads)")
    a = ap.parse_args()
    import torch

    out = run_once(a.root, _slice(a.bert, a.root / ".cache", a.threads))
    print(json.dumps({**out, "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
