"""Package names that load on first use (PEP 562).

``lira.config`` imports the config modules of ``lira.arca``, ``lira.lasr`` and ``lira.encoders``,
and importing a package runs its ``__init__``: an eager ``from lira.arca.actor import Actor`` there
would pull torch into every command that only reads params (``lira config``, a no-change
``lira run``). Such a package sets ``__getattr__ = lazy_names(__name__, {...})`` instead.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``homes`` maps each public name to the
    module that defines it; the first access imports that module and keeps the value."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
