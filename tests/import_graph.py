"""The import graph of the ``imse_study`` package, and the rules the layout must keep.

Run ``python tests/import_graph.py`` to print the graph's cycles and the engine -> study imports (none
is the goal); ``--dot FILE`` writes the room-level graph for Graphviz. ``tests/test_architecture.py``
runs the same checks. Every import counts, also those inside functions: a cycle hidden by a
function-level import is still a cycle in the design.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import networkx as nx

PACKAGE = "imse_study"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Rooms of the package that are the paper's study (experiments, tables, claims) or its front ends:
#: the engine (every other room) must never import them.
STUDY_ROOMS = ("study", "cli", "napari", "__main__", "kernel_start", "papermill_output", "preflight")


def module_name(path: Path, root: Path = ROOT) -> str:
    """``imse_study/a/b.py`` -> ``imse_study.a.b``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest known module that ``name`` is, or lies in (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that module ``name`` imports, wherever in the file the import is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != PACKAGE:
                continue
            module = _resolve(target, known)
            if module is not None and module != name:
                found.add(module)
                break
    return found


def import_graph(root: Path = ROOT) -> nx.DiGraph:
    """Module -> module edges of the package (``from pkg import sub`` counts as an edge to ``pkg.sub``)."""
    found = modules(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(found)
    for name, path in found.items():
        graph.add_edges_from((name, target) for target in imports_of(name, path, set(found)))
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """Groups of modules that import each other (strongly connected components of more than one),
    leaving out a package's own ``__init__`` re-exporting its submodules."""
    inner = graph.copy()
    inner.remove_edges_from([(a, b) for a, b in graph.edges if b.startswith(a + ".")])
    return sorted(sorted(group) for group in nx.strongly_connected_components(inner) if len(group) > 1)


def room(module: str) -> str:
    """The top-level room of a module: ``imse_study.study.table2`` -> ``study``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def engine_to_study(graph: nx.DiGraph) -> list[tuple[str, str]]:
    """Imports from an engine module into a study or front-end room."""
    return sorted(
        (a, b) for a, b in graph.edges if room(a) not in STUDY_ROOMS and room(b) in STUDY_ROOMS
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", type=Path, help="write the room-level graph in Graphviz format")
    args = parser.parse_args(argv)
    graph = import_graph()
    found_cycles = cycles(graph)
    crossings = engine_to_study(graph)
    print(f"{graph.number_of_nodes()} modules, {graph.number_of_edges()} imports")
    for group in found_cycles:
        print("cycle:", ", ".join(group))
    for a, b in crossings:
        print(f"engine -> study: {a} -> {b}")
    if args.dot:
        rooms = {(room(a), room(b)) for a, b in graph.edges if room(a) != room(b)}
        lines = [f'  "{a}" -> "{b}";' for a, b in sorted(rooms)]
        args.dot.write_text("digraph imse_study {\n" + "\n".join(lines) + "\n}\n", encoding="utf-8")
    return 1 if found_cycles or crossings else 0


if __name__ == "__main__":
    sys.exit(main())
