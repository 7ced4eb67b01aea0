"""Layers point one way: no import cycle between fctlib's modules at run time (imports at the top
of a module or inside its functions; `if TYPE_CHECKING:` imports excluded), none between its
subpackages even counting type imports, methods and reports below the suite that drives them, and
`deploy` importing no method, no run and no notebook machinery. Read from the source, not by
importing."""

import ast
from pathlib import Path

import fctlib

ROOT = Path(fctlib.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    return {id(inner) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)}


def runtime_imports(types: bool = False) -> dict[str, set[str]]:
    """{module: the fctlib modules it imports at run time (and for type checking if `types`)}."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skip, found = set() if types else _type_checking_nodes(tree), set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules_at_run_time():
    assert cycles(runtime_imports()) == []


def test_the_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_deploy_imports_no_method_run_or_notebook_machinery():
    graph = runtime_imports()
    deploy = {m: deps for m, deps in graph.items() if m.startswith("fctlib.deploy")}
    assert deploy, "no deploy modules found"
    for module, deps in deploy.items():
        above = {d for d in deps if d.startswith(("fctlib.methods", "fctlib.suite",
                                                   "fctlib.report"))}
        assert not above, (module, above)


def _subpackage(module: str) -> str:
    return ".".join(module.split(".")[:2])


def subpackage_imports() -> dict[str, set[str]]:
    """{subpackage: the other subpackages its modules import, type imports included}."""
    graph: dict[str, set[str]] = {}
    for module, deps in runtime_imports(types=True).items():
        graph.setdefault(_subpackage(module), set()).update(
            {_subpackage(d) for d in deps} - {_subpackage(module)})
    return graph


def test_no_cycle_between_subpackages_counting_type_imports():
    assert cycles(subpackage_imports()) == []


def test_methods_and_reports_sit_below_the_suite():
    graph = subpackage_imports()
    assert "fctlib.suite" not in graph["fctlib.methods"] | graph["fctlib.report"]
    assert "fctlib.methods" not in graph["fctlib.report"]
    assert {"fctlib.methods", "fctlib.report"} <= graph["fctlib.suite"]
