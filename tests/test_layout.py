"""The package's layering, as folders: no import cycle (imports inside functions and under
``if TYPE_CHECKING:`` count), no import up a layer, no branch on a registered architecture's name outside
models/, kernels/ and convert/, and no branch on a registered dataset's name outside that dataset's own file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "stzoo"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """stzoo modules imported anywhere in ``path``: at the top, inside functions and under ``if TYPE_CHECKING:``
    (a type-only import is still an edge a reader and an import-graph tool follow)."""
    tree = ast.parse(path.read_text())
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("stzoo"):
                    found.add(resolve(a.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([node.module] if node.module else [])
                )
            if base.startswith("stzoo"):
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in modules else resolve(base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(None)
    found.discard(me)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    modules = set(files)
    return {m: _imports(p, modules) for m, p in files.items()}


def _package_of(mod: str, graph: dict[str, set[str]]) -> list[str]:
    """A module's parent packages: importing stzoo.a.b runs stzoo/__init__ and stzoo/a/__init__ first."""
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in graph]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        colour[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if colour.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if colour.get(n) is None:
                cyc = dfs(n)
                if cyc:
                    return cyc
        stack.pop()
        colour[m] = 2
        return None

    for m in sorted(graph):
        if colour.get(m) is None:
            cyc = dfs(m)
            if cyc:
                return cyc
    return None


def test_no_import_cycle():
    graph = import_graph()
    # the top-level package re-exports the front door; a cycle through it is one only if a module
    # below imports `stzoo` itself (checked by leaving stzoo's own edges in)
    graph = {m: {n for n in deps} for m, deps in graph.items()}
    graph.pop("stzoo", None)  # stzoo/__init__ imports the public names; nothing below may need it first
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_nothing_below_imports_the_top_level_package():
    graph = import_graph()
    offenders = sorted(m for m, deps in graph.items() if "stzoo" in deps and m != "stzoo.__main__")
    assert not offenders, f"modules that import the top-level `stzoo` (a hidden cycle): {offenders}"


def _name_branch(names: list[str]) -> re.Pattern[str]:
    """A comparison (``==``, ``!=``, ``in``) with one of ``names`` as a string literal, on either side."""
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"""(==|!=|\bin\b)\s*\(?\s*["']({alt})["']|["']({alt})["']\s*(==|!=|\bin\b)""")


def _branches(pattern: re.Pattern[str], allowed) -> list[str]:
    """``file:line: text`` of every line under stzoo/ that matches ``pattern``, except in files ``allowed(rel, m)``
    says may name that match."""
    hits = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = pattern.search(line)
            if m and not allowed(rel, next(g for g in m.groups()[1:3] + m.groups()[:1] if g and g[0] not in "=!i")):
                hits.append(f"{rel}:{n}: {line.strip()}")
    return hits


def test_no_architecture_branch_outside_models_kernels_convert():
    from stzoo.models import ARCHITECTURES

    assert len(ARCHITECTURES) >= 10
    pattern = _name_branch(list(ARCHITECTURES))
    hits = _branches(pattern, lambda rel, name: rel.parts[0] in ("models", "kernels", "convert"))
    assert not hits, "branches on an architecture name:\n" + "\n".join(hits)


def test_no_dataset_branch_outside_its_own_file():
    from stzoo.data import DATASETS

    assert {"moving_mnist", "grayscott", "kolmogorov"} <= set(DATASETS)
    # each dataset's name may be compared only in the file that defines it: stzoo/data/<name>.py
    pattern = _name_branch(list(DATASETS))
    hits = _branches(pattern, lambda rel, name: rel.as_posix() == f"data/{name}.py")
    assert not hits, "branches on a dataset name outside its own file:\n" + "\n".join(hits)


def test_name_branch_pattern_sees_comparisons_and_only_those():
    p = _name_branch(["moving_mnist", "tau"])
    for line in (
        'if dataset == "moving_mnist":',
        "x = 1 if 'moving_mnist' != d else 2",
        'if arch in ("tau", "x"):',
        'if "tau" == arch:',
        'kw = {} if name != "tau" else {}',
    ):
        assert p.search(line), line
    for line in ('dataset: str = "moving_mnist"', 'e.get("dataset", "moving_mnist")', 'x = "taux" == a', 'TAU = "tau"'):
        assert not p.search(line), line
    assert _branches(p, lambda rel, name: True) == []


def test_cycle_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# The layers of docs/architecture.md, lowest first: folders (and the few top-level modules) of stzoo/.
# A module may import modules of its own layer or below, never above (imports inside functions and
# under `if TYPE_CHECKING:` count).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("stzoo.errors", "stzoo.version", "stzoo.runtime", "stzoo.interfaces")),
    ("pure", ("stzoo.models", "stzoo.metrics", "stzoo.frames", "stzoo.data")),
    ("kernels", ("stzoo.kernels",)),
    ("zoo", ("stzoo.zoo",)),
    ("training", ("stzoo.training",)),
    ("inference", ("stzoo.inference",)),
    ("api", ("stzoo.api",)),
    ("tools", ("stzoo.tools", "stzoo.convert", "stzoo.cli", "stzoo.__main__", "stzoo")),
]


def layer_of(module: str) -> int:
    """The layer of ``module``: a folder's prefix, or a top-level module's exact name (``stzoo`` itself is the
    package's ``__init__``, whose public names sit above everything)."""
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if module == p or (p != "stzoo" and module.startswith(p + ".")):
                return i
    raise AssertionError(f"{module} is in no layer of LAYERS: put it in a layer's folder (see docs/architecture.md)")


def test_every_module_is_in_a_layer_folder():
    """Nothing new lands flat in stzoo/: top-level modules are exactly the core ones and the front door."""
    flat = sorted(p.stem for p in PKG.glob("*.py"))
    assert flat == ["__init__", "__main__", "api", "errors", "interfaces", "metrics", "runtime", "version"], flat
    for m in import_graph():
        layer_of(m)


def test_imports_only_go_down_the_layers():
    graph = import_graph()
    up = sorted(
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
        for m, deps in graph.items()
        for d in deps
        if layer_of(d) > layer_of(m)
    )
    assert not up, "imports that go up a layer:\n" + "\n".join(up)


def test_models_import_only_errors_and_each_other():
    graph = import_graph()
    bad = sorted(
        f"{m} imports {d}"
        for m, deps in graph.items()
        if m.startswith("stzoo.models")
        for d in deps
        if not d.startswith(("stzoo.models", "stzoo.errors"))
    )
    assert not bad, "\n".join(bad)
