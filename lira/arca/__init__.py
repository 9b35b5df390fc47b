"""Arca: temporal pooling, the (shared) anchor adaptor and the candidate-selecting Actor."""

from lira.arca.actor import Actor
from lira.arca.adaptor import AnchorAdaptors, SharedAdaptor
from lira.arca.pooling import TemporalPooling

__all__ = ["Actor", "AnchorAdaptors", "SharedAdaptor", "TemporalPooling"]
