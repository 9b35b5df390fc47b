"""The embedding critic: ``sim_k = cos(E(source), E(candidate_k))``.

The source is embedded on the multilingual ("lrl") path and the candidate on the English ("en")
path, both with the symmetric-similarity convention of E5 models (the "query: " prefix on both
sides). Encoders, prefixes and the feature cache belong to :mod:`lira.encoders`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lira.config import SharedParams


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two [N, d] arrays: ``sum(a*b) / (|a| |b|)``, clipped to [-1, 1] (0 for a zero row)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    cos = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.clip(cos, -1.0, 1.0)  # float error can push a cosine of equal vectors past 1


def embedding_similarity(shared: SharedParams, sources: list[str], candidates: list[str], root: Path | None = None) -> np.ndarray:
    """[N] cosines of each source with its candidate, through ``lira.encoders.embed_texts``."""
    if not sources:
        return np.zeros(0)
    from lira import encoders

    src = encoders.embed_texts(shared, sources, "lrl", kind="query", root=root)
    cand = encoders.embed_texts(shared, candidates, "en", kind="query", root=root)
    return cosine_rows(src, cand)
