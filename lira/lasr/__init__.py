"""LaSR: the language-aware fusion head, its task heads, and the FIFO queues.

The names load on first use (PEP 562), so ``lira.config`` -> ``lira.lasr.config`` does not import
torch (see ``lira/arca/__init__.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lira.lazy import lazy_names

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


__getattr__ = lazy_names(__name__, _LAZY)
