"""How far trained metrics move with the machine: the same small training (tests/repro/run_small.py:
all six stages on a slice of the sample, the tiny test BERT, two LaSR worker processes) rerun in fresh
processes with (a) nothing changed but the Python hash seed, (b) other torch thread counts
(``shared.threads``), (c) another CPU instruction set for torch's own kernels, MKL and oneDNN
(``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``, ``ONEDNN_MAX_CPU_ISA``: AVX2 on an AVX-512
machine, as a stand-in for an older CPU). Each is compared with the first run: are the weight files
bit-identical, how many metrics changed, by how much (headline nDCG@10 per system in x100 points).

``--encoder DIR`` (a local Hugging Face folder, e.g. the materialised multilingual-e5-small) also
embeds the sample's texts under each instruction set and reports the drift of the features.

``--full`` runs the model ``make run`` trains instead (bench/pipeline_once.py: the whole shipped
sample, default parameters, mE5-small) under torch's three kernel paths - AVX-512 (this machine's
own), AVX2 and ``default`` (no vector ISA: ``ATEN_CPU_CAPABILITY=default``, oneDNN and MKL capped at
SSE4.1/SSE4.2) - plus a rerun with another hash seed, and writes determinism_full.json. It emulates
another CPU by forcing this one onto other code paths; a real other CPU also differs in its MKL/oneDNN
dispatch and cache sizes, which this cannot show.

    python bench/determinism.py [--encoder DIR] [--n-texts 256] [--full [--variants a,b]]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

RUNNER = C.ROOT / "tests" / "repro" / "run_small.py"
FULL_RUNNER = C.ROOT / "bench" / "pipeline_once.py"
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
NO_VEC = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}
VARIANTS = {  # name -> (shared.threads, extra env)
    "base": (2, {"PYTHONHASHSEED": "1"}),
    "rerun_other_hash_seed": (2, {"PYTHONHASHSEED": "2"}),
    "threads_1": (1, {"PYTHONHASHSEED": "1"}),
    "threads_4": (4, {"PYTHONHASHSEED": "1"}),
    "isa_avx2": (2, {"PYTHONHASHSEED": "1", **AVX2}),
    "isa_default": (2, {"PYTHONHASHSEED": "1", **NO_VEC}),
}
FULL_VARIANTS = {  # threads None: params.yaml's shared.threads
    "base": (None, {"PYTHONHASHSEED": "1"}),
    "isa_avx2": (None, {"PYTHONHASHSEED": "1", **AVX2}),
    "isa_default": (None, {"PYTHONHASHSEED": "1", **NO_VEC}),
    "rerun_other_hash_seed": (None, {"PYTHONHASHSEED": "2"}),
}
SYSTEMS = ("lira", "lira_lrl_only", "frozen", "translate_test", "mse_distill")
HEADLINE = [f"evaluate.json:systems.{s}.retrieval.ndcg@10" for s in SYSTEMS]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AVX2}
    env.update({"PYTHONPATH": str(C.ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LIRA_QUIET": "1",
                "TOKENIZERS_PARALLELISM": "false", "GX_ANALYTICS_ENABLED": "false", **extra})
    return env


def run_variant(tmp: Path, bert: Path | None, name: str, threads: int | None, extra: dict[str, str]) -> dict:
    t0, load0 = time.perf_counter(), C.loadavg()
    cmd = [sys.executable, str(RUNNER), str(tmp / name), str(bert)] if bert is not None else \
        [sys.executable, str(FULL_RUNNER), str(tmp / name)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, env=_env(extra), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"variant {name} failed (rc {out.returncode}):\n{out.stderr[-4000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update({"seconds": round(time.perf_counter() - t0, 1), "load_start": load0, "load_end": C.loadavg()})
    return res


def compare(a: dict, b: dict) -> dict:
    changed = {k: (a["metrics"][k], b["metrics"].get(k)) for k in a["metrics"] if a["metrics"][k] != b["metrics"].get(k)}
    num = [abs(x - y) for x, y in changed.values() if isinstance(y, (int, float))]
    return {
        "weights_identical": a["weights"] == b["weights"],
        "weight_files_changed": sorted(k for k in a["weights"] if a["weights"][k] != b["weights"].get(k)),
        "metrics_compared": len(a["metrics"]), "metrics_changed": len(changed),
        "max_abs_change": max(num, default=0.0),
        "largest_changes": dict(sorted(((k, round(y - x, 6)) for k, (x, y) in changed.items()
                                        if isinstance(y, (int, float))), key=lambda kv: -abs(kv[1]))[:8]),
        "cpu_capability": b.get("cpu_capability"),
        "headline_change_x100": {k.split(".")[2]: round(100 * (b["metrics"][k] - a["metrics"][k]), 4)
                                 for k in HEADLINE if k in a["metrics"] and k in b["metrics"]},
    }


FEATURES = r"""
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from lira.encoders import Encoder, EncoderSettings
from lira.sample import SAMPLE_DIR
texts = []
for f in sorted(SAMPLE_DIR.glob("*/items.jsonl")):
    texts += [json.loads(l)["text"] for l in f.read_text(encoding="utf-8").splitlines() if l.strip()][:int(sys.argv[4]) // 7 + 1]
e = Encoder(EncoderSettings(spec="hf:" + sys.argv[2]), sys.argv[3]).embed(texts[: int(sys.argv[4])], kind="passage")
np.save(sys.argv[5], e)
"""


def feature_drift(tmp: Path, encoder: Path, n: int, isa: dict[str, str] = AVX2) -> dict:
    import numpy as np

    out = {}
    for name, extra in (("base", {}), ("isa_other", isa)):
        subprocess.run([sys.executable, "-c", FEATURES, str(C.ROOT), str(encoder), str(tmp / "cache"), str(n),
                        str(tmp / f"{name}.npy")], env=_env(extra), check=True, capture_output=True)
        out[name] = np.load(tmp / f"{name}.npy")
    a, b = out["base"], out["isa_other"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"n_texts": len(a), "bit_identical": bool(np.array_equal(a, b)), "max_abs_diff": float(np.abs(a - b).max()),
            "min_cosine": float(cos.min())}


def _result(runs: dict, variants: dict, full: bool, done: bool) -> dict:
    result = {"variants": {n: {"threads": variants[n][0] or r.get("torch_threads"), "env": variants[n][1],
                               "cpu_capability": r.get("cpu_capability"), "seconds": r["seconds"],
                               "load_start": r["load_start"], "load_end": r["load_end"]} for n, r in runs.items()},
              "vs_base": {n: compare(runs["base"], r) for n, r in runs.items() if n != "base"},
              "base_headline_x100": {k.split(".")[2]: round(100 * runs["base"]["metrics"][k], 4)
                                     for k in HEADLINE if k in runs["base"]["metrics"]}}
    if full:
        result["what"] = ("the default model (make run's parameters, MLflow off) on the whole shipped sample; "
                          "other kernel paths of this one CPU stand in for other CPUs")
        result["complete"] = done
        result["variants_planned"] = list(variants)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", type=Path, default=None, help="a local HF encoder folder for the feature-drift check")
    ap.add_argument("--n-texts", type=int, default=256)
    ap.add_argument("--full", action="store_true", help="the default model on the whole sample (bench/pipeline_once.py)")
    ap.add_argument("--variants", default=None, help="comma-separated subset of the variants (base is always run)")
    a = ap.parse_args()
    variants = FULL_VARIANTS if a.full else VARIANTS
    if a.variants:
        unknown = set(a.variants.split(",")) - set(variants)
        if unknown:
            raise SystemExit(f"--variants: unknown {sorted(unknown)}; choose from {sorted(variants)}")
        variants = {n: v for n, v in variants.items() if n == "base" or n in a.variants.split(",")}
    sys.path.insert(0, str(C.ROOT / "tests"))
    from conftest import build_tiny_bert

    name_out = "determinism_full" if a.full else "determinism"
    if a.variants:  # a subset never replaces the full set's results
        name_out += "_" + "_".join(n for n in variants if n != "base")
    with tempfile.TemporaryDirectory(prefix="lira-determinism-") as d:
        tmp = Path(d)
        bert = None if a.full else build_tiny_bert(tmp / "bert")
        runs: dict = {}
        for name, (threads, extra) in variants.items():
            runs[name] = run_variant(tmp, bert, name, threads, extra)
            print(f"{name}: {runs[name]['seconds']} s ({runs[name].get('cpu_capability')})", flush=True)
            result = _result(runs, variants, a.full, done=len(runs) == len(variants))
            if a.full:  # a full variant takes many minutes: keep what is measured if a later one dies
                C.write_result(name_out, result)
            shutil.rmtree(tmp / name, ignore_errors=True)
        if a.encoder is not None:
            for name, isa in (("avx2", AVX2), ("default", NO_VEC)):
                if f"isa_{name}" in variants:
                    result[f"encoder_feature_drift_{name}"] = feature_drift(tmp, a.encoder, a.n_texts, isa)
    print(json.dumps(result["vs_base"], indent=1))
    print(C.write_result(name_out, result))


if __name__ == "__main__":
    main()
