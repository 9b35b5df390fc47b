"""What the training and evaluation stages read: the prepared tables, candidates with scores, and
cached encoder features (computed only where missing). Each reads the ``shared`` section alone
(paths, languages, the encoders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lira.config import SharedParams
from lira.critic.checks import read_scores
from lira.encoders import features_for
from lira.train.inputs import CandidateTable, candidate_table, kind_of


def prepared(shared: SharedParams, root: Path, name: str) -> pd.DataFrame:
    path = root / shared.paths.prepared / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `lira stage build_dataset` (or `dvc repro`) first")
    df = pd.read_parquet(path)
    if "lang" in df.columns:
        df = df[df["lang"].isin(shared.languages)].reset_index(drop=True)
    return df


def candidates_with_scores(shared: SharedParams, root: Path, texts: pd.DataFrame) -> CandidateTable:
    cpath = root / shared.paths.translations / "candidates.parquet"
    spath = root / shared.paths.critic / "scores.parquet"
    for p, stage in ((cpath, "translate"), (spath, "critic_score")):
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing; run `lira stage {stage}` first")
    return candidate_table(texts, pd.read_parquet(cpath), read_scores(spath))


def text_features(
    shared: SharedParams, root: Path, texts: pd.DataFrame, column: str = "text", path: str = "lrl", progress: str | None = None,
    adapter: Path | None = None,
):
    """Features [N,S,H] slots and [N,H] means of ``texts[column]``, each with its role's prefix
    (through a saved LoRA ``adapter`` when given)."""
    n = len(texts)
    slots = mean = None
    for kind in ("query", "passage"):
        idx = np.flatnonzero(texts["role"].map(kind_of).to_numpy() == kind)
        if len(idx) == 0:
            continue
        f = features_for(shared, texts[column].iloc[idx].tolist(), path, kind, root, progress=progress, adapter=adapter)
        if slots is None:
            slots = np.zeros((n, *f.slots.shape[1:]), np.float32)
            mean = np.zeros((n, f.mean.shape[1]), np.float32)
        slots[idx], mean[idx] = f.slots, f.mean
    return slots, mean


def candidate_features(shared: SharedParams, root: Path, ct: CandidateTable, texts: pd.DataFrame, progress: str | None = None):
    """Slots [N,K,S,H] of every candidate on the English path (zeros where missing)."""
    n, k = ct.valid.shape
    kinds = texts["role"].map(kind_of).to_numpy()
    out = None
    for kind in ("query", "passage"):
        rows, cols = np.nonzero(ct.valid & (kinds[:, None] == kind))
        if len(rows) == 0:
            continue
        f = features_for(shared, [ct.text[r, c] for r, c in zip(rows, cols)], "en", kind, root, progress=progress)
        if out is None:
            out = np.zeros((n, k, *f.slots.shape[1:]), np.float32)
        out[rows, cols] = f.slots
    if out is None:
        raise ValueError("no valid translation candidates at all: check the translate and critic_score outputs")
    return out


def lang_index(shared: SharedParams, texts: pd.DataFrame) -> np.ndarray:
    order = {lang: i for i, lang in enumerate(shared.languages)}
    return texts["lang"].map(order).to_numpy()
