"""Every ``docs/`` reference in the repository resolves: the file exists and a quoted section
after it (``docs/method.md, "Stage 3"``) starts one of that file's headings. No file cites the
design notes that lived outside the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where references live: code, tests, configs, scripts, the README and the docs themselves.
SCANNED = ("plugins", "tests", "benchmarks", "examples", "reward_fns", "docs", "tools", "data_templates")
TOP_FILES = ("README.md", "Makefile", "constraints.txt", "pyproject.toml")
SUFFIXES = {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt", ".json", ".pth", ""}
REF_RE = re.compile(r'docs/([\w.-]+\.md)(?:,? "([^"]+)")?')
#: The briefing notes these docs replace (spelled in pieces so this file does not match itself).
OUTSIDE_RE = re.compile(r"\b(?:METHOD|HOSTS|VERL-CPU|STYLE|SEED-README)\.md")


def _files() -> list[Path]:
    found = [ROOT / name for name in TOP_FILES]
    for top in SCANNED:
        found += [p for p in (ROOT / top).rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    return [p for p in found if "__pycache__" not in p.parts]


def _headings(doc: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in doc.read_text(encoding="utf-8").splitlines() if line.startswith("#")]


def _references() -> list[tuple[str, str, str | None]]:
    refs = []
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in REF_RE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            refs.append((f"{path.relative_to(ROOT)}:{line}", match.group(1), match.group(2)))
    return refs


def test_docs_references_resolve():
    refs = _references()
    assert len(refs) > 50, "the scan found too few docs/ references: is REF_RE still right?"
    broken = []
    for where, name, section in refs:
        doc = ROOT / "docs" / name
        if not doc.is_file():
            broken.append(f"{where}: docs/{name} does not exist")
        elif section and not any(h.startswith(section) for h in _headings(doc)):
            broken.append(f'{where}: docs/{name} has no heading starting "{section}"')
    assert not broken, "\n".join(broken)


def test_no_reference_to_notes_outside_the_repo():
    hits = []
    for path in _files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE_RE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "cite docs/ instead:\n" + "\n".join(hits)


def test_section_check_catches_a_wrong_section():
    """The section check is not vacuous: a heading that does not exist is reported."""
    assert not any(h.startswith("Calibration") for h in _headings(ROOT / "docs" / "method.md"))
    assert any(h.startswith("Stage 3") for h in _headings(ROOT / "docs" / "method.md"))
