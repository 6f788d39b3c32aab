"""The Python floor is true: pyproject's requires-python, the README and the package's code agree.

The package declares Python >= 3.11 (LLaMA-Factory 0.9.5 itself requires >= 3.11, and 3.11 is the
only version tested). The scan parses every module with the floor's grammar and looks for standard
library names newer than the floor, so a 3.12-only construct (or, under a 3.10 floor, the
``typing.Self`` that broke eval/server.py) fails here instead of on a user's machine.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins"

#: stdlib names and the Python version that added them (docs.python.org "What's New" 3.11-3.13).
NEWER_STDLIB: dict[str, tuple[int, int]] = {
    "tomllib": (3, 11), "wsgiref.types": (3, 11),
    "typing.Self": (3, 11), "typing.LiteralString": (3, 11), "typing.Never": (3, 11),
    "typing.assert_never": (3, 11), "typing.assert_type": (3, 11), "typing.reveal_type": (3, 11),
    "typing.Required": (3, 11), "typing.NotRequired": (3, 11), "typing.TypeVarTuple": (3, 11),
    "typing.Unpack": (3, 11), "typing.dataclass_transform": (3, 11), "enum.StrEnum": (3, 11),
    "asyncio.TaskGroup": (3, 11), "asyncio.timeout": (3, 11), "asyncio.Runner": (3, 11),
    "datetime.UTC": (3, 11), "hashlib.file_digest": (3, 11), "contextlib.chdir": (3, 11),
    "ExceptionGroup": (3, 11), "BaseExceptionGroup": (3, 11),
    "typing.override": (3, 12), "typing.TypeAliasType": (3, 12), "itertools.batched": (3, 12),
    "typing.get_protocol_members": (3, 13), "typing.ReadOnly": (3, 13), "typing.TypeIs": (3, 13),
    "warnings.deprecated": (3, 13), "copy.replace": (3, 13),
}


def declared_floor() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r">=\s*3\.(\d+)", spec.strip())
    assert match, f"requires-python {spec!r}: expected a plain '>=3.X' floor"
    return 3, int(match.group(1))


def newer_than(floor: tuple[int, int], path: Path) -> list[str]:
    """Constructs in ``path`` that need a Python newer than ``floor``."""
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path), feature_version=floor)
    except SyntaxError as err:
        return [f"{path}:{err.lineno}: syntax newer than {floor}: {err.msg}"]
    modules: dict[str, str] = {}  # local name -> module
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                modules[alias.asname or alias.name] = alias.name
                names.append(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            names.append(f"{modules[node.value.id]}.{node.attr}")
        elif isinstance(node, ast.Name):
            names.append(node.id)
        found += [f"{path}:{node.lineno}: {n} needs {NEWER_STDLIB[n]}" for n in names
                  if n in NEWER_STDLIB and NEWER_STDLIB[n] > floor]
    return found


def _package_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50
    return files


def test_package_code_runs_on_the_declared_floor():
    floor = declared_floor()
    problems = [p for f in _package_files() for p in newer_than(floor, f)]
    assert not problems, "\n".join(problems)


def test_scan_catches_what_broke_the_old_floor(tmp_path):
    # the reported bug: `typing.Self` (3.11) in eval/server.py under a declared 3.10 floor
    assert any("typing.Self" in p for p in newer_than((3, 10), PACKAGE / "extra_cot/eval/server.py"))
    bad = tmp_path / "m.py"
    bad.write_text("import itertools\ntype Pair = tuple[int, int]\n")
    assert newer_than((3, 11), bad) and "syntax newer" in newer_than((3, 11), bad)[0]
    bad.write_text("import itertools as it\nx = it.batched([1, 2], 1)\n")
    assert newer_than((3, 11), bad) == [f"{bad}:2: itertools.batched needs (3, 12)"]


def test_readme_states_the_same_floor():
    floor = "{}.{}".format(*declared_floor())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.findall(r"Python ≥ (3\.\d+)", readme)
    assert stated and set(stated) == {floor}, stated
