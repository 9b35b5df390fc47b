"""The no-change rerun: ``lira run`` in a workspace where every stage is up to date, vs a peer.

Run it in a checkout whose pipeline has run (``lira run`` once; ``dvc status`` clean). Each round
times, back to back and in alternating order, ``lira run`` with this checkout's code and - with
``--peer-code DIR`` (another checkout of lira, e.g. ``git worktree add DIR <commit>``) - the same
command with DIR's code on ``PYTHONPATH`` in this same workspace, so both meet the same outputs,
the same DVC state and the same machine load. The median round is reported with the load of every
trial. One more run of this checkout's code under ``python -X importtime`` records what its imports
cost (the ten most expensive top-level modules).

``--workspace DIR`` runs both in another workspace (a copy of a checkout whose pipeline has run)
instead of this checkout; its own ``lira/`` is then left alone (the code under test comes from
``PYTHONPATH``), so its ``dvc status`` stays clean.

Usage: ``python bench/rerun.py [--rounds 5] [--peer-code DIR] [--workspace DIR]`` -> bench/results/rerun.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

TARGET_S = 3.0


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> dict:
    load = C.loadavg()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return {"wall_s": round(time.perf_counter() - t0, 3), "rc": p.returncode, "load": load,
            "up_to_date_path": "nothing to reproduce" in p.stdout, "ran_dvc_repro": "$ dvc repro" in p.stdout}


def import_costs(cmd: list[str], env: dict[str, str], cwd: Path, top: int = 10) -> list[tuple[str, float]]:
    p = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], cwd=cwd, env=env, capture_output=True,
                       text=True, check=False)
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = (x.strip() for x in line[len("import time:"):].split("|"))
        if not name.startswith(" ") and cum.isdigit() and not line.split("|")[2].startswith("  "):
            rows.append((name, int(cum) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:top]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peer-code", default=None, help="another lira checkout whose code is the peer")
    ap.add_argument("--workspace", default=None, help="where to run (default: this checkout)")
    ap.add_argument("--peer-commit", default=None, help="the peer's commit, when --peer-code is not a git checkout")
    args = ap.parse_args(argv)
    cwd = Path(args.workspace).resolve() if args.workspace else C.ROOT
    lira = [sys.executable, str(Path(sys.executable).parent / "lira"), "run"]
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIRA_MLFLOW_PARENT_RUN_ID")}
    envs = {"this": {**base, "PYTHONPATH": str(C.ROOT)}}
    if args.peer_code:
        envs["peer"] = {**base, "PYTHONPATH": str(Path(args.peer_code).resolve())}
    trials: dict[str, list[dict]] = {k: [] for k in envs}
    for r in range(args.rounds):
        for name in (list(envs) if r % 2 == 0 else list(envs)[::-1]):
            trials[name].append(timed(lira, envs[name], cwd))
    med = {k: statistics.median(t["wall_s"] for t in v) for k, v in trials.items()}
    out = {"rounds": args.rounds, "trials": trials, "median_s": med, "target_s": TARGET_S,
           "met": med["this"] <= TARGET_S and all(t["rc"] == 0 for t in trials["this"]),
           "import_top_s": import_costs(lira, envs["this"], cwd),
           "workspace": "this checkout" if cwd == C.ROOT else "a copy of a run workspace (--workspace)"}
    if "peer" in med:
        out["peer_over_this"] = round(med["peer"] / med["this"], 2)
        out["peer_commit"] = args.peer_commit or subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=args.peer_code, capture_output=True, text=True, check=False).stdout.strip()
    print({k: out[k] for k in ("median_s", "met", "import_top_s") if k in out}, out.get("peer_over_this"))
    C.write_result("rerun", out)
    return out


if __name__ == "__main__":
    main()
