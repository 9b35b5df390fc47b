"""How far the test-set headline moves under perturbations that are not the method: seeds, ranks.

Runs ``lira stage evaluate`` (tracking off) in each workspace ``bench/distributed_sample.py`` left
(``DIR/<tag>-1proc``, ``DIR/<tag>-<N>proc``, ``DIR/<tag>-1proc-seed<S>``: the same prepared data,
trained by one process under other seeds or by N ranks) and reports each system's headline
(``metrics/headline/system/*.json``) per workspace with its range. A 2-rank run differs from one
process by the order of float32 sums only, as a run on another CPU does; where that moves the
headline as far as a seed change, the seed range is the honest cross-machine tolerance (issue 18).

Usage: ``.venv/bin/python bench/evaluate_spread.py --workspace DIR --tag TAG``
-> bench/results/evaluate_spread_<tag>.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command, git_state, loadavg, machine_info, run_workspaces, write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--timeout", type=int, default=1800)
    args = ap.parse_args()
    spaces = {name: p for name, p in run_workspaces(args.workspace, args.tag).items() if (p / "models").is_dir()}
    if not spaces:
        raise SystemExit(f"no trained workspaces {args.workspace}/{args.tag}-*proc*")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LIRA_QUIET": "1"}
    runs: dict[str, dict] = {}
    for name, ws in spaces.items():
        cmd = [sys.executable, "-m", "lira", "stage", "evaluate", "--params", "params.yaml",
               "--set", "tracking.enabled=false", "--set", "train_lasr.ablations=[]"]
        t0, load0 = time.perf_counter(), loadavg()
        proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=args.timeout, check=False)
        run = {"rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 1), "load_start": load0, "load_end": loadavg()}
        if proc.returncode != 0:
            run["stderr_tail"] = proc.stderr[-3000:]
        else:
            run["headline"] = {p.stem: json.loads(p.read_text()) for p in sorted((ws / "metrics/headline/system").glob("*.json"))}
        runs[name] = run
        print(ws.name, run["rc"], run["seconds"], "s", file=sys.stderr)
    ok = {k: r["headline"] for k, r in runs.items() if "headline" in r}
    spread: dict[str, dict[str, dict[str, float]]] = {}
    for system in sorted({s for h in ok.values() for s in h}):
        for metric in sorted({m for h in ok.values() for m in h.get(system, {})}):
            vals = {k: h[system][metric] for k, h in ok.items() if metric in h.get(system, {})}
            seeds = [v for k, v in vals.items() if k == "1proc" or "seed" in k]
            ranks = [v for k, v in vals.items() if k != "1proc" and "seed" not in k]
            spread.setdefault(system, {})[metric] = {
                "values": vals, "seed_range": max(seeds) - min(seeds) if len(seeds) > 1 else None,
                "ranks_diff": abs(ranks[0] - vals["1proc"]) if ranks and "1proc" in vals else None}
    payload = {"bench": "evaluate_spread", "command": command(), "machine": machine_info(), "git": git_state(),
               "tag": args.tag, "runs": runs, "spread": spread}
    for system, metrics in spread.items():
        for metric, s in metrics.items():
            print(f"{system:16s} {metric:14s} seed range {s['seed_range']}  ranks diff {s['ranks_diff']}")
    write_result(f"evaluate_spread_{args.tag}", payload)


if __name__ == "__main__":
    main()
