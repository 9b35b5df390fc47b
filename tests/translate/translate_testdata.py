"""Test data and params for the translate tests (a uniquely named module, not conftest)."""

import json
from pathlib import Path

import pandas as pd

from lira.config import Params, parse_params
from lira.data.schemas import frame

DATA = Path(__file__).parent / "data" / "texts.json"
LANGS = ["vi", "id", "th"]


def sample_texts() -> pd.DataFrame:
    """24 parallel texts (vi, id, th) with English references, plus one vi text without."""
    d = json.loads(DATA.read_text(encoding="utf-8"))
    rows = [
        {"text_id": f"{lang}-{i:03d}", "lang": lang, "text": src, "en_ref": ref, "role": "parallel",
         "source": "test", "split": "train"}
        for lang in LANGS for i, (src, ref) in enumerate(zip(d[lang], d["en"]))
    ]
    nr = d["no_reference"]
    rows.append({"text_id": "vi-noref", "lang": nr["lang"], "text": nr["text"], "en_ref": None,
                 "role": "query", "source": "test", "split": "test"})
    return frame("texts", rows)


def write_texts(root: Path, texts: pd.DataFrame) -> None:
    out = root / "data" / "prepared"
    out.mkdir(parents=True, exist_ok=True)
    texts.to_parquet(out / "texts.parquet", index=False)


def make_params(agents: list[dict], **sections) -> Params:
    data = {"shared": {"languages": LANGS}, "translate": {"agents": agents}}
    data.update(sections)
    return parse_params(data, "<test>")
