"""The shape of the code: no import cycles, the core never imports the TUI, modules stay small.

The graph is built with `ast` from every module under edgetui/ and screens/, counting every import
(also the ones inside functions, which hide a cycle from Python but not from a reader). Relative
imports are resolved; `from a.b import c` is an edge to `a.b.c` when that is a module, else to `a.b`.
Only edges between our own modules count.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("edgetui", "screens")
MAX_LINES = 400
# The one place the core may reach into the TUI: `edgetui` with no command opens it. edgetui/cli.py is the
# composition root of the command (pyproject's entry point and `python -m edgetui` both land there).
TUI_ENTRY = {("edgetui.cli", "screens.app")}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the packages."""
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = f
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of `from <level dots><name> import ...` written in `module`."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that `module` imports anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for a in node.names:
                sub = f"{base}.{a.name}" if base else a.name
                targets.add(sub if sub in known else base)
    edges = set()
    for t in targets:
        # `import a.b.c` also imports a and a.b; the closest known module is the edge
        while t and t not in known:
            t = t.rpartition(".")[0]
        if t and t != module:
            edges.add(t)
    return edges


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {m: imports_of(m, f, known) for m, f in files.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in no particular order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    out.append(sorted(comp))
    return out


def _cycle_in(comp: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle through the component's first module, for the failure message."""
    members = set(comp)
    start = comp[0]
    path, seen = [start], {start}
    paths = [(start, [start])]
    while paths:
        node, path = paths.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append((nxt, [*path, nxt]))
    return comp


def test_the_graph_sees_imports_inside_functions_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("def f():\n    from pkg.b import thing\n    from .c import x\n")
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    assert imports_of("pkg.a", pkg / "a.py", known) == {"pkg.b", "pkg.c"}
    assert imports_of("pkg", pkg / "__init__.py", known) == {"pkg.a"}
    comps = strongly_connected({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}})
    assert sorted(map(sorted, comps)) == [["w"], ["x", "y", "z"]]


def test_there_are_no_import_cycles():
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, "import cycles (also through imports inside functions):\n" + "\n".join(
        " -> ".join(_cycle_in(c, graph)) + f"   (component: {', '.join(c)})" for c in cycles)


def test_the_core_never_imports_the_tui():
    graph = import_graph()
    bad = sorted(f"{m} imports {t}" for m, ts in graph.items() if m.split(".")[0] == "edgetui"
                 for t in ts if t.split(".")[0] == "screens" and (m, t) not in TUI_ENTRY)
    assert not bad, "edgetui/ must not import screens/ (the TUI is a face over the core):\n" + "\n".join(bad)


def test_no_module_is_over_400_lines():
    over = sorted((n, str(f.relative_to(REPO))) for f in module_files().values()
                  if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES)
    assert not over, f"modules over {MAX_LINES} lines (split them by responsibility):\n" + "\n".join(
        f"{p}: {n} lines" for n, p in reversed(over))
