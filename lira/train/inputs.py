"""From the stage tables to Arca's tensors: candidates per text, Actor features, rewards, features.

Pure given its inputs (DataFrames and feature arrays in, tensors out); the stages do the reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lira.arca.config import ArcaConfig
from lira.losses import critic_reward

FLAG_COLUMNS = ["flag_empty", "flag_preamble", "flag_echo", "flag_wrong_language", "flag_length"]


def kind_of(role: str) -> str:
    """E5 prefixes: catalogue items are passages, everything else is read as a query."""
    return "passage" if role == "item" else "query"


@dataclass
class CandidateTable:
    """The K candidates of each text, aligned: arrays are [N, K]."""

    text_ids: list[str]
    agents: list[str]
    text: np.ndarray  # object [N,K], None where missing
    valid: np.ndarray  # bool
    quarantined: np.ndarray  # bool
    planted: np.ndarray  # object [N,K]: the simulated distortion ("clean", ...) or None
    s: np.ndarray
    e: np.ndarray
    p: np.ndarray
    sim: np.ndarray
    length_ratio: np.ndarray
    flags: np.ndarray  # [N,K,len(FLAG_COLUMNS)] float


def candidate_table(texts: pd.DataFrame, candidates: pd.DataFrame, scores: pd.DataFrame) -> CandidateTable:
    agents = sorted(candidates["agent"].unique().tolist())
    ids = texts["text_id"].tolist()
    row = {t: i for i, t in enumerate(ids)}
    col = {a: k for k, a in enumerate(agents)}
    n, k = len(ids), len(agents)
    merged = candidates.merge(scores.drop(columns=[c for c in ("lang",) if c in scores.columns]), on=["text_id", "agent"], how="left")
    merged = merged[merged["text_id"].isin(row)]
    shape = (n, k)
    out = CandidateTable(
        text_ids=ids,
        agents=agents,
        text=np.full(shape, None, dtype=object),
        valid=np.zeros(shape, bool),
        quarantined=np.zeros(shape, bool),
        planted=np.full(shape, None, dtype=object),
        s=np.full(shape, np.nan),
        e=np.full(shape, np.nan),
        p=np.full(shape, np.nan),
        sim=np.full(shape, np.nan),
        length_ratio=np.full(shape, np.nan),
        flags=np.zeros((*shape, len(FLAG_COLUMNS))),
    )
    r = merged["text_id"].map(row).to_numpy()
    c = merged["agent"].map(col).to_numpy()
    cand = merged["candidate"]
    present = cand.notna().to_numpy() & (cand.fillna("").str.strip() != "").to_numpy()
    out.text[r, c] = np.where(present, cand.fillna("").to_numpy(dtype=object), None)
    out.valid[r, c] = present
    out.quarantined[r, c] = merged["quarantined"].fillna(True).to_numpy(dtype=bool)
    if "distortion" in merged:
        out.planted[r, c] = merged["distortion"].astype(object).where(merged["distortion"].notna(), None).to_numpy()
    for name in ("s", "e", "p", "sim", "length_ratio"):
        getattr(out, name)[r, c] = pd.to_numeric(merged[name], errors="coerce").to_numpy(dtype=float)
    for j, f in enumerate(FLAG_COLUMNS):
        if f in merged:
            out.flags[r, c, j] = merged[f].fillna(False).to_numpy(dtype=float)
    return out


def actor_inputs(ct: CandidateTable, cfg: ArcaConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features [N,K,F], valid mask [N,K], reward [N,K]) with the critic switches of ``cfg`` applied.

    A missing score enters the features as 0 plus a "missing" indicator, and the reward as NaN
    handled by :func:`critic_reward`, never as a made-up value.
    """
    use_llm, use_emb = cfg.use_llm_critic, cfg.use_embedding_critic
    s, e, p = (x if use_llm else np.full_like(x, np.nan) for x in (ct.s, ct.e, ct.p))
    sim = ct.sim if use_emb else np.full_like(ct.sim, np.nan)
    cols = [np.nan_to_num(s / 10), np.nan_to_num(e / 10), np.nan_to_num(p / 10), np.nan_to_num(sim)]
    cols += [np.isnan(s).astype(float), np.isnan(sim).astype(float)]
    if cfg.actor_extra_features:
        cols.append(np.clip(np.nan_to_num(ct.length_ratio, nan=1.0), 0, 3) / 3)
        cols += [ct.flags[..., j] for j in range(ct.flags.shape[-1])]
    feats = torch.tensor(np.stack(cols, -1), dtype=torch.float32)
    w = cfg.reward
    t = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    reward = critic_reward(t(s), t(e), t(p), t(sim), w.alpha, w.beta, w.gamma, w.delta)
    return feats, torch.tensor(ct.valid), reward


def selection(
    ct: CandidateTable, probs: np.ndarray, respect_quarantine: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy pick per text among valid, non-quarantined candidates (all valid ones if none is clean).

    Returns (agent index [N] (-1 where nothing is valid), fallback flag [N]).
    """
    ok = ct.valid & ~ct.quarantined if respect_quarantine else ct.valid.copy()
    fallback = ~ok.any(1) & ct.valid.any(1)
    ok[fallback] = ct.valid[fallback]
    masked = np.where(ok, probs, -np.inf)
    choice = masked.argmax(1)
    choice[~ok.any(1)] = -1
    return choice, fallback
