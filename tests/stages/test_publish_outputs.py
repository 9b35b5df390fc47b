"""A stage's output folder is published whole or not at all (issue 17 item 12).

Reproduction: a build_dataset write that failed part-way left ``data/prepared`` mixed - new tables
beside the old ``dataset.json``. Here the failure is injected after a few tables are written; the
old folder and report must be left exactly as they were, and no temp folder may linger.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from lira.config import load_params
from lira.io import publish_dir
from lira.stages import build_dataset

ROOT = Path(__file__).resolve().parents[2]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _params(root: Path, **build):
    data = yaml.safe_load((root / "params.yaml").read_text())
    data["build_dataset"].update(build)
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    return load_params(root / "params.yaml")


def test_build_dataset_failure_part_way_leaves_the_old_outputs(project, monkeypatch):
    build_dataset.run(_params(project), project)
    prepared, report = project / "data" / "prepared", project / "metrics" / "dataset.json"
    before, report_before = _snapshot(prepared), report.read_bytes()
    assert len(before) >= 6

    # A different slice (so every table would change), and the disk "fills up" at the fourth table.
    real = build_dataset.write_parquet
    written: list[str] = []

    def failing(path, df):
        if len(written) == 3:
            raise OSError(28, "No space left on device", str(path))
        written.append(Path(path).name)
        real(path, df)

    monkeypatch.setattr(build_dataset, "write_parquet", failing)
    with pytest.raises(OSError, match="No space left"):
        build_dataset.run(_params(project, max_per_language=5), project)
    assert len(written) == 3
    assert _snapshot(prepared) == before, "data/prepared was changed by a run that failed"
    assert report.read_bytes() == report_before
    assert sorted(p.name for p in prepared.parent.iterdir()) == ["prepared", "raw"]  # no temp folder left

    # The same run without the failure does publish (the slice really differed).
    monkeypatch.setattr(build_dataset, "write_parquet", real)
    build_dataset.run(_params(project, max_per_language=5), project)
    assert _snapshot(prepared) != before and report.read_bytes() != report_before


def test_publish_dir_replaces_the_whole_folder_or_nothing(tmp_path):
    out = tmp_path / "out"
    with publish_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        (tmp / "b.txt").write_text("1")
    with pytest.raises(RuntimeError), publish_dir(out) as tmp:
        (tmp / "a.txt").write_text("2")
        raise RuntimeError("stage crashed")
    assert _snapshot(out) == {"a.txt": b"1", "b.txt": b"1"}
    with publish_dir(out) as tmp:
        (tmp / "c.txt").write_text("3")
    assert _snapshot(out) == {"c.txt": b"3"}  # the folder is the new run's, nothing stale kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_publish_dir_sweeps_folders_a_killed_run_left(tmp_path):
    out = tmp_path / "out"
    dead = tmp_path / ".out.pub-999999999-abc.tmp"  # no such pid
    dead.mkdir()
    (dead / "half.parquet").write_text("x")
    live = tmp_path / f".out.pub-{os.getppid()}-abc.tmp"  # a running process's: kept
    live.mkdir()
    with publish_dir(out) as tmp:
        (tmp / "a").write_text("1")
    assert not dead.exists() and live.exists()


def test_publish_dir_restores_the_old_folder_a_run_killed_mid_swap_left_aside(tmp_path):
    out = tmp_path / "out"
    aside = tmp_path / ".out.old-999999999"  # killed after moving the old folder aside
    aside.mkdir()
    (aside / "a").write_text("old")
    with pytest.raises(RuntimeError), publish_dir(out):
        raise RuntimeError("this run fails too")
    assert _snapshot(out) == {"a": b"old"} and not aside.exists()


def test_train_lasr_failure_in_a_later_variant_leaves_the_old_model_folders(project, monkeypatch):
    # Reproduction: train_lasr wrote each variant's folder in place, so a crash in the fourth
    # variant left three new model folders beside an old one. The trainer is replaced by one that
    # writes a folder per variant and fails on the second, so the test needs no training.
    from lira.stages import train_lasr

    params = _params(project)
    old = project / params.shared.paths.lasr
    (old / "full").mkdir(parents=True)
    (old / "full" / "net.safetensors").write_bytes(b"old weights")
    before = _snapshot(old)

    def fake_train_variants(shared, arca, lasr, root, variants, out=None):
        out = out or root / shared.paths.lasr  # the old stage wrote in place
        (out / variants[0]).mkdir(parents=True, exist_ok=True)
        (out / variants[0] / "net.safetensors").write_bytes(b"new weights")
        raise RuntimeError("killed while training the second variant")

    monkeypatch.setattr(train_lasr, "train_variants", fake_train_variants)
    with pytest.raises(RuntimeError, match="second variant"):
        train_lasr.run(params, project)
    assert _snapshot(old) == before
    assert not [p for p in old.parent.iterdir() if p.name.startswith(f".{old.name}.")]
