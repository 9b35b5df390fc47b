"""LiRA's headline metrics over seeds, for this code and a peer (an earlier commit), on one machine.

A change that moves the trainer's numbers a little (here: the tuned LRL features computed through
the merged encoder's inference engine rather than the live fp32 path) moves a LoRA run by as much
as another seed does: a before/after table of one seed cannot tell a shift from that spread. So
each code trains Arca and LaSR and evaluates for every seed in ``--seeds``, from the same prepared
inputs (a run's clone: ``params.yaml``, ``data/{prepared,translations,critic}``, and its
``.cache/lira`` models and features, which are content-addressed and shared read-mostly), in a
workspace of its own per (code, seed), tracking off. The code is put first on ``PYTHONPATH``
(``--peer-code DIR``: a checkout of the other commit, e.g. ``git worktree add DIR <commit>``).

Usage: ``.venv/bin/python bench/seed_spread.py --workspace DIR --peer-code DIR [--seeds 13 14 15]``
-> bench/results/seed_spread.json
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
from _common import ROOT, command, git_state, loadavg, machine_info, write_result

STAGES = ("train_arca", "train_lasr", "evaluate")
DRIVER = """
import json, sys, time
from pathlib import Path
from lira.config import load_params
from lira.stages import run_stage
root = Path(sys.argv[1])
params = load_params(root / "params.yaml", ["tracking.enabled=false", f"shared.seed={sys.argv[2]}"])
seconds = {}
for stage in sys.argv[3].split(","):
    t0 = time.perf_counter()
    run_stage(stage, params, root)
    seconds[stage] = round(time.perf_counter() - t0, 1)
print(json.dumps(seconds))
"""


def headline(root: Path) -> dict[str, Any]:
    ev = json.loads((root / "metrics" / "evaluate.json").read_text())
    lira, xl = ev["systems"]["lira"], ev["crosslingual"]["systems"]["lira"]
    arca = json.loads((root / "metrics" / "arca.json").read_text())
    return {"ndcg@10": lira["retrieval"]["ndcg@10"], "sts_pearson": lira["sts"]["pearson"],
            "mc_accuracy": lira["mc"]["accuracy"], "xl_ndcg@10": xl["ndcg@10"],
            "arca_best_epoch": arca["best_epoch"], "arca_dev_eps1_trained": arca["dev_eps1_trained"]}


def workspace(src: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "data").mkdir(parents=True)
    shutil.copy2(src / "params.yaml", dest / "params.yaml")
    for d in ("prepared", "translations", "critic"):
        shutil.copytree(src / "data" / d, dest / "data" / d)
    cache = dest / ".cache" / "lira"
    cache.mkdir(parents=True)
    for d in ("models", "features"):  # no checkpoints: every run trains from scratch
        (cache / d).symlink_to((src / ".cache" / "lira" / d).resolve())
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, required=True, help="a run's clone (see the docstring)")
    ap.add_argument("--peer-code", type=Path, required=True, help="a checkout of the commit to compare with")
    ap.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    ap.add_argument("--timeout", type=int, default=1800)
    args = ap.parse_args()
    src, peer = args.workspace.resolve(), args.peer_code.resolve()
    peer_commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=peer, capture_output=True, text=True).stdout.strip()
    codes = {"this": ROOT, "peer": peer}
    load0, runs = loadavg(), []
    for seed in args.seeds:
        for name, code in codes.items():  # interleaved: a change in machine load hits both alike
            ws = workspace(src, src.parent / f"seed-spread-{name}-{seed}")
            env = {**os.environ, "PYTHONPATH": str(code), "LIRA_QUIET": "1"}
            t0, load = time.perf_counter(), loadavg()
            proc = subprocess.run([sys.executable, "-c", DRIVER, str(ws), str(seed), ",".join(STAGES)], cwd=ws, env=env,
                                  capture_output=True, text=True, timeout=args.timeout)
            if proc.returncode != 0:
                raise SystemExit(f"{name} seed {seed} failed:\n{proc.stderr[-3000:]}")
            row = {"code": name, "seed": seed, "load_start": load, "wall_s": round(time.perf_counter() - t0, 1),
                   "stage_s": json.loads(proc.stdout.strip().splitlines()[-1]), **headline(ws)}
            runs.append(row)
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {row[k]:.4f}" for k in ("ndcg@10", "sts_pearson", "xl_ndcg@10")),
                  flush=True)
    spread = {name: {k: [min(r[k] for r in runs if r["code"] == name), max(r[k] for r in runs if r["code"] == name)]
                     for k in ("ndcg@10", "sts_pearson", "mc_accuracy", "xl_ndcg@10")} for name in codes}
    payload = {"bench": "seed_spread", "command": command(), "machine": machine_info(), "git": git_state(),
               "peer_commit": peer_commit, "seeds": args.seeds, "load_start": load0, "load_end": loadavg(),
               "runs": runs, "range": spread}
    write_result("seed_spread", payload)


if __name__ == "__main__":
    main()
