"""Test data for the critic tests (a uniquely named module, not conftest).

The texts are the translate tests' hand-written sentences; candidates come from the simulated
translator through the real translate stage.
"""

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from lira.config import Params, parse_params
from lira.data.schemas import frame

DATA = Path(__file__).parents[1] / "translate" / "data" / "texts.json"
LANGS = ["vi", "id", "th"]


def sample_texts(with_noref: bool = True) -> pd.DataFrame:
    d = json.loads(DATA.read_text(encoding="utf-8"))
    rows = [
        {"text_id": f"{lang}-{i:03d}", "lang": lang, "text": src, "en_ref": ref, "role": "parallel",
         "source": "test", "split": "train"}
        for lang in LANGS for i, (src, ref) in enumerate(zip(d[lang], d["en"]))
    ]
    if with_noref:
        nr = d["no_reference"]
        rows.append({"text_id": "vi-noref", "lang": nr["lang"], "text": nr["text"], "en_ref": None,
                     "role": "query", "source": "test", "split": "test"})
    return frame("texts", rows)


def write_texts(root: Path, texts: pd.DataFrame) -> None:
    out = root / "data" / "prepared"
    out.mkdir(parents=True, exist_ok=True)
    texts.to_parquet(out / "texts.parquet", index=False)


def make_params(agents: list[dict], critic: dict | None = None) -> Params:
    return parse_params({"shared": {"languages": LANGS}, "translate": {"agents": agents},
                         "critic_score": critic or {}}, "<test>")


def fake_embed_texts(shared, texts, path, kind=None, root=None) -> np.ndarray:
    """Hashed bag of character trigrams, L2-normalised: similar strings get similar vectors."""
    out = np.zeros((len(texts), 64))
    for i, t in enumerate(texts):
        t = f"  {t.lower()}  "
        for j in range(len(t) - 2):
            out[i, zlib.crc32(t[j : j + 3].encode()) % 64] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
