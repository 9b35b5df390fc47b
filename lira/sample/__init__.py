"""The shipped seven-language sample (see README.md in this folder for how it was written)."""

from __future__ import annotations

import shutil
from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "data"


def sample_files() -> list[Path]:
    return sorted(SAMPLE_DIR.glob("*.json"))


def sync_sample(dest: str | Path) -> int:
    """Copy the packaged sample files byte for byte into ``dest`` (the DVC-tracked raw folder)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files = sample_files()
    for f in files:
        shutil.copyfile(f, dest / f.name)
    return len(files)
