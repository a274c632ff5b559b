"""The package's shape (docs/architecture.md): one subpackage per stage, in the order the
workflow runs them; every import (module level and inside functions) points down or sideways
within a floor, never up, and no two modules import each other through any chain."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "etc"

# Floors, lowest first: a module may import its own floor and those below, never above.
FLOORS = [
    {"core"},
    {"data", "flow", "models", "losses"},
    {"plan"},
    {"train", "infer"},
    {"evaluate"},
    {"deploy", "report", "bench"},
    {"cli"},
]
TOP = {"etc", "etc.__main__"}  # the API front and `python -m etc`: above every floor


def modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports (`from a import b`: b if b is a module)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        is_pkg = f.name == "__init__.py"
        pkg = m if is_pkg else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                subs = [f"{src}.{a.name}" for a in node.names if f"{src}.{a.name}" in mods]
                targets = subs or [src]
            else:
                continue
            for t in targets:
                r = resolve(t)
                if r and r != m:
                    edges[m].add(r)
    return edges


def floor(module: str) -> int:
    if module in TOP:
        return len(FLOORS)
    room = module.split(".")[1]
    for i, rooms in enumerate(FLOORS):
        if room in rooms:
            return i
    raise AssertionError(f"{module} is in no floor: add its room to FLOORS and docs/architecture.md")


def test_only_init_and_main_at_the_top():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], f"modules directly in etc/: {loose}; give each a stage's subpackage"
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == set().union(*FLOORS), "every subpackage has a floor, every floor a subpackage"


def test_no_import_runs_up_a_floor():
    edges = imports(modules())
    up = sorted(f"{a} -> {b}" for a, bs in edges.items() for b in bs if floor(b) > floor(a))
    assert up == [], "imports from a lower floor to a higher one:\n" + "\n".join(up)


def test_no_import_circle():
    edges = imports(modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert circles == [], f"import circles: {circles}"


def test_the_walk_sees_function_level_imports(tmp_path):
    """The checks above would pass vacuously if the walk missed imports inside functions."""
    edges = imports(modules())
    assert "etc.models.registry" in edges["etc.models.checkpoint"]  # imported inside a function
    assert "etc.core.errors" in edges["etc.data.labels"]


@pytest.mark.parametrize("module", ["etc.plan.layout", "etc.plan.resources", "etc.plan.runs",
                                    "etc.plan.keyframe_rows", "etc.core.config", "etc.core.reads",
                                    "etc.plan.rerun"])
def test_what_the_snakefile_imports_is_torch_free(module):
    code = (f"import sys, {module}; heavy = {{'torch', 'cv2', 'pandas'}} & set(sys.modules); "
            f"assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
