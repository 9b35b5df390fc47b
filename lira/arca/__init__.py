"""Arca: temporal pooling, the (shared) anchor adaptor and the candidate-selecting Actor.

The names load on first use (PEP 562): ``lira.config`` imports ``lira.arca.config``, and an eager
import here would pull torch into every command that only reads params (``lira run``'s no-change
rerun, ``lira config``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lira.arca.actor import Actor
    from lira.arca.adaptor import AnchorAdaptors, SharedAdaptor
    from lira.arca.pooling import TemporalPooling

_LAZY = {"Actor": "lira.arca.actor", "AnchorAdaptors": "lira.arca.adaptor", "SharedAdaptor": "lira.arca.adaptor",
         "TemporalPooling": "lira.arca.pooling"}

__all__ = ["Actor", "AnchorAdaptors", "SharedAdaptor", "TemporalPooling"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
