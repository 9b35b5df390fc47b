"""Arca: temporal pooling, the (shared) anchor adaptor and the candidate-selecting Actor.

The names load on first use (PEP 562): ``lira.config`` imports ``lira.arca.config``, and an eager
import here would pull torch into every command that only reads params (``lira run``'s no-change
rerun, ``lira config``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lira.lazy import lazy_names

if TYPE_CHECKING:
    from lira.arca.actor import Actor
    from lira.arca.adaptor import AnchorAdaptors, SharedAdaptor
    from lira.arca.pooling import TemporalPooling

_LAZY = {"Actor": "lira.arca.actor", "AnchorAdaptors": "lira.arca.adaptor", "SharedAdaptor": "lira.arca.adaptor",
         "TemporalPooling": "lira.arca.pooling"}

__all__ = ["Actor", "AnchorAdaptors", "SharedAdaptor", "TemporalPooling"]


__getattr__ = lazy_names(__name__, _LAZY)
