"""Atomic file writes: a crash never leaves a half-written output that looks complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-and-restore (briefly process-wide)
    os.umask(mask)
    return mask


def _as_created(path: Path, mode: int) -> None:
    # mkstemp/mkdtemp create 0600/0700 on purpose (no one reads a half-written file); the published
    # output gets the mode an ordinary open()/mkdir() would have given it under this umask.
    os.chmod(path, mode & ~_umask())


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (atomic on POSIX).

    The file ends with the umask's usual mode (0644 under umask 022), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _as_created(tmp_path, 0o666)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead(pid: str) -> bool:
    return pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))


def _sweep_stale(path: Path) -> None:
    """Clean up after a publisher of ``path`` that was killed (its pid is gone).

    Its unfinished new folder is removed. Killed between the two renames, it left ``path`` absent
    and the previous folder aside: that folder is put back, so ``path`` is again the last complete
    output.
    """
    for p in path.parent.glob(f".{path.name}.pub-*.tmp"):
        if _dead(p.name[len(f".{path.name}.pub-"):].split("-", 1)[0]):
            shutil.rmtree(p, ignore_errors=True)
    for p in path.parent.glob(f".{path.name}.old-*"):
        if _dead(p.name[len(f".{path.name}.old-"):]):
            if not (path.exists() or path.is_symlink()):
                os.replace(p, path)
            else:
                shutil.rmtree(p, ignore_errors=True)


@contextmanager
def publish_dir(path: str | Path) -> Iterator[Path]:
    """A stage's output folder, published whole or not at all.

    Yields a new empty folder beside ``path`` (same file system, so the swap is a rename); the
    stage writes every file of its output folder there. When the block ends normally the folder
    replaces ``path``: the old folder is renamed aside, the new one renamed in, the old one
    removed (if the second rename fails the old folder is put back). When the block raises, the
    new folder is deleted and ``path`` is left exactly as it was - a failure part-way never leaves
    new files beside old ones. Readers see the old folder or the new one, never a mix (between the
    two renames ``path`` is briefly absent). Folders left by a killed run are swept next time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.pub-{os.getpid()}-", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _as_created(tmp, 0o777)
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        had_old = path.exists() or path.is_symlink()
        if had_old:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if had_old:
                os.replace(old, path)
            raise
        if had_old:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# The older name (LoRA adapter folders use it).
atomic_dir = publish_dir


class LockHeld(RuntimeError):
    """Another process holds the lock file."""


@contextmanager
def hold_lock(path: str | Path, what: str = "another lira run") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block, or raise ``LockHeld`` at once.

    ``flock`` is released by the kernel when the holder dies, so a killed run never leaves a stale
    lock behind (unlike a lock *file* whose existence is the lock).
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"{path}: held by {what}; wait for it to finish (nothing was started)") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(o: Any) -> Any:
    """NaN/inf are not JSON: they become null, so a missing value stays visibly missing."""
    if isinstance(o, float | np.floating):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    return o


def write_json(path: str | Path, data: Any) -> None:
    text = json.dumps(_finite(data), indent=2, ensure_ascii=False, default=_default, allow_nan=False)
    write_text(path, text + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(path: str | Path, df: "Any") -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
