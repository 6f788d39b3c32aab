"""Segmentation of a chain of thought into selection units: words and atomic formulas.

This module is the one place that decides what a formula is. A unit is kept or dropped whole,
so a compression can never cut a formula (the authors' keep@20% cuts formulas and multi-byte
characters, docs/method.md, "Stage 1"). Units are Python ``str`` slices, so a multi-byte character is
never split. Atoms, found by a small LaTeX scanner (control symbols such as ``\\$``, ``\\\\`` and
``\\{`` are skipped; braces and ``\\begin``/``\\end`` are balanced inside every region):

* math regions ``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``, line breaks allowed inside;
* every ``\\begin{X}..\\end{X}`` environment outside math (nested environments included);
* a text-mode command with brace arguments (``\\boxed{..}``, ``\\frac{1}{2}``, ``\\sqrt[3]{x}``)
  and a bare balanced ``{..}`` group;
* LaTeX atoms absorb the non-space characters glued to them (``$x$-axis``, ``$\\boxed{9}$.``);
* GSM8K calculator annotations ``<<48/2=24>>`` (glued to the result that follows them);
* plain-text equations and calculations: ``48/2 = 24``, ``3 × 4 = 12``, ``0.2 x 50``,
  ``48/2 = <<48/2=24>>24``: numbers joined by arithmetic or relation operators.

Currency (the GSM8K convention, as in Pandoc's ``tex_math_dollars``): a ``$`` followed by a
number or ``<<`` is a currency sign unless it closes on the same line, right after a non-space
character, not before a digit or ``<``, around math-like content (LaTeX markup, or no word of
two letters or more): ``$12 an hour and $15`` is prose, ``$3$`` and ``$2 + 3 = 5$`` are math.
Everything else is split on whitespace into words. Pure Python, no imports beyond ``re``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"(?:\d+(?:,\d{3})+|\d+)(?:\.\d+)?%?"
_ANNOT = r"<<[^<>\n]{1,200}>>"
# An operand: an optional currency sign, an optional calculator annotation, a number; or a
# one-letter variable; or a parenthesised group of numbers and operators. A number may carry one
# variable letter ("2S", "4x"): cutting "2 * 2S" to "2 * 2" would change its meaning.
_OPERAND = rf"(?:\$?(?:{_ANNOT})?\$?{_NUM}(?:[a-zA-Z](?![a-zA-Z]))?|\b[a-zA-Z]\b|\([\d \t.+\-*/×x÷^]+\))"
# Operators bind within a line only: a plain formula never spans a line break.
_OP = r"(?:[ \t]*(?:\*\*|[-+*/×÷·^=<>≤≥≠≈])[ \t]*|[ \t]+x[ \t]+)"
_PLAIN = rf"{_OPERAND}(?:{_OP}{_OPERAND})+"
# An annotation keeps the currency sign glued before it ("= $<<10*4=40>>40"): a lone "$" word
# would open math for a LaTeX reader of the compression.
_PLAIN_RE = re.compile(rf"(?P<plain>{_PLAIN})|(?P<annot>\$?{_ANNOT}(?:{_NUM})?)")
_WORD_RE = re.compile(r"\S+")
_CONTROL_WORD = re.compile(r"\\[A-Za-z@]+\*?")
_ENV_NAME = re.compile(r"\{([A-Za-z@*]+)\}")
_CURRENCY_LOOK = re.compile(r"[ \t]*(?:\d|\.\d|<<)")
_MARKUP = re.compile(r"[\\^_{}]")
_PROSE_WORD = re.compile(r"(?<![\w\\])[A-Za-z]{2,}\b")
_MATH_OPENERS = {"\\(": "\\)", "\\[": "\\]"}
_BARE_DOLLAR = re.compile(r"(?<!\\)\$")


@dataclass(frozen=True)
class Unit:
    """One selection unit: ``text == source[start:end]``; ``formula`` units are atomic."""

    text: str
    start: int
    end: int
    formula: bool


def _env_name(text: str, pos: int) -> tuple[str, int] | None:
    """``(name, end)`` of the ``{name}`` right at ``pos`` (after ``\\begin``/``\\end``)."""
    m = _ENV_NAME.match(text, pos)
    return (m.group(1), m.end()) if m else None


def _close(text: str, pos: int, closer: str) -> int | None:
    """End of the region whose body starts at ``pos`` and ends with ``closer`` at brace depth 0
    outside nested environments (``closer=""``: the body ends with the group's ``}``).
    ``None`` when the body never closes or is unbalanced."""
    depth, envs, n = 0, [], len(text)
    while pos < n:
        c = text[pos]
        if not depth and not envs and closer and text.startswith(closer, pos):
            return pos + len(closer)
        if c == "\\":
            word = _CONTROL_WORD.match(text, pos)
            if word is None:
                pos += 2  # control symbol: \$ \{ \} \\ \, ...
                continue
            pos = word.end()
            if word.group(0) in ("\\begin", "\\end"):
                env = _env_name(text, pos)
                if env is None:
                    continue
                if word.group(0) == "\\begin":
                    envs.append(env[0])
                elif not envs or envs.pop() != env[0]:
                    return None
                pos = env[1]
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return pos + 1 if closer == "" and not envs else None
        pos += 1
    return None


def _dollar_end(text: str, i: int) -> int | None:
    """End of the ``$``/``$$`` region opened at ``i``, or ``None`` when this ``$`` is prose."""
    if text.startswith("$$", i):
        return _close(text, i + 2, "$$")
    end = _close(text, i + 1, "$")
    if end is None or not _CURRENCY_LOOK.match(text, i + 1):
        return end
    body = text[i + 1:end - 1]
    after = text[end:end + 1]
    if "\n" in body or body[-1:].isspace() or after.isdigit() or after == "<":
        return None
    return end if _MARKUP.search(body) or not _PROSE_WORD.search(body) else None


def _command_end(text: str, i: int) -> int | None:
    """End of a text-mode construct starting with the backslash at ``i``, or ``None`` when it is
    part of a word (a control symbol, or a command without brace arguments)."""
    two = text[i:i + 2]
    if two in _MATH_OPENERS:
        return _close(text, i + 2, _MATH_OPENERS[two])
    word = _CONTROL_WORD.match(text, i)
    if word is None:
        return None
    if word.group(0) == "\\begin" and _env_name(text, word.end()):
        name, pos = _env_name(text, word.end())
        return _close(text, pos, f"\\end{{{name}}}")
    pos, end = word.end(), None
    while pos < len(text) and text[pos] in "[{":
        if text[pos] == "[":
            close = text.find("]", pos)
            if close < 0 or "\n" in text[pos:close]:
                break
            pos = close + 1
            continue
        group = _close(text, pos + 1, "")
        if group is None:
            break
        pos = end = group
    return end


def latex_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every top-level LaTeX region (math, environment, command with
    arguments, brace group), in order, before glue."""
    spans, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        end = None
        if c == "\\":
            end = _command_end(text, i)
            if end is None:
                word = _CONTROL_WORD.match(text, i)
                i = word.end() if word else i + 2
                continue
        elif c == "$":
            end = _dollar_end(text, i)
            if end is None and text.startswith("$$", i):
                i += 2
                continue
        elif c == "{":
            end = _close(text, i + 1, "")
        if end is None:
            i += 1
            continue
        spans.append((i, end))
        i = end
    return spans


def _glue(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Extend LaTeX spans over adjacent non-space characters and merge the ones that touch."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        floor = out[-1][1] if out else 0
        while s > floor and not text[s - 1].isspace():
            s -= 1
        while e < len(text) and not text[e].isspace():
            e += 1
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    return out


def _is_plain_formula(match: re.Match) -> bool:
    if match.group("annot"):
        return True
    # A plain match needs an operator between two numbers or an '=': "a - b" alone is prose.
    body = match.group("plain")
    return bool(re.search(r"\d", body)) and (bool(re.search(r"[=<>≤≥≠≈]", body)) or
                                             len(re.findall(r"\d+", body)) >= 2)


def formula_spans(text: str) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` of every atomic formula in ``text``, in order."""
    latex = _glue(text, latex_spans(text))
    spans, pos = list(latex), 0
    for s, e in [*latex, (len(text), len(text))]:
        for m in _PLAIN_RE.finditer(text, pos, s):
            if _is_plain_formula(m):
                spans.append(m.span())
        pos = e
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


def stray_dollars(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` (prose to the segmenter) holds a ``$`` that is not currency in
    ``text``: a LaTeX reader would take it as a math opener."""
    return any(not _CURRENCY_LOOK.match(text, m.end()) for m in _BARE_DOLLAR.finditer(text, start, end))


def formulas(text: str) -> list[str]:
    """The formula units of ``text``."""
    return [u.text for u in segment(text) if u.formula]
