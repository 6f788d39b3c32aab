"""The package has no import cycle, and no import runs upward (module-level, function-level or
TYPE_CHECKING imports alike).

Upward: the study builds on the demo and on the stages (rl/, compress/, ...), the demo on the stages;
so rl/ imports neither demo/ nor study/, and demo/ does not import study/ (shared pieces, such as the
γ* rule in ``extra_cot.gamma``, live at the top level)."""

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


#: package -> the packages above it, which it must not import
ABOVE = {"extra_cot.rl": ("extra_cot.demo", "extra_cot.study"), "extra_cot.demo": ("extra_cot.study",)}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _upward(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, targets in edges.items() for b in targets
            for pkg, above in ABOVE.items() if _in(a, pkg) and any(_in(b, up) for up in above)}


def test_no_import_runs_upward():
    edges = _graph()
    assert "extra_cot.gamma" in edges["extra_cot.rl.rl_data"]  # the graph is read: build-rl's γ* is the shared one
    assert "extra_cot.evalsummary" in edges["extra_cot.demo.summary"]  # and the demo's run summaries too
    assert not _upward(edges), sorted(_upward(edges))


def test_the_checker_finds_an_upward_import():
    edges = {"extra_cot.rl.build_rl": {"extra_cot.study.gamma"}, "extra_cot.demo.steps": {"extra_cot.study.gamma"},
             "extra_cot.study.steps": {"extra_cot.demo.steps", "extra_cot.gamma"}, "extra_cot.studyx": set(),
             "extra_cot.demo.x": {"extra_cot.studyx", "extra_cot.gamma"}}
    assert _upward(edges) == {("extra_cot.rl.build_rl", "extra_cot.study.gamma"),
                              ("extra_cot.demo.steps", "extra_cot.study.gamma")}


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
