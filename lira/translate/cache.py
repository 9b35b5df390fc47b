"""The translation cache: an append-only store of raw backend outputs, one small shard per batch.

Key: ``sha256`` of a canonical JSON of (sha256(text), agent name, backend, model, prompt version,
the agent settings that change the output, per-request inputs such as the simulated backend's
text_id). Values: the raw output and the planted distortion (simulated), never the parsed
candidate - parsing runs again on every read, so a better parser needs no re-translation.

Each finished batch becomes its own parquet shard, written atomically (temp file + ``os.replace``),
so killing a run keeps every finished batch and the next run translates only what is missing.
The store lives under ``paths.cache`` (not under a DVC output, which DVC deletes before a rerun).
Failed requests are never stored: a rerun retries them.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from lira.io import write_parquet
from lira.translate.agents import sha256

COLUMNS = ["cache_key", "text_sha", "agent", "backend", "model", "prompt_version", "raw", "distortion"]
MAX_SHARDS = 256  # above this, load() merges the shards into one


def cache_key(text: str, *, agent: str, backend: str, model: str, prompt_version: str,
              settings: dict[str, Any]) -> str:
    blob = json.dumps(
        {"text": sha256(text), "agent": agent, "backend": backend, "model": model,
         "prompt_version": prompt_version, "settings": settings},
        sort_keys=True, ensure_ascii=False,
    )
    return sha256(blob)


class TranslationCache:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def shards(self) -> list[Path]:
        # Temp files of an interrupted write are ".<name>.<rand>.tmp": never matched here.
        return sorted(self.folder.glob("shard-*.parquet")) if self.folder.exists() else []

    def load(self, compact: bool = True) -> dict[str, dict[str, Any]]:
        """cache_key -> stored row (the last write wins). ``compact=False`` for a writer that runs
        beside others (one agent of several at once): merging needs the cache to itself."""
        shards = self.shards()
        if not shards:
            return {}
        df = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
        df = df.drop_duplicates("cache_key", keep="last")
        if compact and len(shards) > MAX_SHARDS:
            self.compact(df, shards)
        return {r["cache_key"]: r for r in df.to_dict("records")}

    def append(self, rows: list[dict[str, Any]]) -> Path | None:
        """Write one batch as a new shard (atomic); returns its path."""
        if not rows:
            return None
        df = pd.DataFrame(rows)[COLUMNS].astype("string")
        path = self.folder / f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        write_parquet(path, df)
        return path

    def compact(self, df: pd.DataFrame, shards: list[Path]) -> None:
        # The merged shard is written (atomically) before the old ones go, and it sorts first, so
        # a crash in between leaves duplicates that load() resolves - never a loss.
        merged = self.folder / "shard-00000000000000000000-merged.parquet"
        write_parquet(merged, df[COLUMNS].astype("string"))
        for p in shards:
            if p != merged:
                p.unlink(missing_ok=True)
