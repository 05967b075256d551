"""Package structure: no import circles, and no module imports another room's private names."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "marble_widgets"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every ``marble_widgets`` import in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("marble_widgets"):
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("marble_widgets")]
    return out


def _graph() -> dict[str, set[str]]:
    """module -> modules it imports (a ``from package import module`` counts as that module)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, names in _imports(path):
            subs = {f"{target}.{n}" for n in names if f"{target}.{n}" in modules}
            graph[name] |= subs or {target}
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else module


def find_cycles(graph: dict[str, set[str]], skip: set[str]) -> list[list[str]]:
    """Elementary cycles found by depth-first search (enough to report each circle once)."""
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt in skip:
                continue
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state and node not in skip:
            visit(node, [node])
    return cycles


def test_find_cycles_reports_a_circle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}, set()) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}, set()) == []


def test_no_import_circles():
    graph = _graph()
    # package __init__ files only re-export (lazily at the top level); a submodule importing its
    # own package's __init__ is how Python loads it, not a circle of our making
    packages = {m for m in graph if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    assert find_cycles(graph, packages) == []


def test_no_module_imports_another_rooms_private_names():
    offences = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        for target, names in _imports(path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if _room(target) != _room(module) and (private or any(p.startswith("_") for p in target.split(".")[1:])
                                                  and _room(target) != _room(module)):
                offences.append(f"{module} imports {target}:{private or '(private module)'}")
    assert offences == []
