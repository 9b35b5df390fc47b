"""``lira run``'s no-change path and ``lira config`` must not import torch (issue 15: rerun <= 3 s).

Reproduction: ``import lira.cli`` went lira.config -> lira.arca.config -> lira/arca/__init__ ->
lira.arca.actor -> torch, ~2.5 s of every CLI call. The packages now load their torch-backed names
on first use; the names themselves must still resolve.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_cli_and_params_does_not_import_torch():
    code = ("import sys, lira.cli, lira.config, lira.pipeline_status; "
            "heavy = [m for m in ('torch', 'transformers', 'mlflow', 'dvc', 'prefect', 'great_expectations') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert p.returncode == 0, f"imported at CLI start-up: {p.stdout.strip()} {p.stderr[-500:]}"


def test_the_lazy_names_still_resolve():
    from lira import arca, encoders, lasr
    from lira.arca.actor import Actor
    from lira.encoders.base import Encoder
    from lira.lasr.queues import CorrQueue

    assert arca.Actor is Actor and encoders.Encoder is Encoder and lasr.CorrQueue is CorrQueue
    for mod in (arca, encoders, lasr):
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"{mod.__name__}.{name}"
    try:
        encoders.NoSuchName  # noqa: B018
    except AttributeError as e:
        assert "NoSuchName" in str(e)
    else:
        raise AssertionError("an unknown name resolved")
