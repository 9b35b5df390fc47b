"""One table schema per task, whatever the source format.

Every low-resource text lives once in ``texts`` (with its English reference when the source has
one); task tables point at texts by ``text_id``. Stages after build_dataset read these tables only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# column -> pandas dtype
TEXTS = {
    "text_id": "string",  # unique; source ids kept readable, e.g. "th-it-001" or "th-mc-004:c2"
    "lang": "string",
    "text": "string",
    "en_ref": "string",  # English reference translation; <NA> when the source has none
    "role": "string",  # item | query | sts | mc_question | mc_choice | parallel
    "source": "string",
    "split": "string",  # train | dev | test
}
ITEMS = {"item_id": "string", "lang": "string", "text_id": "string", "category": "string", "split": "string"}
QUERIES = {"query_id": "string", "lang": "string", "text_id": "string", "split": "string"}
QRELS = {"query_id": "string", "item_id": "string", "relevance": "int64"}
STS = {
    "pair_id": "string",
    "lang": "string",
    "text_id_a": "string",
    "text_id_b": "string",
    "score": "float64",
    "split": "string",
}
MC = {
    "mc_id": "string",
    "lang": "string",
    "question_id": "string",
    "choice_ids": "object",  # list[str] of text ids, 3..5 (or more) choices
    "answer": "int64",
    "split": "string",
}
PARALLEL = {"pair_id": "string", "lang": "string", "text_id": "string", "split": "string"}
REJECTS = {"source": "string", "file": "string", "where": "string", "field": "string", "reason": "string", "raw": "string"}

TABLES: dict[str, dict[str, str]] = {
    "texts": TEXTS,
    "items": ITEMS,
    "queries": QUERIES,
    "qrels": QRELS,
    "sts": STS,
    "mc": MC,
    "parallel": PARALLEL,
    "rejects": REJECTS,
}


def empty(name: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TABLES[name].items()})


def frame(name: str, rows: list[dict]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly the schema's columns and dtypes."""
    schema = TABLES[name]
    if not rows:
        return empty(name)
    df = pd.DataFrame(rows)
    missing = set(schema) - set(df.columns)
    if missing:
        raise ValueError(f"table {name!r}: rows lack columns {sorted(missing)}")
    df = df[list(schema)]
    return df.astype({c: t for c, t in schema.items() if t != "object"})


@dataclass
class Dataset:
    """All task tables of one build (in memory)."""

    texts: list[dict] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)
    queries: list[dict] = field(default_factory=list)
    qrels: list[dict] = field(default_factory=list)
    sts: list[dict] = field(default_factory=list)
    mc: list[dict] = field(default_factory=list)
    parallel: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)

    def extend(self, other: Dataset) -> None:
        for name in TABLES:
            getattr(self, name).extend(getattr(other, name))

    def frames(self) -> dict[str, pd.DataFrame]:
        return {name: frame(name, getattr(self, name)) for name in TABLES}
