"""Deterministic, seeded train/dev/test splits.

Within each (task, language) group the units are ordered by a seeded hash of their id and cut at
the params fractions, so a split depends only on (seed, ids, fractions): never on row order, the
machine, or Python's per-process hash salt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SPLITS = ("train", "dev", "test")


def _key(seed: int, unit_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{unit_id}".encode()).hexdigest()


def assign_splits(unit_ids: Iterable[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Map each id to train/dev/test. With n >= 3 units every split gets at least one."""
    ids = sorted(set(unit_ids), key=lambda u: _key(seed, u))
    n = len(ids)
    n_train = round(fractions[0] * n)
    n_dev = round(fractions[1] * n)
    if n >= 3:
        n_train = min(max(n_train, 1), n - 2)
        n_dev = min(max(n_dev, 1), n - n_train - 1)
    out = {}
    for i, u in enumerate(ids):
        out[u] = "train" if i < n_train else "dev" if i < n_train + n_dev else "test"
    return out
