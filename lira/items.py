"""A catalogue of items to search, read from the tables users have: ``id, text, lang`` rows.

Accepted files:

* ``.jsonl`` - one object per line (the sample's ``<lang>/items.jsonl``; extra fields ignored);
* ``.csv`` - a header row naming the columns (read as strings: ids keep their leading zeros);
* ``.parquet`` - a table with the columns, or the pipeline's own prepared ``items.parquet``
  (``item_id, lang, text_id, ...``), whose text lives in the ``texts.parquet`` beside it: the two
  are joined on ``text_id``.

``item_id`` is accepted for ``id``. A table without a ``lang`` column takes the caller's ``lang``
(e.g. ``--lang``) for every row. Errors name the file and, where there is one, the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".parquet", ".jsonl", ".csv")
COLUMNS = ("id", "text", "lang")


def _read_table(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        raw = path.read_text(encoding="utf-8")
    except Exception as e:  # noqa: BLE001 - pyarrow/pandas/OS errors of many types: all mean "unreadable"
        raise ValueError(f"{path}: cannot read items ({type(e).__name__}: {e})") from None
    rows = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: line {n} is not a JSON object")  # noqa: TRY004 - a data error, like the rest
        rows.append(rec)
    return pd.DataFrame(rows)


def _join_prepared_texts(df, path: Path):
    """The pipeline's prepared items name their text by ``text_id``; the text is in ``texts.parquet``."""
    import pandas as pd

    texts_path = path.with_name("texts.parquet")
    if not texts_path.exists():
        raise ValueError(
            f"{path}: no text column; its rows name a text_id, but {texts_path.name} (where the pipeline keeps "
            "the texts) is not beside it"
        )
    texts = pd.read_parquet(texts_path, columns=["text_id", "text"])
    if texts["text_id"].duplicated().any():
        raise ValueError(f"{texts_path}: text_id {texts['text_id'][texts['text_id'].duplicated()].iloc[0]!r} is not unique")
    out = df.merge(texts, on="text_id", how="left", validate="many_to_one")
    missing = out["text"].isna()
    if missing.any():
        raise ValueError(f"{path}: text_id {out.loc[missing, 'text_id'].iloc[0]!r} (row {int(missing.idxmax())}) "
                         f"is not in {texts_path.name}")
    return out


def read_items(path: str | Path, lang: str | None = None) -> pd.DataFrame:
    """Items as a DataFrame ``id, text, lang`` (strings, rows with no text dropped), in file order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such items file")
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: items must be .parquet, .jsonl or .csv, got {path.suffix or 'no suffix'!r}")
    df = _read_table(path)
    if "id" not in df.columns and "item_id" in df.columns:
        df = df.rename(columns={"item_id": "id"})
    if "text" not in df.columns and "text_id" in df.columns and path.suffix.lower() == ".parquet":
        df = _join_prepared_texts(df, path)
    if "lang" not in df.columns and lang:
        df = df.assign(lang=lang)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: items need columns id, text, lang; missing {missing} (found {list(df.columns)})"
                         + (" - or pass the items' language (--lang)" if missing == ["lang"] else ""))
    df = df[list(COLUMNS)].dropna(subset=["text"])
    df = df.astype({"id": str, "text": str, "lang": str})
    df = df[df["text"].str.strip() != ""].reset_index(drop=True)
    dup = df["id"].duplicated()
    if dup.any():
        raise ValueError(f"{path}: item id {df.loc[dup, 'id'].iloc[0]!r} appears more than once")
    return df
