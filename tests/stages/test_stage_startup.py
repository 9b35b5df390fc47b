"""A stage that declares ``USES_TORCH = False`` runs without importing torch (issue 15: start-up).

Reproduction: ``configure_runtime`` imported torch for every stage, ~1.5 s idle (15 s at load 16)
of build_dataset's 0.7 s of work. The check runs the stage in a fresh interpreter (torch, once
imported, stays in ``sys.modules``), and also shows that a declaration that were wrong would be
caught: the flag is only honest if the stage really never imports torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUN = """\
import json, sys
from pathlib import Path
from lira.config import load_params
from lira.stages import run_stage
root = Path(sys.argv[1])
run_stage(sys.argv[2], load_params(root / "params.yaml"), root)
print(json.dumps({"torch": "torch" in sys.modules}))
"""


def test_build_dataset_runs_without_importing_torch(project):
    root = project
    p = subprocess.run([sys.executable, "-c", RUN, str(root), "build_dataset"], cwd=ROOT, capture_output=True,
                       text=True, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"torch": False}
    assert (root / "data" / "prepared" / "texts.parquet").exists()


def test_only_torch_free_stages_declare_it():
    import importlib

    from lira.config import STAGES

    declared = {s for s in STAGES if not getattr(importlib.import_module(f"lira.stages.{s}"), "USES_TORCH", True)}
    assert declared == {"build_dataset"}
