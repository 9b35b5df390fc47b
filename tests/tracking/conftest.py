"""Fixtures for the tracking tests: a throwaway sqlite store per test and a tiny LiRA model folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lira_testkit import build_lira_folder, fresh_store

from lira.config import Params, parse_params


@pytest.fixture
def tracked(tmp_path, monkeypatch) -> tuple[Params, Path]:
    """Params whose tracking store is a sqlite file in tmp_path (never the repo's), and the root."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("LIRA_MLFLOW_PARENT_RUN_ID", raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    params = parse_params(
        {
            "shared": {"languages": ["vi", "th"], "s_feat": 2},
            "tracking": {"tracking_uri": fresh_store(tmp_path / "store"), "registered_model": "lira-test"},
            "evaluate": {"bootstrap_resamples": 200},
        }
    )
    return params, root


@pytest.fixture(scope="session")
def lira_folder(tmp_path_factory, tiny_bert_dir) -> Path:
    return build_lira_folder(tmp_path_factory.mktemp("lira-model") / "full", tiny_bert_dir)
