"""Segmentation of a chain of thought into selection units: words and atomic formulas.

A unit is kept or dropped whole, so a compression can never cut a formula (the authors'
keep@20% cuts formulas and multi-byte characters, METHOD.md "Stage 1"). Units are Python
``str`` slices, so a multi-byte character is never split. Formula kinds:

* LaTeX spans ``$$..$$``, ``\\[..\\]``, ``\\(..\\)``, ``$..$`` and ``\\boxed{..}`` (nested braces);
* GSM8K calculator annotations ``<<48/2=24>>`` (glued to the result that follows them);
* plain-text equations and calculations: ``48/2 = 24``, ``3 × 4 = 12``, ``0.2 x 50``,
  ``48/2 = <<48/2=24>>24``: numbers joined by arithmetic or relation operators.

Everything else is split on whitespace into words. Pure Python, no imports beyond ``re``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A dollar sign followed by a digit is a currency sign in GSM8K text, not LaTeX ("$12 an hour"):
# a LaTeX inline span must not start with "$<digit>" and end before another "$<digit>".
_LATEX = (
    r"\$\$.+?\$\$"  # display math
    r"|\\\[.+?\\\]"  # \[ .. \]
    r"|\\\(.+?\\\)"  # \( .. \)
    r"|\$(?![\s\d])[^$\n]+?(?<!\s)\$(?!\d)"  # $..$ that does not look like currency
    r"|\$\d[^$\n]*?[\\^_{][^$\n]*?(?<!\s)\$(?!\d)"  # $0 \le x$: digit-led but holds LaTeX markup
)
_NUM = r"(?:\d+(?:,\d{3})+|\d+)(?:\.\d+)?%?"
# An operand: an optional currency sign, an optional calculator annotation, a number; or a
# one-letter variable; or a parenthesised group of numbers and operators.
_ANNOT = r"<<[^<>\n]{1,200}>>"
# A number may carry one variable letter ("2S", "4x"): cutting "2 * 2S" to "2 * 2" would change
# its meaning.
_OPERAND = rf"(?:\$?(?:{_ANNOT})?\$?{_NUM}(?:[a-zA-Z](?![a-zA-Z]))?|\b[a-zA-Z]\b|\([\d \t.+\-*/×x÷^]+\))"
# Operators bind within a line only: a formula never spans a line break.
_OP = r"(?:[ \t]*(?:\*\*|[-+*/×÷·^=<>≤≥≠≈])[ \t]*|[ \t]+x[ \t]+)"
_PLAIN = rf"{_OPERAND}(?:{_OP}{_OPERAND})+"
_FORMULA_RE = re.compile(rf"(?P<latex>{_LATEX})|(?P<plain>{_PLAIN})|(?P<annot>{_ANNOT}(?:{_NUM})?)", re.DOTALL)
_BOXED = "\\boxed{"
_WORD_RE = re.compile(r"\S+")


@dataclass(frozen=True)
class Unit:
    """One selection unit: ``text == source[start:end]``; ``formula`` units are atomic."""

    text: str
    start: int
    end: int
    formula: bool


def _boxed_spans(text: str) -> list[tuple[int, int]]:
    """``\\boxed{...}`` spans with balanced braces (an unbalanced one is left to the words)."""
    spans, i = [], text.find(_BOXED)
    while i >= 0:
        depth, j = 0, i + len(_BOXED) - 1
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        if j < len(text):
            spans.append((i, j + 1))
        i = text.find(_BOXED, j if j < len(text) else i + 1)
    return spans


def _is_formula(match: re.Match) -> bool:
    if match.group("latex") or match.group("annot"):
        return True
    # A plain match needs an operator between two numbers or an '=': "a - b" alone is prose.
    body = match.group("plain")
    return bool(re.search(r"\d", body)) and (bool(re.search(r"[=<>≤≥≠≈]", body)) or
                                             len(re.findall(r"\d+", body)) >= 2)


def formula_spans(text: str) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` of every atomic formula in ``text``, in order."""
    spans = _boxed_spans(text)
    taken = [False] * (len(text) + 1)
    for s, e in spans:
        taken[s:e] = [True] * (e - s)
    for match in _FORMULA_RE.finditer(text):
        s, e = match.span()
        if not _is_formula(match) or any(taken[s:e]):
            continue
        spans.append((s, e))
        taken[s:e] = [True] * (e - s)
    return sorted(spans)


def segment(text: str) -> list[Unit]:
    """Split ``text`` into units covering every non-space character exactly once."""
    units: list[Unit] = []
    pos = 0
    for s, e in formula_spans(text):
        units.extend(_words(text, pos, s))
        units.append(Unit(text[s:e], s, e, True))
        pos = e
    units.extend(_words(text, pos, len(text)))
    return units


def _words(text: str, start: int, end: int) -> list[Unit]:
    return [Unit(m.group(0), start + m.start(), start + m.end(), False)
            for m in _WORD_RE.finditer(text[start:end])]


def formulas(text: str) -> list[str]:
    """The formula units of ``text`` (used by the integrity check)."""
    return [u.text for u in segment(text) if u.formula]


def integrity_violations(source: str, compressed: str) -> list[str]:
    """Formulas in ``compressed`` that are not verbatim formulas of ``source`` (empty = intact)."""
    allowed = set(formulas(source))
    return [f for f in formulas(compressed) if f not in allowed]
