"""The headline numbers of an evaluation: small files that read well in ``dvc metrics show/diff``.

``dvc metrics show`` prints one row per metrics file and one column per key of ANY file, so one
nested ``evaluate.json`` (hundreds of leaves) made every row tens of thousands of characters
wide. The headline is a folder of flat files with the same few keys, one file per row::

    headline/system/<system>.json          one per evaluated system (LiRA, baselines, ablations)
    headline/lira_by_language/<lang>.json  LiRA per language

and the columns are the tasks (:data:`TASK_COLUMNS`), plus, on a system's row, LiRA minus that
system on nDCG@10 with its bootstrap CI (``lira_minus`` in ``evaluate.json``) and the
cross-lingual nDCG@10 where the system was run cross-lingually. Systems and languages are read
from the summary, never listed here, so a new system or language is a new row; a task a system
lacks is simply absent from its file (``-`` in the table). The full ``evaluate.json`` stays the
record of everything else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

# (column, where it lives in a system's summary, where in its per-language entry)
TASK_COLUMNS: tuple[tuple[str, tuple[str, str], str], ...] = (
    ("ndcg@10", ("retrieval", "ndcg@10"), "ndcg@10"),
    ("recall@10", ("retrieval", "recall@10"), "recall@10"),
    ("sts_pearson", ("sts", "pearson"), "sts_pearson"),
    ("mc_accuracy", ("mc", "accuracy"), "mc_accuracy"),
)
GAIN_METRIC = "retrieval.ndcg@10"
SYSTEM_DIR = "system"
LANGUAGE_DIR = "lira_by_language"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def file_stem(name: str) -> str:
    """A file name for a system such as ``ablation:no_queue`` (``:`` is not portable in names)."""
    stem = _UNSAFE.sub("_", name).strip("._")
    if not stem:
        raise ValueError(f"system name {name!r} gives an empty file name")
    return stem


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None


def _row(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in ((k, _number(x)) for k, x in values.items()) if v is not None}


def headline(summary: Mapping[str, Any], reference: str = "lira") -> dict[str, dict[str, float]]:
    """``{relative path: flat row}`` from an evaluate summary (``evaluate.json``).

    ``reference`` is the system whose per-language rows are written and whose gains are shown.
    """
    systems = summary.get("systems") or {}
    if not isinstance(systems, Mapping) or not systems:
        raise ValueError("evaluate summary has no `systems`: nothing to headline")
    gains = summary.get("lira_minus") or {}
    xl = (summary.get("crosslingual") or {}).get("systems") or {}
    out: dict[str, dict[str, float]] = {}
    stems: dict[str, str] = {}
    for name, s in systems.items():
        stem = file_stem(name)
        if stem in stems:
            raise ValueError(f"systems {stems[stem]!r} and {name!r} map to the same file name {stem!r}")
        stems[stem] = name
        values: dict[str, Any] = {col: (s.get(task) or {}).get(key) for col, (task, key), _ in TASK_COLUMNS}
        if isinstance(xl.get(name), Mapping):
            values["xl_ndcg@10"] = xl[name].get("ndcg@10")
        gain = (gains.get(name) or {}).get(GAIN_METRIC)
        if isinstance(gain, Mapping):
            values.update({f"{reference}_minus.ndcg@10": gain.get("diff"), f"{reference}_minus.ci_low": gain.get("low"),
                           f"{reference}_minus.ci_high": gain.get("high")})
        out[f"{SYSTEM_DIR}/{stem}.json"] = _row(values)
    ref = systems.get(reference)
    if isinstance(ref, Mapping):
        for lang, pl in (ref.get("per_language") or {}).items():
            out[f"{LANGUAGE_DIR}/{file_stem(lang)}.json"] = _row({col: pl.get(key) for col, _, key in TASK_COLUMNS})
    return out


__all__ = ["GAIN_METRIC", "LANGUAGE_DIR", "SYSTEM_DIR", "TASK_COLUMNS", "file_stem", "headline"]
