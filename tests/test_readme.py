"""Every path the README names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PATH_RE = re.compile(r"^(?:[\w.-]+/)*[\w.-]+(?:\.(?:py|yaml|yml|json|jsonl|md|sh|toml|txt|pth)|/)$")
TOP = ("docs/", "plugins/", "examples/", "benchmarks/", "tests/", "data_templates/", "reward_fns/", "tools/",
       "results/", ".ci/", "Makefile", "pyproject.toml", "constraints.txt", "README.md")


def _tree_paths() -> list[str]:
    block = README.split("## File tree", 1)[1].split("```", 2)[1]
    stack: list[tuple[int, str]] = []
    paths = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(p for _, p in stack) + name
        paths.append(path)
        if name.endswith("/"):
            stack.append((indent, name))
    return paths


def _inline_paths() -> list[str]:
    names = re.findall(r"`([^`\s]+)`", README)
    return [n for n in names if PATH_RE.match(n) and n.startswith(TOP)]


def test_file_tree_paths_exist():
    paths = _tree_paths()
    assert len(paths) > 40
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README file tree names missing paths: {missing}"


def test_inline_paths_exist():
    paths = _inline_paths()
    assert paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README names missing paths: {missing}"


def test_readme_names_the_test_and_demo_commands():
    assert "make test" in README and "make demo" in README
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
