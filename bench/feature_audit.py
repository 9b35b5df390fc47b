"""Which texts the pipeline encoded more than once: an audit of the feature cache after a run.

The cache (``<paths.cache>/features/<encoder key>/s<S>/shard-*.npz``) keys each feature by
sha256(prefix NUL text) under the encoder's key (backbone hash, adapter, precision, ...), so one
encoder never encodes the same (prefix, text) twice. What can still repeat is the same *text* under
another E5 prefix (``query: `` vs ``passage: ``) or another encoder (the LoRA-adapted LRL encoder
vs the frozen one). This script rebuilds every text the pipeline's tables hold (prepared texts,
their English references, the translation candidates), looks each one up under each prefix in
each encoder's shards, and counts texts present under more than one (prefix, encoder).

Usage: ``python bench/feature_audit.py [--root .]`` after ``lira run`` -> bench/results/feature_audit.json
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

PREFIXES = {"query": "query: ", "passage": "passage: "}


def shard_keys(folder: Path) -> tuple[set[str], int]:
    keys: list[str] = []
    shards = sorted(folder.glob("shard-*.npz"))
    for shard in shards:
        with np.load(shard, allow_pickle=False) as z:
            keys += [str(k) for k in z["keys"]]
    return set(keys), len(keys) - len(set(keys))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".")
    args = ap.parse_args(argv)
    import pandas as pd

    from lira.config import load_params
    from lira.encoders.features import text_key

    root = Path(args.root)
    params = load_params(root / "params.yaml")
    texts = pd.read_parquet(root / params.shared.paths.prepared / "texts.parquet")
    cands = pd.read_parquet(root / params.shared.paths.translations / "candidates.parquet")
    role = dict(zip(texts["text_id"], texts["role"]))
    pool: dict[str, str] = {}  # text -> where it comes from (first seen)
    for t, r in zip(texts["text"], texts["role"]):
        pool.setdefault(t, f"source:{r}")
    for t, r in zip(texts["en_ref"].dropna(), texts.loc[texts["en_ref"].notna(), "role"]):
        pool.setdefault(t, f"en_ref:{r}")
    for t, tid in zip(cands["candidate"].dropna(), cands.loc[cands["candidate"].notna(), "text_id"]):
        pool.setdefault(t, f"candidate:{role.get(tid, '?')}")

    feats = root / params.shared.paths.cache / "features"
    encoders = {}
    within_dupes = 0
    for folder in sorted(p for p in feats.glob("*/s*") if p.is_dir()):
        keys, dup = shard_keys(folder)
        within_dupes += dup
        encoders[f"{folder.parent.name}/{folder.name}"] = keys
    where: dict[str, list[str]] = {}
    for t in pool:
        hits = [f"{enc}|{kind}" for enc, keys in encoders.items() for kind, pre in PREFIXES.items()
                if text_key(pre, t) in keys]
        if hits:
            where[t] = hits
    total_features = sum(len(k) for k in encoders.values())
    accounted = sum(len(h) for h in where.values())
    multi = {t: h for t, h in where.items() if len(h) > 1}
    by_origin = Counter(pool[t] for t in multi)
    same_encoder_two_prefixes = sum(
        1 for h in multi.values() if len({x.split("|")[0] for x in h}) < len(h))
    two_encoders = sum(1 for h in multi.values() if len({x.split("|")[0] for x in h}) > 1)
    out = {
        "encoders": {k: len(v) for k, v in encoders.items()},
        "features_in_cache": total_features,
        "features_matched_to_pipeline_texts": accounted,
        "duplicate_keys_within_an_encoder": within_dupes,
        "distinct_texts_encoded": len(where),
        "texts_encoded_more_than_once": len(multi),
        "extra_encodings": accounted - len(where),
        "extra_share_of_all_encodings": round((accounted - len(where)) / max(accounted, 1), 4),
        "same_encoder_two_prefixes": same_encoder_two_prefixes,
        "two_encoders": two_encoders,
        "repeated_by_origin": dict(by_origin.most_common()),
    }
    print(out)
    C.write_result("feature_audit", out)
    return out


if __name__ == "__main__":
    main()
