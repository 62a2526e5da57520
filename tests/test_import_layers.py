"""Import layering read from the source (no import executed): leaves stay leaves, no cycles.

``mmrec.evaluate`` runs the recommender (its protocols import ``mmrec.recommend``), and the
recommender tunes itself with ranking metrics: it may only reach into ``mmrec.evaluate`` for leaf
modules (numpy and the standard library only), so the two packages never import each other.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("mmrec", "encoders", "pipelines")
LEAVES = ("mmrec.evaluate.metrics", "mmrec.evaluate.splits", "mmrec.modalities")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, top_level_only: bool) -> set[str]:
    """Modules of ours that ``path`` imports (with the packages each import runs), resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)  # submodules imported by name
            if top_level_only:
                if isinstance(node, ast.If | ast.Try | ast.With):
                    visit([*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])])
                    for handler in getattr(node, "handlers", []):
                        visit(handler.body)
            elif not isinstance(node, ast.Import | ast.ImportFrom):
                visit([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)])

    visit(tree.body)
    return {m for m in found if m.split(".")[0] in OURS}


def graph(top_level_only: bool = True) -> dict[str, set[str]]:
    """Module -> modules of ours it imports; importing ``a.b.c`` also runs ``a`` and ``a.b``."""
    files = {module_name(p): p for pkg in OURS for p in (ROOT / pkg).rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        for target in imports(path, top_level_only):
            parts = target.split(".")
            edges.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        # a module's own packages are already being initialised when it runs: no edge to them
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        out[name] = {t for t in edges if t in files and t != name and t not in own}
    return out


def cycles(g: dict[str, set[str]], within: tuple[str, ...]) -> list[list[str]]:
    """Strongly connected groups of more than one module among those starting with ``within``."""
    nodes = [n for n in g if n.startswith(within)]
    sub = {n: {t for t in g[n] if t.startswith(within)} for n in nodes}
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sub[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for n in nodes:
        if n not in index:
            connect(n)
    return found


def test_leaf_modules_import_nothing_of_ours() -> None:
    g = graph(top_level_only=False)
    for leaf in LEAVES:
        assert g[leaf] == set(), (leaf, g[leaf])
    assert imports(ROOT / "mmrec" / "evaluate" / "__init__.py", top_level_only=False) == set()


def test_recommend_and_evaluate_do_not_import_each_other() -> None:
    g = graph()
    assert cycles(g, ("mmrec.recommend", "mmrec.evaluate")) == []
    reaching_back = {
        (src, dst)
        for src, targets in g.items()
        if src.startswith("mmrec.recommend")
        for dst in targets
        if dst.startswith("mmrec.evaluate.") and dst not in LEAVES
    }
    assert reaching_back == set()
    # and the scan does see the imports it judges
    assert "mmrec.recommend.hybrid" in g["mmrec.evaluate.protocols"]
    assert "mmrec.evaluate.metrics" in g["mmrec.recommend.hybrid"]


def test_no_import_cycle_among_module_level_imports() -> None:
    assert cycles(graph(), OURS) == []
