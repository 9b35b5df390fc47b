"""Libraries take their config section and explicit values, never the whole ``Params``.

Only the stage modules (``lira/stages/``: each reads params and wires the pieces) may hand
``Params`` around; every other function under ``lira/`` takes the section it reads (``shared``,
``tracking``, ``train_arca``, ...) and explicit arguments. An AST scan, so it cannot regress: a
parameter annotated ``Params`` (``lira.config.Params``, quoted or not), or one named ``params``
with no annotation at all, fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIRA = Path(__file__).resolve().parents[1] / "lira"
ALLOWED = ("stages",)  # folders under lira/ whose functions may take Params


def _names_params(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # "Params" or "Params | None"
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id == "Params":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Params":
            return True
    return False


def params_arguments(source: str, filename: str = "<src>") -> list[str]:
    """``file:line function(arg)`` for each argument that takes the whole Params."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        a = node.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]:
            if _names_params(arg.annotation) or (arg.arg == "params" and arg.annotation is None):
                name = getattr(node, "name", "<lambda>")
                found.append(f"{filename}:{node.lineno} {name}({arg.arg})")
    return found


def test_the_scan_finds_each_form():
    src = (
        "from lira.config import Params\n"
        "import lira.config\n"
        "def a(params: Params): ...\n"
        "def b(x, *, p: 'Params | None' = None): ...\n"
        "def c(params): ...\n"
        "def d(cfg: lira.config.Params): ...\n"
        "f = lambda params: params\n"
        "def ok(shared: SharedParams, params: dict | None, tracking: TrackingParams): ...\n"
    )
    assert [s.split(" ", 1)[1] for s in params_arguments(src)] == [
        "a(params)", "b(p)", "c(params)", "d(cfg)", "<lambda>(params)"]


def test_no_library_function_takes_the_whole_params():
    offenders = []
    for f in sorted(LIRA.rglob("*.py")):
        rel = f.relative_to(LIRA)
        if rel.parts[0] in ALLOWED:
            continue
        offenders += params_arguments(f.read_text(encoding="utf-8"), f"lira/{rel.as_posix()}")
    assert not offenders, (
        "these functions take the whole Params; pass the section they read (params.shared, params.tracking, "
        "params.train_arca, ...) and explicit values instead:\n  " + "\n  ".join(offenders))
