"""Epoch by epoch: how far the N-rank Arca run is from the 1-process run, next to a seed change.

Reads the workspaces ``bench/distributed_sample.py`` left (``DIR/<tag>-1proc``, ``DIR/<tag>-<N>proc``
and, with ``--seed-runs``, ``DIR/<tag>-1proc-seed<S>``), their ``plots/arca_curve.csv``, and reports
per epoch the largest absolute difference over the dev columns and the training loss: N ranks vs
one process, and the first other seed vs one process. Rounding-level agreement that grows by a
constant factor per epoch is a chaotic trainer amplifying rounding; a gap of a seed change's size
from epoch 0 on would be a real difference between the two runs (a draw that escaped the rule).

Usage: ``.venv/bin/python bench/distributed_curves.py --workspace DIR --tag TAG [--nproc 2]``
-> bench/results/distributed_curves_<tag>.json
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, git_state, machine_info, run_workspace, run_workspaces, write_result

COLUMNS = ("dev_anchor_error", "dev_bitext_acc", "dev_bitext_margin", "loss")


def curve(ws: Path) -> pd.DataFrame:
    return pd.read_csv(ws / "plots" / "arca_curve.csv").set_index("epoch")


def gaps(a: pd.DataFrame, b: pd.DataFrame) -> dict[int, float]:
    """Per shared epoch: max |a - b| over COLUMNS (NaN cells skipped)."""
    out = {}
    for epoch in sorted(set(a.index) & set(b.index)):
        diffs = [abs(float(a.at[epoch, c]) - float(b.at[epoch, c])) for c in COLUMNS if c in a and c in b]
        diffs = [d for d in diffs if not math.isnan(d)]
        out[int(epoch)] = max(diffs, default=0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args()
    one = curve(run_workspace(args.workspace, args.tag, 1))
    many = curve(run_workspace(args.workspace, args.tag, args.nproc))
    seeds = [p for name, p in run_workspaces(args.workspace, args.tag).items() if "-seed" in name]
    ranks = gaps(one, many)
    seed = gaps(one, curve(seeds[0])) if seeds else {}
    trained = [e for e in ranks if e >= 0]
    growth = [ranks[e + 1] / ranks[e] for e in trained[:-1] if ranks[e] > 0 and e + 1 in ranks and ranks[e + 1] > 0][:3]
    payload = {
        "bench": "distributed_curves", "command": command(), "machine": machine_info(), "git": git_state(),
        "tag": args.tag, "nproc": args.nproc, "columns": list(COLUMNS),
        "ranks_vs_1proc": ranks, "seed_vs_1proc": seed, "seed_run": seeds[0].name if seeds else None,
        "first_epochs_growth": growth,
    }
    for e in sorted(ranks):
        print(f"epoch {e:3d}  {args.nproc} ranks - 1 process {ranks[e]:.1e}"
              + (f"   other seed - 1 process {seed[e]:.1e}" if e in seed else ""))
    write_result(f"distributed_curves_{args.tag}", payload)


if __name__ == "__main__":
    main()
