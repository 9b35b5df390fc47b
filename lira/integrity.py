"""Content hashes and the handling of files that fail their check.

Everything lira reads back from its own caches, checkpoints and model folders is checked against
a sha256 before use. Hashing a backbone (hundreds of MB) costs about a second, so a file's hash
is computed once per process and kept under (path, size, mtime_ns): a file rewritten in place gets
a new mtime (or size) and is hashed again.

A cache entry (feature shard, checkpoint) that fails its check is moved aside - renamed to
``<name>.corrupt-<time>`` next to where it was, for a person to inspect - and reported with its
path as a :class:`CorruptFileWarning`; the caller then recomputes it. A model file that fails its
check is never "recomputed": the load is refused (:class:`IntegrityError`), naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import warnings
from collections.abc import Iterable
from pathlib import Path


class CorruptFileWarning(UserWarning):
    """A cache file failed its check; it was moved aside and will be recomputed."""


class IntegrityError(ValueError):
    """A file does not match the hash it was recorded with (the message names the file)."""


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime key the cache
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, computed once per process per (path, size, mtime)."""
    p = Path(path)
    st = p.stat()
    return _sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_files(folder: str | Path, skip: Iterable[str] = ()) -> list[str]:
    """The regular files under ``folder`` as sorted POSIX relative paths (hidden entries and ``skip`` left out)."""
    folder = Path(folder)
    skip = set(skip)
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or rel.as_posix() in skip:
            continue
        if p.is_file():
            out.append(rel.as_posix())
    return sorted(out)


def tree_sha256(folder: str | Path, skip: Iterable[str] = ()) -> str:
    """One hash over every file's relative path and content hash: equal folders hash equal."""
    folder = Path(folder)
    h = hashlib.sha256()
    for rel in tree_files(folder, skip):
        h.update(f"{rel}\x00{file_sha256(folder / rel)}\n".encode())
    return h.hexdigest()


def move_aside(path: str | Path, reason: str) -> Path | None:
    """Rename a file that failed its check to ``<name>.corrupt-<time>`` and warn with its path.

    Returns the new path (None if the file vanished meanwhile, e.g. another process moved it).
    """
    path = Path(path)
    dest = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        return None
    warnings.warn(f"{path}: {reason}; moved aside to {dest.name} and recomputed", CorruptFileWarning, stacklevel=2)
    return dest
