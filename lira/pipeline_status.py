"""Whether ``lira run`` has anything to reproduce: DVC's own status, remembered against the files' stat.

``dvc status`` is the authority, but it parses ``dvc.yaml`` and ``dvc.lock`` with a pure-Python
YAML round-trip loader on every call (most of a no-change rerun's time). So a clean status is
remembered in ``.dvc/tmp/lira-status.json`` together with a fingerprint of every file DVC would
look at: ``dvc.yaml``, ``dvc.lock``, every ``*.dvc`` file, ``.dvcignore``, DVC's config, the params
files and every dep and out that ``dvc.lock`` and the ``*.dvc`` files name (each file's path, size,
mtime in ns and inode - what DVC's own state database trusts to skip re-hashing a file). The next
call with the same fingerprint and target is answered from the memo; any difference, a missing
memo or any error asks DVC again. A status that is not clean is never remembered.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MEMO = Path(".dvc") / "tmp" / "lira-status.json"
FIXED = ("dvc.yaml", "dvc.lock", ".dvcignore", ".dvc/config", ".dvc/config.local")


def _paths(root: Path) -> set[str]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    paths = set(FIXED)
    lock = yaml.load((root / "dvc.lock").read_text(encoding="utf-8"), Loader=loader) or {}
    for stage in (lock.get("stages") or {}).values():
        for entry in (stage.get("deps") or []) + (stage.get("outs") or []):
            paths.add(str(entry["path"]))
        paths.update(str(p) for p in (stage.get("params") or {}))
    for dvcfile in (p for p in root.glob("*.dvc") if p.is_file()):  # not the .dvc folder
        paths.add(dvcfile.name)
        for entry in (yaml.load(dvcfile.read_text(encoding="utf-8"), Loader=loader) or {}).get("outs") or []:
            paths.add(str(entry["path"]))
    return paths


def fingerprint(root: Path) -> str:
    """sha256 over (path, size, mtime_ns, inode) of every file under the paths DVC looks at."""
    h = hashlib.sha256()
    for rel in sorted(_paths(root)):
        top = root / rel
        if not top.exists():
            h.update(f"{rel}\0missing\n".encode())
            continue
        files = [top] if not top.is_dir() else sorted(Path(d) / f for d, _, names in os.walk(top) for f in names)
        for f in files:
            st = f.stat()
            h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return h.hexdigest()


def dvc_up_to_date(root: Path, target: str | None) -> bool:
    """DVC's own answer (in this process, holding DVC's repository lock)."""
    from dvc.repo import Repo, lock_repo

    with Repo(str(root)) as repo, lock_repo(repo):
        return not repo.status(targets=[target] if target else None, with_deps=bool(target))


def up_to_date(root: Path, target: str | None) -> bool:
    """True only when every stage (up to ``target``) and every ``*.dvc`` output is current.

    Fails towards reproducing: any error says False, and the caller's normal path decides.
    """
    try:
        before = fingerprint(root)
        memo_file = root / MEMO
        if memo_file.exists():
            memo = json.loads(memo_file.read_text(encoding="utf-8"))
            if memo == {"fingerprint": before, "target": target}:
                return True
        if not dvc_up_to_date(root, target):
            return False
        # Remember only if nothing moved while DVC looked (the fingerprint is taken again).
        if fingerprint(root) == before:
            from lira.io import write_json

            write_json(memo_file, {"fingerprint": before, "target": target})
        return True
    except Exception:  # noqa: BLE001 - doubt means "reproduce"
        return False
