"""The house's import graph: edge_opt's packages are floors, in the order of the design's data flow,
and an import only runs down (or within a floor); no circle, counting the imports inside functions.

Read from the source with ``ast`` (nothing is imported), so it is fast and sees every import. The
floors, bottom to top (docs/design.md):

core (small utilities) · datasets · models · runtimes · passes · targets · bench (the harness and
its worker) · transports · measure (the measurement service, devices, records, Ray) · budgets (the
budget grammar and choose()) · analysis (trust checks, roofline, fidelity) · nas · repair (the
accuracy-aware repair loop) · gate · store ·
report · run (runner, suite, user models, optimize, compare) · conformance · cli.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "edge_opt"
FLOORS = (
    "core",
    "datasets",
    "models",
    "attacks",
    "runtimes",
    "passes",
    "targets",
    "bench",
    "transports",
    "measure",
    "budgets",
    "analysis",
    "nas",
    "repair",
    "gate",
    "store",
    "report",
    "run",
    "conformance",
    "cli",
)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def floor(module: str) -> int:
    """The floor of ``edge_opt.<part>...``; the package's own __init__ is the ground."""
    parts = module.split(".")
    return -1 if len(parts) == 1 else FLOORS.index(parts[1])


def _imported(module: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> list[str]:
    """The edge_opt modules an import statement reads (the deepest module each name resolves to)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module.split(".") if is_package else module.split(".")[:-1]
        if node.level:
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]
    out = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("edge_opt") and name != module:
            out.append(name)
    return out


#: Libraries imported inside the function that needs them (docs/design.md, Conventions).
HEAVY = frozenset(
    "tensorflow tf_keras tensorflow_model_optimization ai_edge_litert onnxruntime onnx tf2onnx openvino nncf ray "
    "keras keras_tuner sklearn scipy pandas shap art fairlearn matplotlib asyncssh adbutils".split()
)


def _is_function_local(tree: ast.Module) -> set[int]:
    """The ids of the import statements inside a function."""
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return {id(x) for f in functions for x in ast.walk(f) if isinstance(x, ast.Import | ast.ImportFrom)}


def _imports() -> list[tuple[str, ast.Import | ast.ImportFrom, bool]]:
    """(module, import statement, inside a function?) for every import of edge_opt."""
    out = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        local = _is_function_local(tree)
        out += [(module, n, id(n) in local) for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    return out


IMPORTS = _imports()


def _heavy_modules() -> set[str]:
    """edge_opt modules that import a HEAVY library at module level, themselves or through another."""
    top: dict[str, set[str]] = defaultdict(set)
    heavy = set()
    for module, node, local in IMPORTS:
        if local:
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        if not getattr(node, "level", 0) and any(n.split(".")[0] in HEAVY for n in names):
            heavy.add(module)
        top[module].update(_imported(module, node, MODULES[module].name == "__init__.py"))
    while True:
        more = {m for m, targets in top.items() if m not in heavy and targets & heavy}
        if not more:
            return heavy
        heavy |= more


def _edges() -> dict[str, dict[str, int]]:
    """module -> {imported module: line}, every import statement, at module level or inside a function."""
    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(module, node, path.name == "__init__.py"):
                    edges[module].setdefault(target, node.lineno)
    return edges


EDGES = _edges()


def test_every_package_has_a_floor():
    unknown = sorted({m.split(".")[1] for m in MODULES if "." in m} - set(FLOORS) - {"schemas", "_builtin"})
    assert not unknown, f"packages with no floor in FLOORS: {unknown}"


def arrows_up() -> list[str]:
    return sorted(
        f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
        for m, targets in EDGES.items()
        for t, line in targets.items()
        if floor(t) > floor(m)
    )


def test_no_import_runs_back_up():
    up = arrows_up()
    assert not up, "imports running up a floor:\n" + "\n".join(up)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in MODULES:
        if start in index:
            continue
        work = [(start, iter(EDGES.get(start, {})))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(EDGES.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle():
    assert _cycles() == []


def test_imports_of_edge_opt_sit_at_module_level_except_heavy_ones_and_the_cli():
    # The CLI imports each stage inside its command (edge-opt --help answers at once); elsewhere an
    # edge_opt module is imported inside a function only when it pulls in a heavy library.
    heavy = _heavy_modules()
    local = [
        f"{MODULES[m].relative_to(PACKAGE.parent)}:{node.lineno} imports {t}"
        for m, node, inside in IMPORTS
        if inside and not m.startswith("edge_opt.cli")
        for t in _imported(m, node, MODULES[m].name == "__init__.py")
        if t not in heavy
    ]
    assert not local, "imports inside functions of light edge_opt modules (lift them):\n" + "\n".join(local)


def test_the_cli_imports_no_stage_at_module_level():
    top = {
        t
        for m, node, inside in IMPORTS
        if m.startswith("edge_opt.cli") and not inside
        for t in _imported(m, node, MODULES[m].name == "__init__.py")
    }
    assert all(t.startswith(("edge_opt.cli", "edge_opt.core")) for t in top), sorted(top)


@pytest.mark.parametrize(
    "low, high", [("edge_opt.gate", "edge_opt.run.runner"), ("edge_opt.core.errors", "edge_opt.cli")]
)
def test_the_check_sees_an_arrow_up_and_a_circle(low, high):
    # The check can fail: an import from a low floor to a module that (transitively) imports it back.
    EDGES[low][high] = 1
    try:
        assert any(f"imports {high}" in line for line in arrows_up())
        assert any(low in c and high in c for c in _cycles())
    finally:
        del EDGES[low][high]
