"""LaSR: the language-aware fusion head, its task heads, and the FIFO queues."""

from lira.lasr.head import LaSRHead, choice_logits
from lira.lasr.queues import CorrQueue, DocQueue, hard_negatives

__all__ = [
    "CorrQueue",
    "DocQueue",
    "LaSRHead",
    "choice_logits",
    "hard_negatives",
]
