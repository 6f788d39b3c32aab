"""Segmentation of a chain of thought into selection units: words and atoms.

This module is the one place that decides what a formula is. A unit is kept or dropped whole,
so a compression can never cut a formula (the authors' keep@20% cuts formulas and multi-byte
characters, docs/method.md, "Stage 1"). Units are Python ``str`` slices, so a multi-byte character is
never split. Atoms, found by a small LaTeX scanner (control symbols such as ``\\$``, ``\\\\`` and
``\\{`` are skipped; braces and ``\\begin``/``\\end`` are balanced inside every region):

* math regions ``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``, line breaks allowed inside;
* every ``\\begin{X}..\\end{X}`` environment outside math (nested environments included);
* a text-mode command with brace arguments (``\\boxed{..}``, ``\\frac{1}{2}``, ``\\sqrt[3]{x}``)
  and a bare balanced ``{..}`` group;
* LaTeX atoms absorb the non-space characters glued to them (``$x$-axis``, ``$\\boxed{9}$.``),
  but never a character of an unspaced script (CJK: ``因此$x=2$的值`` keeps ``的``, ``值`` apart);
* GSM8K calculator annotations ``<<48/2=24>>`` (glued to the result that follows them);
* plain-text equations and calculations: ``48/2 = 24``, ``3 × 4 = 12``, ``0.2 x 50``,
  ``48/2 = <<48/2=24>>24``: numbers joined by arithmetic or relation operators;
* markdown: a fenced code block, an inline code span, a ``**bold**`` span (one line), and a list
  marker (``- ``, ``1. ``) together with the unit after it: never left unbalanced or stranded.

Dollars follow Pandoc's ``tex_math_dollars`` rule: an opening ``$`` has a non-space character
right after it; the first ``$`` after it closes the region if it has a non-space character right
before it and no digit (nor a GSM8K ``<<`` annotation) right after it; a blank line ends the
search. Otherwise the ``$`` is a literal (currency: ``$12 an hour and $15``, ``5$ each``).
Fallback, for LaTeX that Pandoc would print literally: a one-line pair that fails only the
"non-space before the closer" test is still one math atom when its body holds a LaTeX command
and no other math region (``$12 \\times 3 = 36 $``): kept or dropped whole, whichever way a
reader takes it.
Everything else is split on whitespace into words, and unspaced scripts into one unit per
character. Pure Python, no imports beyond ``re``.
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
#: Characters of scripts written without spaces between words (CJK ideographs, kana, CJK and
#: fullwidth punctuation): each is its own word unit. Hangul is spaced and stays in words.
UNSPACED = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_UNSPACED_RE = re.compile(f"[{UNSPACED}]")
_WORD_RE = re.compile(rf"[{UNSPACED}]|[^\s{UNSPACED}]+")
_CONTROL_WORD = re.compile(r"\\[A-Za-z@]+\*?")
_ENV_NAME = re.compile(r"\{([A-Za-z@*]+)\}")
_MATH_OPENERS = {"\\(": "\\)", "\\[": "\\]"}
# Pandoc: a closing '$' must not be followed by a digit ("$20,000 and $30,000"); GSM8K writes a
# calculator annotation where the number goes ("= $<<10*4=40>>40").
_NOT_AFTER_CLOSER = re.compile(r"\d|<<")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_NESTED_MATH = re.compile(r"\\[(\[]|\\begin\b")
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_BOLD = re.compile(r"\*\*(?=\S)[^\n]*?(?<=\S)\*\*")
_LIST_MARKER = re.compile(r"[-*+]|\d{1,3}[.)]")


@dataclass(frozen=True)
class Unit:
    """One selection unit: ``text == source[start:end]``; ``formula`` units hold math."""

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
    """End of the ``$``/``$$`` region opened at ``i`` (Pandoc's rule and the command fallback,
    module docstring), or ``None`` when this ``$`` is a literal."""
    if text.startswith("$$", i):
        return _close(text, i + 2, "$$")
    if i + 1 >= len(text) or text[i + 1].isspace():
        return None
    end = _close(text, i + 1, "$")
    if end is None or _NOT_AFTER_CLOSER.match(text, end) or _BLANK_LINE.search(text, i, end):
        return None
    if not text[end - 2].isspace():
        return end
    body = text[i + 1:end - 1]
    return end if "\n" not in body and _CONTROL_WORD.search(body) and not _NESTED_MATH.search(body) else None


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


def _region_end(text: str, i: int) -> int | None:
    c = text[i]
    if c == "\\":
        return _command_end(text, i)
    if c == "$":
        return _dollar_end(text, i)
    return _close(text, i + 1, "") if c == "{" else None


def latex_spans(text: str, skip: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of every top-level LaTeX region (math, environment, command with
    arguments, brace group), in order, before glue; the ``skip`` spans (code) are not read."""
    spans, i, n = [], 0, len(text)
    skips = iter(sorted(skip or ()))
    nxt = next(skips, (n, n))
    while i < n:
        if i >= nxt[0]:
            i, nxt = max(i, nxt[1]), next(skips, (n, n))
            continue
        end = _region_end(text, i)
        if end is None or end > nxt[0]:
            word = _CONTROL_WORD.match(text, i) if text[i] == "\\" else None
            i = word.end() if word else i + (2 if text.startswith(("$$", "\\"), i) else 1)
            continue
        spans.append((i, end))
        i = end
    return spans


def _glued(c: str) -> bool:
    """Whether a LaTeX atom absorbs ``c`` next to it (``$x$-axis``); never a space or CJK."""
    return not c.isspace() and not _UNSPACED_RE.match(c)


def _glue(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Extend LaTeX spans over adjacent non-space characters of spaced scripts and merge the
    ones that touch."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        floor = out[-1][1] if out else 0
        while s > floor and _glued(text[s - 1]):
            s -= 1
        while e < len(text) and _glued(text[e]):
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


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Fenced code blocks and inline code spans (no math is read inside code)."""
    fences = [m.span() for m in _FENCE.finditer(text)]
    inline = [m.span() for m in _INLINE_CODE.finditer(text) if not any(s <= m.start() < e for s, e in fences)]
    return sorted(fences + inline)


def _merge(spans: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
    """Overlapping spans merged into one; the merged span is a formula if any part was."""
    out: list[tuple[int, int, bool]] = []
    for s, e, f in sorted(spans):
        if out and s < out[-1][1]:
            ps, pe, pf = out[-1]
            out[-1] = (ps, max(pe, e), pf or f)
        else:
            out.append((s, e, f))
    return out


def atom_spans(text: str) -> list[tuple[int, int, bool]]:
    """Non-overlapping ``(start, end, is_formula)`` of every atom of ``text``, in order: LaTeX,
    plain formulas and annotations (formulas), code and bold spans (formulas if they hold one)."""
    code = _code_spans(text)
    hard = _merge([(s, e, False) for s, e in code] + [(s, e, True) for s, e in _glue(text, latex_spans(text, code))])
    plain, pos = [], 0
    for s, e, _ in [*hard, (len(text), len(text), False)]:
        plain += [(*m.span(), True) for m in _PLAIN_RE.finditer(text, pos, s) if _is_plain_formula(m)]
        pos = e
    bold = [(*m.span(), False) for m in _BOLD.finditer(text) if not any(s <= m.start() < e for s, e in code)]
    return _merge(hard + plain + bold)


def formula_spans(text: str) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` of every atom holding math, in order."""
    return [(s, e) for s, e, formula in atom_spans(text) if formula]


def _words(text: str, start: int, end: int) -> list[Unit]:
    return [Unit(m.group(0), m.start(), m.end(), False) for m in _WORD_RE.finditer(text, start, end)]


def _line_start(text: str, pos: int) -> bool:
    return text[text.rfind("\n", 0, pos) + 1:pos].strip() == ""


def _attach_list_markers(text: str, units: list[Unit]) -> list[Unit]:
    """A list marker at the start of a line becomes one unit with the unit after it."""
    out: list[Unit] = []
    for u in units:
        prev = out[-1] if out else None
        if (prev is not None and not prev.formula and _LIST_MARKER.fullmatch(prev.text)
                and _line_start(text, prev.start) and "\n" not in text[prev.end:u.start]):
            out[-1] = Unit(text[prev.start:u.end], prev.start, u.end, u.formula)
        else:
            out.append(u)
    return out


def segment(text: str) -> list[Unit]:
    """Split ``text`` into units covering every non-space character exactly once."""
    units: list[Unit] = []
    pos = 0
    for s, e, formula in atom_spans(text):
        units.extend(_words(text, pos, s))
        units.append(Unit(text[s:e], s, e, formula))
        pos = e
    units.extend(_words(text, pos, len(text)))
    return _attach_list_markers(text, units)


def formulas(text: str) -> list[str]:
    """The formula atoms of ``text`` (list markers not attached: what a compression can hold)."""
    return [text[s:e] for s, e in formula_spans(text)]
