"""The house's layers, read from the code: the import graph of plugins/maintenance, its layers,
the rules they keep, and the picture in docs/architecture.md.

    python -m devtools.architecture          # check the rules; print what breaks them
    python -m devtools.architecture --write  # regenerate the picture in docs/architecture.md

Every import counts, also those inside functions (the heavy ones are deferred there, but they
are dependencies all the same).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- layers:begin (python -m devtools.architecture --write) -->", "<!-- layers:end -->"

# Lowest first. A module may import from its own layer and the ones below, never from above.
LAYERS = ("foundation", "records", "engines", "runtime", "operators", "ui", "dags kit")
FOUNDATION = {
    "maintenance", "maintenance.errors", "maintenance.clock", "maintenance.findings", "maintenance.actions",
    "maintenance.form", "maintenance.policy", "maintenance.policy.model", "maintenance.calendar",
    "maintenance.probes", "maintenance.pgsession", "maintenance.s3lock", "maintenance.s3files",
    "maintenance.aws.clients", "maintenance.security.http", "maintenance.security.versions", "maintenance.notify.slack",
    "maintenance.notify.summary",
}
RUNTIME = {"maintenance.operator", "maintenance.run", "maintenance.timing", "maintenance.gate.sensor",
           "maintenance.gate.blockers", "maintenance.gate"}
OPERATORS = {"maintenance.reports.operator", "maintenance.reports.postmortems"}


def layer_of(module: str) -> str:
    if module == "maintenance.dagkit":
        return "dags kit"
    if module in FOUNDATION or module.startswith("maintenance.policy."):
        return "foundation"
    if module in RUNTIME:
        return "runtime"
    if module.startswith("maintenance.ui"):  # what people see in the Airflow UI: reads every layer below
        return "ui"
    if module.endswith(".operators") or module in OPERATORS:
        return "operators"
    if module.startswith(("maintenance.ledger", "maintenance.notify")):
        return "records"
    return "engines"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((PLUGINS / "maintenance").rglob("*.py")):
        name = ".".join(path.relative_to(PLUGINS).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports() -> dict[str, set[str]]:
    """module -> the project's modules it imports (anywhere in it)."""
    mods = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base
                    if target in mods and target != name:
                        edges[name].add(target)
            elif isinstance(node, ast.Import):
                edges[name] |= {a.name for a in node.names if a.name in mods and a.name != name}
    return {name: edges.get(name, set()) for name in mods}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer into a higher one, each as 'a (layer) -> b (layer)'."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return [f"{a} ({layer_of(a)}) -> {b} ({layer_of(b)})" for a in sorted(edges) for b in sorted(edges[a])
            if rank[layer_of(b)] > rank[layer_of(a)]]


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def picture(edges: dict[str, set[str]]) -> str:
    """A Mermaid diagram: the layers, top to bottom, each holding its packages (or modules),
    and the dependencies between them."""
    groups: dict[str, set[str]] = defaultdict(set)
    nodes: dict[str, str] = {}
    for module in edges:
        layer = layer_of(module)
        node = _package(module) if layer == "engines" else module  # engines by capability
        nodes[module] = node
        groups[layer].add(node)

    def ident(node: str) -> str:
        return node.replace(".", "_")

    lines = ["```mermaid", "flowchart TB"]
    for layer in reversed(LAYERS):
        lines.append(f'  subgraph {ident(layer.replace(" ", "_"))}["{layer}"]')
        lines += [f'    {ident(n)}["{n.removeprefix("maintenance.")}"]' for n in sorted(groups[layer])]
        lines.append("  end")
    # Layer to layer only: a module-level edge list would be unreadable at this size.
    layer_links = sorted({(layer_of(a), layer_of(b)) for a in edges for b in edges[a]
                          if layer_of(a) != layer_of(b)}, key=lambda p: (LAYERS.index(p[0]), LAYERS.index(p[1])))
    lines += [f'  {ident(a.replace(" ", "_"))} --> {ident(b.replace(" ", "_"))}' for a, b in reversed(layer_links)]
    lines.append("```")
    return "\n".join(lines)


def document_picture() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()


def write_picture(edges: dict[str, set[str]]) -> None:
    text = DOC.read_text()
    DOC.write_text(text[:text.index(BEGIN) + len(BEGIN)] + "\n" + picture(edges) + "\n" + text[text.index(END):])


def main(argv: list[str]) -> int:
    edges = imports()
    if "--write" in argv:
        write_picture(edges)
    problems = [f"import circle: {' <-> '.join(c)}" for c in cycles(edges)] + [
        f"upward import: {u}" for u in upward(edges)]
    if document_picture() != picture(edges):
        problems.append(f"{DOC.relative_to(ROOT)}: the picture is out of date "
                        "(python -m devtools.architecture --write)")
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
