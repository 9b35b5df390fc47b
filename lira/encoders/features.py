"""Frozen-encoder features, computed once and reused by every stage.

On a CPU, encoding dominates the cost. For a frozen encoder the features of a text are a function
of (encoder, prefix, text) alone, so they are computed once per (encoder key, S_feat, prefix+text
hash) and kept in an append-only store of shards: each shard is written atomically, so a crash
mid-run loses at most the batch in flight and the next run computes only what is missing.

Features per text: ``slots`` [S_feat, H] (temporal pooling of the token states) and ``mean`` [H]
(masked mean pooling, L2-normalised: the encoder's sentence embedding).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lira.arca.pooling import TemporalPooling
from lira.io import atomic_path
from lira.runtime import trim_heap


@dataclass
class Features:
    slots: np.ndarray  # [N, S, H] float32
    mean: np.ndarray  # [N, H] float32, L2-normalised

    def __len__(self) -> int:
        return len(self.mean)


def text_key(prefix: str, text: str) -> str:
    return hashlib.sha256(f"{prefix}\x00{text}".encode()).hexdigest()


@torch.no_grad()
def encode_features(encoder, texts: list[str], kind, s_feat: int, batch_size: int | None = None, progress: str | None = None) -> Features:  # noqa: ANN001
    """Encode ``texts`` in length-sorted batches (padding waste is the CPU's main loss), no grad."""
    from tqdm.auto import tqdm

    bs = batch_size or encoder.settings.batch_size
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    pool = TemporalPooling(s_feat)
    h = encoder.hidden_size
    slots = np.zeros((len(texts), s_feat, h), dtype=np.float32)
    mean = np.zeros((len(texts), h), dtype=np.float32)
    was_training = encoder.model.training
    encoder.model.eval()
    batches = [order[i : i + bs] for i in range(0, len(order), bs)]
    for idx in tqdm(batches, desc=progress or "encode", unit="batch", disable=progress is None or not batches):
        hidden, mask = encoder.token_states([texts[i] for i in idx], kind)
        hidden = hidden.float()
        slots[idx] = pool(hidden, mask).cpu().numpy()
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        mean[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        trim_heap()  # each length leaves freed activations the allocator would keep (lira.runtime.trim_heap)
    encoder.model.train(was_training)
    return Features(slots=slots, mean=mean)


class FeatureCache:
    """Append-only shard store: ``<root>/<encoder key>/s<S>/shard-*.npz`` holding keys, slots, mean.

    Each shard also holds ``sha256``, a checksum of the other three arrays (their shapes, dtypes and
    bytes), verified when the shard is read. A shard that cannot be read, fails its checksum or does
    not have this cache's shapes is moved aside (a warning names it) and its features are computed
    again as if they had never been cached.
    """

    def __init__(self, root: str | Path, encoder_key: str, s_feat: int, shard_size: int = 512):
        self.dir = Path(root) / encoder_key / f"s{s_feat}"
        self.s_feat = s_feat
        self.shard_size = shard_size
        self._index: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def _load(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.dir.glob("shard-*.npz")):
                try:
                    keys, slots, mean = self._read(shard)
                except Exception as e:  # noqa: BLE001 - any reason means the same: not trusted, recomputed
                    from lira.integrity import move_aside

                    move_aside(shard, f"bad feature shard ({type(e).__name__}: {e})")
                    continue
                for k, s, m in zip(keys, slots, mean):
                    self._index[str(k)] = (s, m)
        return self._index

    def _read(self, shard: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with np.load(shard, allow_pickle=False) as z:
            keys, slots, mean, sha = z["keys"], z["slots"], z["mean"], z["sha256"]
        n = len(keys)
        if slots.ndim != 3 or slots.shape[:2] != (n, self.s_feat) or mean.shape != (n, slots.shape[2]):
            raise ValueError(f"shapes keys {keys.shape}, slots {slots.shape}, mean {mean.shape} do not fit S_feat={self.s_feat}")
        if str(sha) != shard_checksum(keys, slots, mean):
            raise ValueError("checksum mismatch (the shard was changed after it was written)")
        return keys, slots, mean

    def reload(self) -> None:
        """Forget the in-memory index: the next read sees every shard on disk (other ranks' too)."""
        self._index = None

    def missing(self, keys: Sequence[str]) -> list[str]:
        index = self._load()
        return [k for k in dict.fromkeys(keys) if k not in index]

    def add(self, keys: Sequence[str], feats: Features) -> None:
        index = self._load()
        self.dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
        with atomic_path(self.dir / f"shard-{len(list(self.dir.glob('shard-*.npz'))):05d}-{name}.npz") as tmp:
            k, sl, m = np.array(keys), feats.slots.astype(np.float16), feats.mean.astype(np.float32)
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=k, slots=sl, mean=m, sha256=np.array(shard_checksum(k, sl, m)))
        for k, s, m in zip(keys, feats.slots.astype(np.float16), feats.mean):
            index[k] = (s, m)

    def get(self, keys: Sequence[str]) -> Features:
        index = self._load()
        slots = np.stack([index[k][0] for k in keys]).astype(np.float32) if keys else np.zeros((0, self.s_feat, 0), np.float32)
        mean = np.stack([index[k][1] for k in keys]).astype(np.float32) if keys else np.zeros((0, 0), np.float32)
        return Features(slots=slots, mean=mean)


def shard_checksum(keys: np.ndarray, slots: np.ndarray, mean: np.ndarray) -> str:
    """sha256 over the arrays of one shard: their dtypes, shapes and bytes, in a fixed order."""
    h = hashlib.sha256()
    for a in (keys, slots, mean):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cached_features(
    encoder, cache: FeatureCache, texts: Sequence[str], kind, progress: str | None = None  # noqa: ANN001
) -> Features:
    """Features of ``texts`` (any order, duplicates fine): cached ones are read, the rest computed."""
    from lira import distributed

    prefix = encoder.settings.prefix(kind)
    keys = [text_key(prefix, t) for t in texts]
    sharded = distributed.world_size() > 1
    if sharded:  # every rank reads the same cache state, so all agree on what is missing
        distributed.barrier()
        cache.reload()
    todo = cache.missing(keys)
    # Under torchrun each rank encodes its chunk of the missing texts into shards of its own (each
    # written atomically); after the barrier every rank reads all of them.
    mine = distributed.local_items(todo) if sharded else todo
    if mine:
        by_key = {k: t for k, t in zip(keys, texts)}
        step = cache.shard_size
        from tqdm.auto import tqdm

        quiet = progress is None or os.environ.get("LIRA_QUIET") == "1" or not distributed.is_main()
        bar = tqdm(total=len(mine), desc=progress or "features", unit="text", disable=quiet)
        todo = mine
        for i in range(0, len(todo), step):
            chunk = todo[i : i + step]
            feats = encode_features(encoder, [by_key[k] for k in chunk], kind, cache.s_feat)
            cache.add(chunk, feats)
            bar.update(len(chunk))
        bar.close()
    if sharded:
        distributed.barrier()
        cache.reload()
    return cache.get(keys)
