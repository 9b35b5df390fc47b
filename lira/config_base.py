"""The base of every config section: unknown keys fail, values are immutable once validated."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ConfigSection(BaseModel):
    """A typed block of ``params.yaml``; the field's ``Field(..., description=...)`` is its help."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def replaced(self, **changes: Any) -> ConfigSection:
        """A copy with ``changes`` applied and validated again (a wrong key or value fails)."""
        return type(self).model_validate({**self.model_dump(), **changes})
