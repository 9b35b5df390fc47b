"""train_arca and train_lasr on the sample: one process vs ``torchrun --nproc-per-node N`` (gloo, CPU).

The two runs start from the same prepared inputs in two isolated workspaces (copies: nothing is
shared but read-only model files), each with its own feature cache and no checkpoints, so both
train from scratch; tracking is off and the LaSR variants train one after another in both
(``train_lasr.workers=1``: the ranks already share each variant). Then their metrics files are
compared field by field.

What to expect: each rank draws the dropout masks one process draws for the global batch and
keeps its rows (lira.distributed.draws: the adaptor's, the LaSR head's and its path dropout, and
the LRL backbone's own during the LoRA epochs), so on frozen features the runs agree to the
rounding the 2-rank equivalence tests bound (tests/distributed). The LoRA epoch adds one
difference: under ``lora.train_precision: bf16`` (the default) each rank's LoRA weight gradients
are bf16 matmuls over its own rows, rounded to bf16 before the fp32 all-reduce, where one process
rounds the whole batch's sum once - a difference of bf16's own size. With ``--set
shared.encoders.lrl.lora.train_precision=fp32`` the tuned encoder agrees to about 1e-4 after its
epoch; the adaptor epochs that follow start from those features, and over 20-30 epochs with early
stopping such differences compound (as between any two machines). So beside the field-by-field
check at ``TOLERANCE`` the full run is judged on its headline metrics against the training's own
spread (``--seed-runs K``: K more 1-process runs that differ only in shared.seed).
``--strategy fsdp`` shards train_arca's LoRA encoder with FSDP2 in the N-rank run
(shared.distributed.strategy).

Usage: ``.venv/bin/python bench/distributed_sample.py --workspace DIR [--nproc 2] [--no-dropout] [--full-only]
[--strategy grads|fsdp] [--seed-runs K] [--set KEY=VALUE ...]``
where DIR holds ``params.yaml``, ``data/{prepared,translations,critic}`` and optionally a warm
``.cache/lira`` (copied into DIR/1proc and DIR/<N>proc) -> bench/results/distributed_sample.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command, git_state, loadavg, machine_info, run_workspace, write_result

STAGES = ("train_arca", "train_lasr")
# Stated tolerance of the comparison: every number of arca.json and lasr.json (epoch counts included).
TOLERANCE = 1e-4
# Over a whole run (24-30 Arca epochs with early stopping) rounding differences compound, as they
# do between any two machines: there the N-rank run is judged on the headline metrics against the
# training's own spread, the range over 1-process runs that differ only in shared.seed
# (--seed-runs): the N-rank difference must be at most this share of that range.
SEED_SHARE = 0.25
HEADLINE = {
    "lasr_dev_ndcg10": lambda r: (r["lasr.json"] or {}).get("dev_ndcg10"),
    "arca_dev_eps1_trained": lambda r: (r["arca.json"] or {}).get("dev_eps1_trained"),
}
NO_DROPOUT = ["train_arca.dropout=0.0", "train_lasr.dropout=0.0", "train_lasr.path_dropout=0.0"]


def prepare(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "params.yaml", dest / "params.yaml")
    for part in ("prepared", "translations", "critic"):
        shutil.copytree(src / "data" / part, dest / "data" / part, dirs_exist_ok=True)
    cache = src / ".cache" / "lira"
    if (cache / "features").is_dir():
        shutil.copytree(cache / "features", dest / ".cache" / "lira" / "features", dirs_exist_ok=True)
    if (cache / "models").exists() and not (dest / ".cache" / "lira" / "models").exists():
        (dest / ".cache" / "lira" / "models").symlink_to((cache / "models").resolve())


def run_stages(ws: Path, nproc: int, overrides: list[str], timeout: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LIRA_QUIET": "1"}
    sets = [a for o in ["tracking.enabled=false", "train_lasr.workers=1", *overrides] for a in ("--set", o)]
    out: dict[str, Any] = {}
    for stage in STAGES:
        lira = ["-m", "lira", "stage", stage, "--params", "params.yaml", *sets]
        cmd = [sys.executable, *lira] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                          f"--nproc-per-node={nproc}", *lira]
        t0, load0 = time.perf_counter(), loadavg()
        proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        out[stage] = {"command": " ".join(cmd[1:]), "rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
                      "load_start": load0, "load_end": loadavg()}
        if proc.returncode != 0:
            out[stage]["stderr_tail"] = proc.stderr[-3000:]
            break
    for name in ("arca.json", "lasr.json"):
        path = ws / "metrics" / name
        out[name] = json.loads(path.read_text()) if path.exists() else None
    return out


def numeric_leaves(x: Any, prefix: str = "") -> dict[str, float]:
    if isinstance(x, dict):
        return {k2: v2 for k, v in x.items() for k2, v2 in numeric_leaves(v, f"{prefix}{k}.").items()}
    if isinstance(x, bool) or not isinstance(x, int | float):
        return {}
    return {prefix.rstrip("."): float(x)}


def compare(a: dict | None, b: dict | None) -> dict[str, Any]:
    if a is None or b is None:
        return {"missing": True}
    la, lb = numeric_leaves(a), numeric_leaves(b)
    keys = sorted(set(la) & set(lb))
    diffs = {k: abs(la[k] - lb[k]) for k in keys if not (k.endswith("seconds"))}
    return {"fields": len(diffs), "max_abs_diff": max(diffs.values(), default=0.0),
            "largest": dict(sorted(diffs.items(), key=lambda kv: -kv[1])[:8]),
            "only_in_one": sorted(set(la) ^ set(lb))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--no-dropout", action="store_true")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a params override for both runs (recorded), e.g. a shorter run on a loaded machine")
    ap.add_argument("--strategy", choices=("grads", "fsdp"), default="grads",
                    help="shared.distributed.strategy of the N-rank run (the 1-process run is the plain path either way)")
    ap.add_argument("--full-only", action="store_true", help="train_lasr trains the full variant only (no ablations): "
                    "each variant seeds itself, so 'full' is the same run either way, at a fifth of the cost")
    ap.add_argument("--seed-runs", type=int, default=0, metavar="K",
                    help="also run the 1-process stages under K other seeds (shared.seed+1..+K, same prepared data): "
                    "the training's own spread, the scale on which the N-rank run's headline difference is judged")
    ap.add_argument("--tag", help="the result's name: bench/results/distributed_sample_<tag>.json "
                    "(default: default|nodrop, _fsdp, _custom with --set)")
    args = ap.parse_args()
    overrides = (NO_DROPOUT if args.no_dropout else []) + (["train_lasr.ablations=[]"] if args.full_only else []) + args.sets
    tag = (("nodrop" if args.no_dropout else "default") + ("" if args.strategy == "grads" else f"_{args.strategy}")
           + ("_custom" if args.sets else "")) if args.tag is None else args.tag
    runs = {}
    for n in (1, args.nproc):
        ws = run_workspace(args.workspace, tag, n)
        prepare(args.workspace, ws)
        extra = [f"shared.distributed.strategy={args.strategy}"] if n > 1 and args.strategy != "grads" else []
        runs[f"{n}proc"] = run_stages(ws, n, overrides + extra, args.timeout)
    one, many = runs["1proc"], runs[f"{args.nproc}proc"]
    from lira.config import load_params

    base_seed = load_params(args.workspace / "params.yaml").shared.seed
    seeds = {base_seed: one}
    for s in range(base_seed + 1, base_seed + 1 + args.seed_runs):
        ws = run_workspace(args.workspace, tag, 1, s)
        prepare(args.workspace, ws)
        seeds[s] = runs[f"1proc_seed{s}"] = run_stages(ws, 1, [*overrides, f"shared.seed={s}"], args.timeout)
    headline = {name: {"1proc": get(one), f"{args.nproc}proc": get(many)} for name, get in HEADLINE.items()}
    if args.seed_runs:
        for name, get in HEADLINE.items():
            values = [get(r) for r in seeds.values()]
            h = headline[name]
            h["seeds"] = dict(zip(map(str, seeds), values, strict=True))
            h["seed_range"] = max(values) - min(values) if None not in values else None
            h["ranks_diff"] = abs(h["1proc"] - h[f"{args.nproc}proc"]) if None not in (h["1proc"], h[f"{args.nproc}proc"]) else None
            h["within_seed_tolerance"] = (h["seed_range"] is not None and h["ranks_diff"] is not None
                                          and h["ranks_diff"] <= SEED_SHARE * h["seed_range"])
    payload = {
        "bench": "distributed_sample", "command": command(), "machine": machine_info(), "git": git_state(),
        "overrides": overrides, "nproc": args.nproc, "strategy": args.strategy, "runs": runs,
        "compare": (cmp := {name: compare(one[name], many[name]) for name in ("arca.json", "lasr.json")}),
        "tolerance_abs": TOLERANCE,
        "within_tolerance": all(not c.get("missing") and c["max_abs_diff"] <= TOLERANCE and not c["only_in_one"]
                                for c in cmp.values()),
        "headline": headline,
    }
    if args.seed_runs:
        payload["seed_tolerance"] = {"share_of_seed_range": SEED_SHARE, "seeds": list(seeds),
                                     "met": all(h["within_seed_tolerance"] for h in headline.values())}
    print(json.dumps(payload["headline"], indent=1), json.dumps(payload["compare"], indent=1),
          "within tolerance:", payload["within_tolerance"], "seed tolerance:", payload.get("seed_tolerance"))
    write_result(f"distributed_sample_{tag}", payload)


if __name__ == "__main__":
    main()
