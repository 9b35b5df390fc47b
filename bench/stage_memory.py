"""Where a stage's memory goes: its RSS over time, attributed to the code that was running.

Runs ``lira stage NAME`` in-process in a workspace (a run's clone: params.yaml, data/, .cache/lira)
while a thread samples the process's RSS every ``--interval`` seconds together with the main
thread's stack. Each sample is attributed to the innermost frame inside ``lira/`` (file:function),
so the report lists, per phase, its peak RSS and the time spent in it, and the whole stack at the
stage's peak - the first step of shrinking a stage's footprint (README, "Peak RSS of the process tree").

Usage: ``.venv/bin/python bench/stage_memory.py --root DIR --stage train_arca [--set KEY=VALUE ...]``
-> bench/results/stage_memory_<stage>.json
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command, git_state, loadavg, machine_info, write_result


def lira_frames(frame: Any) -> list[str]:
    """The stack's frames inside lira/, innermost first, as 'lira/x.py:function:line'."""
    out = []
    for fs in reversed(traceback.extract_stack(frame)):
        p = Path(fs.filename)
        if "lira" in p.parts and "site-packages" not in p.parts:
            rel = p.parts[p.parts.index("lira"):]
            out.append(f"{'/'.join(rel)}:{fs.name}:{fs.lineno}")
    return out


class Sampler(threading.Thread):
    def __init__(self, interval: float):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.interval, self.main = psutil.Process(), interval, threading.main_thread().ident
        self.samples: list[tuple[float, float, list[str]]] = []  # (t, rss MiB, lira frames)
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self.stop.wait(self.interval):
            frame = sys._current_frames().get(self.main)
            rss = self.proc.memory_info().rss / 2**20
            self.samples.append((time.perf_counter() - t0, rss, lira_frames(frame) if frame else []))


def phases(samples: list[tuple[float, float, list[str]]], interval: float) -> list[dict[str, Any]]:
    """Per innermost lira function (without its line): peak RSS, time in it, first seen."""
    by: dict[str, dict[str, Any]] = {}
    for t, rss, frames in samples:
        name = frames[0].rsplit(":", 1)[0] if frames else "(outside lira)"
        p = by.setdefault(name, {"phase": name, "first_s": round(t, 2), "seconds": 0.0, "peak_rss_mib": 0.0})
        p["seconds"] += interval
        p["peak_rss_mib"] = max(p["peak_rss_mib"], rss)
    for p in by.values():
        p["seconds"], p["peak_rss_mib"] = round(p["seconds"], 2), round(p["peak_rss_mib"], 1)
    return sorted(by.values(), key=lambda p: -p["peak_rss_mib"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="a run's workspace (it is written to: use a copy)")
    ap.add_argument("--stage", required=True)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--tracking", action="store_true", help="keep params' tracking section (MLflow) as it is; "
                    "by default tracking.enabled=false, so that the stage's own work is what is measured")
    args = ap.parse_args()

    os.environ.setdefault("LIRA_QUIET", "1")
    from lira.config import load_params
    from lira.stages import run_stage

    root = args.root.resolve()
    params = load_params(root / "params.yaml", [*([] if args.tracking else ["tracking.enabled=false"]), *args.sets])
    sampler = Sampler(args.interval)
    load0 = loadavg()
    sampler.start()
    t0 = time.perf_counter()
    run_stage(args.stage, params, root)
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    peak = max(sampler.samples, key=lambda s: s[1])
    payload = {
        "bench": "stage_memory", "command": command(), "machine": machine_info(), "git": git_state(),
        "stage": args.stage, "overrides": args.sets, "tracking": args.tracking, "wall_s": round(wall, 1), "load_start": load0, "load_end": loadavg(),
        "interval_s": args.interval, "samples": len(sampler.samples),
        "peak_rss_mib": round(peak[1], 1), "peak_at_s": round(peak[0], 2), "peak_stack": peak[2],
        "phases": phases(sampler.samples, args.interval),
        "timeline": [(round(t, 1), round(r, 1), f[0] if f else "") for t, r, f in sampler.samples[:: max(1, int(1 / args.interval))]],
    }
    print(f"{args.stage}: {wall:.1f} s, peak RSS {peak[1]:.0f} MiB at {peak[0]:.1f} s in", *peak[2][:6], sep="\n  ")
    for p in payload["phases"][:12]:
        print(f"  {p['peak_rss_mib']:8.0f} MiB  {p['seconds']:7.1f} s  from {p['first_s']:6.1f} s  {p['phase']}")
    write_result(f"stage_memory_{args.stage}", payload)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
