"""dvc.yaml's deps and params cover the code and the parameters each stage really uses.

DVC reruns a stage only when one of its declared deps or params changed, so a module the stage
imports but does not list lets ``dvc repro`` skip a stage whose code changed. For every stage
(``cmd: lira stage NAME``) this computes, statically with ``ast``, the import closure of
``lira.stages.NAME``: every ``lira.*`` module reachable through ``import`` statements anywhere in a
module (function-level imports included; ``if TYPE_CHECKING:`` blocks excluded, they never run),
each submodule import also running its packages' ``__init__``, plus dynamic imports named by a string
constant (``"lira.translate.openai_backend:OpenAIBackend"``). Every module file in the closure must
lie under a dep (a dep folder covers the files under it). A module with no statement beyond a
docstring and ``from __future__`` imports cannot change a result and is not required.

Params: a stage must list ``shared`` and its own section, and every params.yaml section that code in
its closure reads as ``params.<section>``.

Not counted (see EXEMPT): the MLflow logging hook that ``lira.stages.run_stage`` calls after every
stage. It writes only to the tracking store, nothing a stage declares, so a change to it must not
rerun the pipeline; a stage that imports lira.tracking itself (evaluate: the registry, the gate) is
checked like any other import. The CLI that parses ``lira stage NAME`` (lira/cli.py) is not counted
either: it only dispatches to ``run_stage``.
"""

from __future__ import annotations

import ast
import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# (importer, imported): edges the closure does not follow, with the reason.
EXEMPT_EDGES = {
    ("lira.stages", "lira.tracking.runs"): "run_stage's MLflow logging hook: writes no declared output",
}
# (module, params section): reads that do not make the section a stage param, with the reason.
EXEMPT_READS = {
    ("lira.stages", "tracking"): "run_stage only checks tracking.enabled to call the logging hook above",
}
_DYNAMIC = re.compile(r"^(lira(?:\.[A-Za-z_]\w*)+)(?::\w+)?$")


@functools.cache
def module_file(name: str, root: Path = ROOT) -> Path | None:
    base = root / Path(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST):
    """ast.walk, minus the bodies of ``if TYPE_CHECKING:``."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, ast.If) and _is_type_checking(n.test):
            stack.extend(n.orelse)
            continue
        stack.extend(ast.iter_child_nodes(n))


def _inert(tree: ast.Module) -> bool:
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return all(isinstance(s, ast.ImportFrom) and s.module == "__future__" for s in body)


@dataclass(eq=False)  # hashed by identity: parse_module returns one object per module
class Module:
    name: str
    file: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)


@functools.cache  # parsed once per run: check() walks the same modules for every stage
def parse_module(name: str, root: Path = ROOT) -> Module | None:
    file = module_file(name, root)
    if file is None:
        return None
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    is_pkg = file.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # kept below only if a module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := _DYNAMIC.match(node.value)):
            found.add(m.group(1))
    imports = set()
    for mod in found:
        parts = mod.split(".")
        if parts[0] != "lira":
            continue
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            prefix = ".".join(parts[:i])
            if module_file(prefix, root) is not None:
                imports.add(prefix)
    imports.discard(name)
    return Module(name, file, tree, imports)


@functools.cache
def closure(root_module: str, root: Path = ROOT) -> dict[str, tuple[Module, list[str]]]:
    """``{module: (parsed, import chain from the stage)}`` reachable from ``root_module``."""
    parts = root_module.split(".")
    todo = [(".".join(parts[:i]), [".".join(parts[:i])]) for i in range(1, len(parts) + 1)]
    seen: dict[str, tuple[Module, list[str]]] = {}
    while todo:
        name, chain = todo.pop(0)
        if name in seen:
            continue
        mod = parse_module(name, root)
        if mod is None:
            continue
        seen[name] = (mod, chain)
        for dep in sorted(mod.imports):
            if (name, dep) not in EXEMPT_EDGES and dep not in seen:
                todo.append((dep, [*chain, dep]))
    return seen


@functools.cache
def param_reads(mod: Module, sections: frozenset[str]) -> set[str]:
    """Sections read as ``params.<section>`` (or ``<x>.params.<section>``) in a module."""
    out = set()
    for node in _walk(mod.tree):
        if isinstance(node, ast.Attribute) and node.attr in sections:
            base = node.value
            if (isinstance(base, ast.Name) and base.id == "params") or (
                    isinstance(base, ast.Attribute) and base.attr == "params"):
                out.add(node.attr)
    return {s for s in out if (mod.name, s) not in EXEMPT_READS}


def suggested_dep(file: Path, root: Path = ROOT) -> str:
    """The dep to add for a module file: its subpackage folder, or the file for lira/*.py and stages."""
    rel = file.relative_to(root).as_posix()
    parts = rel.split("/")
    if len(parts) > 2 and parts[1] != "stages":
        return "/".join(parts[:2])
    return rel


def _covered(rel: str, deps: list[str]) -> bool:
    return any(rel == d or rel.startswith(d + "/") for d in deps)


def check(dvc: dict, params_yaml: dict, root: Path = ROOT) -> list[str]:
    """Every gap between dvc.yaml and the code, one line each, saying what to add."""
    sections = frozenset(params_yaml)
    problems = []
    for stage, spec in dvc["stages"].items():
        cmd = str(spec.get("cmd", ""))
        if cmd.split()[:3] != ["lira", "stage", stage]:
            problems.append(f"stage {stage!r}: cmd {cmd!r} is not `lira stage {stage}`")
            continue
        modname = f"lira.stages.{stage}"
        if module_file(modname, root) is None:
            problems.append(f"stage {stage!r}: no module {modname} (lira/stages/{stage}.py)")
            continue
        deps = [str(d).rstrip("/") for d in spec.get("deps", [])]
        for d in deps:
            if d.startswith("lira/") and not (root / d).exists():
                problems.append(f"stage {stage!r}: dep {d} does not exist; remove it from dvc.yaml")
        reached = closure(modname, root)
        missing: dict[str, list[str]] = {}
        for name, (mod, chain) in sorted(reached.items()):
            rel = mod.file.relative_to(root).as_posix()
            if _inert(mod.tree) or _covered(rel, deps):
                continue
            missing.setdefault(suggested_dep(mod.file, root), []).append(f"{rel} via {' -> '.join(chain)}")
        for dep, why in sorted(missing.items()):
            more = f"; {len(why) - 1} more file(s) under it" if len(why) > 1 else ""
            problems.append(f"stage {stage!r}: add to dvc.yaml deps: - {dep}   ({why[0]}{more})")
        declared = {p for p in spec.get("params", []) if isinstance(p, str)}
        for p in sorted(declared):
            if p.split(".")[0] not in sections:
                problems.append(f"stage {stage!r}: params entry {p!r} is not a section of params.yaml")
        reads: dict[str, list[str]] = {}
        for name, (mod, _) in reached.items():
            for s in param_reads(mod, sections):
                reads.setdefault(s, []).append(name)
        for s in sorted({"shared", stage} & sections | set(reads)):
            if s not in declared:
                who = f"read in {', '.join(sorted(reads[s]))}" if s in reads else "every stage lists shared and its own section"
                problems.append(f"stage {stage!r}: add to dvc.yaml params: - {s}   ({who})")
    return problems


@pytest.fixture(scope="module")
def project() -> tuple[dict, dict]:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    return dvc, params


def test_every_stage_lists_the_code_and_params_it_uses(project):
    problems = check(*project)
    assert not problems, "dvc.yaml misses what stages use:\n" + "\n".join(problems)


def test_the_closure_follows_function_level_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "lira"
    files = {
        "__init__.py": '"""Docstring only: inert."""\nfrom __future__ import annotations\n',
        "stages/__init__.py": "import importlib\n",
        "stages/demo.py": (
            "from typing import TYPE_CHECKING\nfrom . import helper\n"
            "if TYPE_CHECKING:\n    from lira.heavy import Thing\n"
            "def run(params, root):\n    from lira.lib.deep import f\n    return params.demo, f()\n"
        ),
        "stages/helper.py": "BACKEND = 'lira.plugins.backend:Backend'\n",
        "lib/__init__.py": "X = 1\n",
        "lib/deep.py": "import lira.util\n",
        "util.py": "def g(params):\n    return params.shared.seed, params.other\n",
        "plugins/__init__.py": "",
        "plugins/backend.py": "class Backend: ...\n",
        "heavy.py": "Thing = 1\n",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text, encoding="utf-8")
    reached = closure("lira.stages.demo", tmp_path)
    assert set(reached) == {"lira", "lira.stages", "lira.stages.demo", "lira.stages.helper", "lira.lib",
                            "lira.lib.deep", "lira.util", "lira.plugins", "lira.plugins.backend"}
    assert reached["lira.util"][1] == ["lira.stages.demo", "lira.lib.deep", "lira.util"]
    dvc = {"stages": {"demo": {"cmd": "lira stage demo", "deps": ["lira/stages/demo.py", "lira/lib"],
                               "params": ["shared", "demo"]}}}
    problems = check(dvc, {"shared": {}, "demo": {}, "other": {}}, tmp_path)
    assert not any("lira/__init__.py" in p for p in problems)  # inert
    adds = sorted(p.split("- ")[1].split()[0] for p in problems)
    assert adds == ["lira/plugins", "lira/stages/__init__.py", "lira/stages/helper.py", "lira/util.py", "other"], problems
    assert any("lira/util.py via lira.stages.demo -> lira.lib.deep -> lira.util" in p for p in problems)


def test_removing_a_dep_or_a_param_is_reported_with_the_line_to_add(project):
    dvc, params = project
    assert not check(dvc, params)  # the reports below come from the removals alone
    for stage, spec in dvc["stages"].items():
        own = f"lira/stages/{stage}.py"
        broken = copy.deepcopy(dvc)
        broken["stages"][stage]["deps"] = [d for d in spec["deps"] if d != own]
        problems = check(broken, params)
        assert problems and all(p.startswith(f"stage {stage!r}: add to dvc.yaml deps: - {own} ") for p in problems), problems
    for stage in dvc["stages"]:
        broken = copy.deepcopy(dvc)
        broken["stages"][stage]["deps"].remove("lira/config.py")
        problems = check(broken, params)
        assert problems and all(p.startswith(f"stage {stage!r}: add to dvc.yaml deps: - lira/config.py ") for p in problems)
    broken = copy.deepcopy(dvc)
    broken["stages"]["evaluate"]["params"].remove("tracking")
    problems = check(broken, params)
    assert len(problems) == 1 and problems[0].startswith("stage 'evaluate': add to dvc.yaml params: - tracking")
