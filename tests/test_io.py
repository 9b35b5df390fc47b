"""lira/io.py: atomic writes keep the umask's modes (issue 17 item 15: outputs were 0600 whatever the umask)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from lira.io import LockHeld, atomic_path, hold_lock, publish_dir, write_json, write_parquet, write_text


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask():
    saved = os.umask(0o022)
    try:
        yield lambda m: os.umask(m)
    finally:
        os.umask(saved)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})
    write_text(tmp_path / "b.txt", "x")
    write_parquet(tmp_path / "c.parquet", pd.DataFrame({"x": [1]}))
    with atomic_path(tmp_path / "d.bin") as tmp:
        tmp.write_bytes(b"x")
    with publish_dir(tmp_path / "out") as tmp:
        write_json(tmp / "e.json", {})
    for name in ("a.json", "b.txt", "c.parquet", "d.bin", "out/e.json"):
        assert _mode(tmp_path / name) == file_mode, (name, oct(_mode(tmp_path / name)))
    assert _mode(tmp_path / "out") == dir_mode


def test_hold_lock_refuses_a_second_holder_and_frees_on_exit(tmp_path):
    lock = tmp_path / ".dvc" / "tmp" / "x.lock"
    with hold_lock(lock), pytest.raises(LockHeld, match="held by"), hold_lock(lock):
        pass
    with hold_lock(lock):
        pass
