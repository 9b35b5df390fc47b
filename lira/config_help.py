"""``lira config explain KEY``: a parameter's help text, type, default and constraints.

The help text is the field's ``description`` in its :class:`~lira.config_base.ConfigSection`
class, the one place a parameter is explained (params.yaml carries values, not explanations).
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from lira.config import ConfigError, Params, _model_in


@dataclass(frozen=True)
class Explained:
    key: str
    type: str
    default: Any
    help: str | None
    constraints: dict[str, Any]
    fields: tuple[str, ...]  # a section's keys (empty for a leaf)
    section: str  # the class that owns the field

    def text(self, current: Any = None, show_current: bool = False) -> str:
        lines = [self.key, f"  {self.help or '(no help text)'}", f"  type:    {self.type}", f"  default: {_show(self.default)}"]
        if show_current and not self.fields:  # a section's value is its keys' values
            lines.append(f"  current: {_show(current)}")
        if self.constraints:
            lines.append("  allowed: " + ", ".join(f"{k} {v}" for k, v in self.constraints.items()))
        if self.fields:
            entry = ".<index>" if self.type.startswith("list[") else ""
            lines.append(f"  keys:    {', '.join(self.fields)}   (lira config explain {self.key}{entry}.<key>)")
        lines.append(f"  defined: {self.section}")
        return "\n".join(lines)


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "min length", "max_length": "max length",
           "pattern": "matches"}


def _show(v: Any) -> str:
    if isinstance(v, BaseModel):
        return "(a section; see its keys)"
    if isinstance(v, list) and v and isinstance(v[0], BaseModel):
        return f"[{len(v)} entries]"
    return "null" if v is None else repr(v)


def _type_name(ann: Any) -> str:
    text = str(ann) if typing.get_origin(ann) is not None or not isinstance(ann, type) else ann.__name__
    return text.replace("typing.", "").replace("NoneType", "None").replace("lira.config.", "")


def _constraints(info: FieldInfo) -> dict[str, Any]:
    out = {}
    for m in info.metadata:
        for attr, label in _BOUNDS.items():
            v = getattr(m, attr, None)
            if v is not None:
                out[label] = v
    return out


def explain(key: str) -> Explained:
    """Walk ``key`` (dotted; list entries by index, e.g. ``translate.agents.0.noise``, or without)."""
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError("give a dotted key, e.g. train_arca.lr (top-level sections: " + ", ".join(Params.model_fields) + ")")
    model: type[BaseModel] = Params
    default: Any = Params()
    info: FieldInfo | None = None
    owner = "Params"
    walked: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        fields = model.model_fields
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=3)
            hint = f"; did you mean {' or '.join(repr('.'.join([*walked, c])) for c in close)}?" if close else ""
            where = ".".join(walked) or "the top level"
            raise ConfigError(f"unknown key {key!r}: {where} has no {part!r} (keys: {', '.join(fields)}){hint}")
        info, owner = fields[part], model.__name__
        walked.append(part)
        default = getattr(default, part, None) if default is not None else None
        sub = _model_in(info.annotation)
        i += 1
        if sub is None:
            if i < len(parts):
                raise ConfigError(f"unknown key {key!r}: {'.'.join(walked)} is a value, it has no keys")
            break
        if isinstance(default, list):  # a list of sections: an index picks an entry, else the entry type
            if i < len(parts) and parts[i].isdigit():
                idx = int(parts[i])
                default = default[idx] if idx < len(default) else None
                walked.append(parts[i])
                i += 1
            elif i < len(parts):
                default = None
        model = sub
    assert info is not None
    sub = _model_in(info.annotation)
    keys = tuple(sub.model_fields) if sub is not None else ()
    return Explained(".".join(parts), _type_name(info.annotation), default, info.description, _constraints(info),
                     keys, owner)


def current_value(resolved: dict[str, Any], key: str) -> Any:
    """The key's value in ``resolved`` (``Params.resolved()``; None when a list entry does not exist)."""
    cur: Any = resolved
    for part in key.split("."):
        if isinstance(cur, list) and part.isdigit():
            cur = cur[int(part)] if int(part) < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


__all__ = ["Explained", "current_value", "explain"]
