"""The package has no import cycle (module-level, function-level or TYPE_CHECKING imports alike)."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def _graph() -> dict[str, set[str]]:
    mods = {}
    for path in (PLUGINS / "extra_cot").rglob("*.py"):
        name = ".".join(path.relative_to(PLUGINS).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = path
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                            for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        edges[name] = {t for t in targets if t in mods and t != name}
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    return next((c for n in sorted(edges) if n not in state and (c := visit(n))), None)


def test_no_import_cycles():
    edges = _graph()
    assert "extra_cot.eval.runner" in edges and "extra_cot.compress.lm_scorer" in edges  # the graph is read
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
