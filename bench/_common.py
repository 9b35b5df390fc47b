"""What every bench script shares: machine facts, load checks, summary statistics, the JSON writer.

Every figure a bench script writes comes from a measurement taken in that run; this module only
describes the machine and formats results. ``os.getloadavg()`` is recorded at the start and end of
each measurement because the machine is shared: a measurement taken under load > ``MAX_LOAD`` is
retried (when the script can afford it) and flagged in the JSON either way.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MAX_LOAD = 2.5  # 1-minute load average above which a 2-core measurement is contended


def nproc() -> int:
    """What the shell's ``nproc`` prints (the CPUs this process may use), falling back to affinity."""
    try:
        return int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, ValueError, subprocess.CalledProcessError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Date, CPU count, CPU model, memory, Python, torch version and its thread settings."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "nproc": nproc(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
                        if k in os.environ},
    }
    try:
        import psutil

        info["mem_total_gib"] = round(psutil.virtual_memory().total / 2**30, 2)
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    except ImportError:
        info["torch"] = None
    return info


# Options whose value is a location on this machine: the result records the option, not the path.
REDACTED_OPTIONS = ("--flores", "--peer-code", "--workspace", "--root", "--ort", "--ort-workdir", "--cache-dir",
                    "--precision-cache", "--encoder")


def command() -> str:
    """The exact command that produced the result, relative to the repo root when possible."""
    exe = Path(sys.executable)
    try:
        exe_s = str(exe.relative_to(ROOT))
    except ValueError:  # an interpreter outside the checkout: its name only (no machine paths)
        exe_s = exe.name
    script = Path(sys.argv[0])
    try:
        script_s = str(script.resolve().relative_to(ROOT))
    except ValueError:
        script_s = sys.argv[0]
    args = list(sys.argv[1:])
    for i, a in enumerate(args):  # data locations are this machine's: record the option, not the path
        if a in REDACTED_OPTIONS and i + 1 < len(args):
            args[i + 1] = "DIR"
        elif a.split("=", 1)[0] in REDACTED_OPTIONS:
            args[i] = a.split("=", 1)[0] + "=DIR"
        else:
            args[i] = _no_machine_path(args[i])
    return " ".join(shlex.quote(x) for x in [exe_s, script_s, *args])


def _no_machine_path(arg: str) -> str:
    """An absolute path outside the checkout (alone, or on either side of ``=``) becomes DIR; one inside, relative."""
    def rel(path: str) -> str:
        try:
            return str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            return "DIR"

    if "=" in arg:
        head, _, tail = arg.rpartition("=")
        return rel(head) + "=" + tail if head.startswith("/") else head + "=" + rel(tail) if tail.startswith("/") else arg
    return rel(arg) if arg.startswith("/") else arg


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def summary(xs: Sequence[float]) -> dict[str, float]:
    """n, median, mean, min, max and the interquartile range of a list of timings (seconds)."""
    xs = sorted(float(x) for x in xs)
    if not xs:
        return {"n": 0}
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) >= 2 else [xs[0]] * 3
    return {"n": len(xs), "median": statistics.median(xs), "mean": statistics.fmean(xs), "min": xs[0],
            "max": xs[-1], "q1": q[0], "q3": q[2]}


def measured(fn: Callable[[], Any], max_load: float = MAX_LOAD, retries: int = 1, wait_s: float = 20.0,
             log: Callable[[str], None] = print) -> tuple[Any, dict[str, Any]]:
    """Run ``fn()``, recording the load average before and after; rerun it (up to ``retries`` times,
    after ``wait_s``) when the load was above ``max_load``. Keeps the least-loaded attempt.

    Returns ``(result, meta)`` with meta = {load_start, load_end, attempts, contended}.
    """
    best: tuple[Any, dict[str, Any]] | None = None
    attempts = []
    for attempt in range(retries + 1):
        start = loadavg()
        t0 = time.perf_counter()
        res = fn()
        meta = {"load_start": start, "load_end": loadavg(), "wall_s": round(time.perf_counter() - t0, 3)}
        attempts.append(meta)
        if best is None or max(meta["load_start"], meta["load_end"]) < max(best[1]["load_start"], best[1]["load_end"]):
            best = (res, meta)
        if max(meta["load_start"], meta["load_end"]) <= max_load:
            break
        if attempt < retries:
            log(f"  (load {meta['load_start']}/{meta['load_end']} > {max_load}: waiting {wait_s:.0f} s, then retrying)")
            time.sleep(wait_s)
    assert best is not None
    res, meta = best
    meta = {**meta, "attempts": attempts, "contended": max(meta["load_start"], meta["load_end"]) > max_load}
    return res, meta


def git_state() -> dict[str, Any]:
    """The commit the code was run from and the tracked files that differed from it (work in progress
    is measured as it stood: the working tree, not the commit, is what ran)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    dirty = [ln[3:] for ln in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"commit": git("rev-parse", "HEAD").strip() or None,
            "modified_tracked_files": [f for f in dirty if not f.startswith("bench/results/")]}


def write_result(name: str, payload: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``bench/results/<name>.json`` (machine info and command added) atomically; return its path.

    A ``--quick`` run (``payload["quick"]`` true) goes to ``<name>.quick.json`` instead, so it never
    replaces the default run's figures that bench/README.md quotes.
    """
    out_dir = results_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"bench": name, "command": command(), "machine": machine_info(), "git": git_state(), **payload}
    path = out_dir / (f"{name}.quick.json" if payload.get("quick") else f"{name}.json")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def set_threads(n: int) -> None:
    """Cap BLAS/OpenMP threads and make idle OpenMP threads sleep, before torch initialises.

    Why PASSIVE: with the default policy an idle OpenMP worker spins for a while before sleeping.
    On 2 cores shared with other processes the spinning worker takes the core the working thread
    needs, and small-op training steps got 10-50x slower (bench/training.py measures both policies).
    A caller's explicit ``OMP_WAIT_POLICY`` wins; the value used is recorded in the machine info.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1e-3:
        return f"{x * 1e6:.0f} us"
    if x < 1:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s"


def result_path(name: str, quick: bool = False) -> Path:
    return RESULTS / (f"{name}.quick.json" if quick else f"{name}.json")


# The workspaces bench/distributed_sample.py trains in (one folder per run, under --workspace):
# "<tag>-<n>proc" for the 1-process and N-rank runs, "<tag>-1proc-seed<S>" for its --seed-runs.
# bench/distributed_curves.py and bench/evaluate_spread.py read them back by these names.
def run_workspace(root: Path, tag: str, nproc: int = 1, seed: int | None = None) -> Path:
    return root / (f"{tag}-{nproc}proc" + ("" if seed is None else f"-seed{seed}"))


def run_workspaces(root: Path, tag: str) -> dict[str, Path]:
    """``{"1proc": ..., "<N>proc": ..., "1proc-seed<S>": ...}`` of the runs found under ``root``."""
    return {p.name.removeprefix(f"{tag}-"): p for p in sorted(root.glob(f"{tag}-*proc*")) if p.is_dir()}
