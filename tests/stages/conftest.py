"""A small project for stage tests: the sample's raw data for th and vi, 8 rows per language, no tracking."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lira.sample import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(SAMPLE_DIR, root / "data" / "raw" / "sample", ignore=shutil.ignore_patterns("*.md"))
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["shared"]["languages"] = ["th", "vi"]
    data["build_dataset"]["max_per_language"] = 8
    data["tracking"]["enabled"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    return root
