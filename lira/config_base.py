"""The base of every config section: unknown keys fail, types are strict, values are immutable."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

_FLOATS = (float, float | None)


class ConfigSection(BaseModel):
    """A typed block of ``params.yaml``; the field's ``Field(..., description=...)`` is its help.

    Strict: ``epochs: true`` or ``trust_remote_code: 'yes'`` fail instead of turning into 1 and
    True. The one leniency: YAML 1.1 reads ``1e-3`` (no dot) as a string, so a float field takes a
    string that parses as a number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _yaml_floats(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = dict(data)
        for name, field in cls.model_fields.items():
            value = fixed.get(name)
            if isinstance(value, str) and field.annotation in _FLOATS:
                try:
                    fixed[name] = float(value)
                except ValueError:
                    pass  # the strict float check reports it
        return fixed

    def replaced(self, **changes: Any) -> ConfigSection:
        """A copy with ``changes`` applied and validated again (a wrong key or value fails)."""
        return type(self).model_validate({**self.model_dump(), **changes})


def did_you_mean(word: str, choices) -> str:  # any iterable of names
    """``"; did you mean 'lr'?"`` for the closest of ``choices`` to a mistyped ``word`` (difflib), or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
