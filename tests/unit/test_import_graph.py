"""The import graph of the installed packages (hipo, components, pipelines), read from their source:
only the console script imports ``hipo.cli``, and no import circle exists (type-only imports excepted)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hipo", "components", "pipelines")  # pyproject.toml's packages


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """The modules ``module`` imports at run time, anywhere in its body (imports inside functions
    included; ``if TYPE_CHECKING:`` blocks left out)."""
    found: set[str] = set()
    base = module.split(".") if is_package else module.split(".")[:-1]
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = ".".join(base[: len(base) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (parent, node.module or "") if p)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # a submodule, if it is one
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """{module: the hipo modules it imports}. ``from a.b import c`` is an edge to ``a.b`` (and to
    ``a.b.c`` when that is a module), not to the package ``a`` that Python runs on the way, as
    import-linter and pydeps count: a package's ``__init__`` that re-exports its submodules is no circle."""
    paths = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        imported = _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py")
        graph[name] = {t for t in imported if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_relative_lazy_and_package_imports():
    graph = import_graph()
    assert "hipo.launch.kube" in graph["hipo.launch.local"]  # a top-level absolute import
    assert "hipo.launch.local" in graph["hipo.cli.main"]  # an import inside a function
    assert "hipo.launch.entry" in graph["hipo.launch.local"]
    assert "hipo.launch" in graph["hipo.pipeline.steps"]  # `from hipo.launch import run_training`


def test_nothing_in_the_package_imports_the_cli():
    graph = import_graph()
    importers = sorted(
        name
        for name, targets in graph.items()
        if not (name == "hipo.cli" or name.startswith("hipo.cli."))
        and any(t == "hipo.cli" or t.startswith("hipo.cli.") for t in targets)
    )
    assert importers == [], f"only the console script may import hipo.cli: {importers}"


def test_no_import_circle_anywhere():
    circles = [sorted(c) for c in cycles(import_graph())]
    assert circles == [], f"import circles (type-only imports excepted): {circles}"
