"""The shipped seven-language sample (see README.md in this folder for how it was written).

The data is ``data/<lang>/<task>.jsonl`` (tasks: items, queries, sts, mc), one record per line, one
schema for every language; :mod:`lira.sample.validate` checks it and writes it in canonical form.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "data"
TASKS = ("items", "queries", "sts", "mc")


def sample_files(folder: str | Path = SAMPLE_DIR) -> list[Path]:
    """The sample's files under ``folder``, relative to it, sorted (the layout DVC hashes)."""
    folder = Path(folder)
    return sorted(p.relative_to(folder) for p in folder.rglob("*.jsonl") if p.is_file())


def sample_docs(folder: str | Path = SAMPLE_DIR) -> dict[str, dict[str, list[dict]]]:
    """The shipped sample as records: ``{lang: {task: [record, ...]}}`` in file order."""
    import json

    out: dict[str, dict[str, list[dict]]] = {}
    for lang_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        out[lang_dir.name] = {
            task: [json.loads(line) for line in (lang_dir / f"{task}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
            for task in TASKS
        }
    return out


def sync_sample(dest: str | Path, clean: bool = False) -> int:
    """Make ``dest`` (the DVC-tracked raw folder) a byte-for-byte copy of the packaged sample.

    Files in ``dest`` that are not part of the sample (an older layout, a stray edit) would make the
    folder differ from what ``data.dvc`` records: with ``clean`` they are removed, otherwise nothing is
    written and the error lists them.
    """
    dest = Path(dest)
    files = sample_files()
    wanted = set(files)
    extra = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file() and p.relative_to(dest) not in wanted) \
        if dest.exists() else []
    if extra and not clean:
        shown = ", ".join(str(p) for p in extra[:5]) + (" ..." if len(extra) > 5 else "")
        raise FileExistsError(f"{dest}: holds {len(extra)} file(s) that are not part of the sample ({shown}); "
                              "remove them or pass --clean")
    for rel in extra:
        (dest / rel).unlink()
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(SAMPLE_DIR / rel, tmp)
        os.replace(tmp, target)  # atomic: a reader never sees half a file
    for d in sorted((p for p in dest.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return len(files)
