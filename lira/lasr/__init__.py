"""LaSR: the language-aware fusion head, its task heads, and the FIFO queues.

The names load on first use (PEP 562), so ``lira.config`` -> ``lira.lasr.config`` does not import
torch (see ``lira/arca/__init__.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lira.lasr.head import LaSRHead, choice_logits
    from lira.lasr.queues import CorrQueue, DocQueue, hard_negatives

_LAZY = {"LaSRHead": "lira.lasr.head", "choice_logits": "lira.lasr.head", "CorrQueue": "lira.lasr.queues",
         "DocQueue": "lira.lasr.queues", "hard_negatives": "lira.lasr.queues"}

__all__ = [
    "CorrQueue",
    "DocQueue",
    "LaSRHead",
    "choice_logits",
    "hard_negatives",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
