"""Math integrity of a compression, checked by a parser other than the segmenter's.

``segment.py`` decides what the compressor may keep or drop; this module does not trust it. It
parses the compressed text with pylatexenc's ``LatexWalker`` in strict mode and reports:

* ``unbalanced: ...``: a ``$``/``$$``/``\\(``/``\\[`` without its closer, a ``\\begin{X}`` without
  its ``\\end{X}`` (or a mismatched one), or an unbalanced brace;
* ``not_in_source: ...``: a math region or environment that is not a verbatim substring of the
  source CoT (words dropped inside a display, two formulas fused into one);
* ``math_fragment: ...``: a command or special character (``\\cdot``, ``&``, ``^``) outside math
  that the source only uses inside math: the pieces of a shredded ``align*`` kept as prose.

Before parsing, currency dollars and ``%`` are neutralised (``%`` starts a LaTeX comment, but
GSM8K writes ``3.5%``). The currency convention is the GSM8K one (Pandoc's ``tex_math_dollars``
rule plus "math has no prose words"), written here again on purpose rather than imported.
A source that is itself not balanced LaTeX is compared in pylatexenc's tolerant mode (math
regions must still be verbatim). Pure function of two strings.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from pylatexenc.latexwalker import (
    LatexCharsNode,
    LatexEnvironmentNode,
    LatexGroupNode,
    LatexMacroNode,
    LatexMathNode,
    LatexSpecialsNode,
    LatexWalker,
    LatexWalkerError,
)

logger = logging.getLogger(__name__)

# An unescaped dollar (even run of backslashes before it) or an unescaped percent sign.
_DOLLAR = re.compile(r"(?<!\\)(?:\\\\)*(\$\$?)")
_PERCENT = re.compile(r"(?<!\\)(?:\\\\)*(%)")
_LOOKS_LIKE_MONEY = re.compile(r"\$[ \t]*(?:\d|\.\d|<<)")
_LATEX_MARKUP = re.compile(r"[\\^_{}]")
_ENGLISH_WORD = re.compile(r"(?<![\w\\])[A-Za-z]{2,}\b")


def _is_math_pair(text: str, open_at: int, close_at: int | None) -> bool:
    """Whether a money-looking ``$`` at ``open_at`` and the next ``$`` at ``close_at`` enclose math."""
    if close_at is None:
        return False
    inside = text[open_at + 1:close_at]
    following = text[close_at + 1:close_at + 2]
    if "\n" in inside or inside[-1:] in (" ", "\t") or following.isdigit() or following == "<":
        return False
    return bool(_LATEX_MARKUP.search(inside)) or _ENGLISH_WORD.search(inside) is None


def neutralise(text: str) -> str:
    """``text`` of the same length with currency dollars and comment signs blanked."""
    chars = list(text)
    for m in _PERCENT.finditer(text):
        chars[m.start(1)] = " "
    marks = [(m.start(1), m.group(1)) for m in _DOLLAR.finditer(text)]
    k = 0
    while k < len(marks):
        at, mark = marks[k]
        nxt = next((j for j in range(k + 1, len(marks)) if marks[j][1] == mark), None)
        money = mark == "$" and _LOOKS_LIKE_MONEY.match(text, at) is not None
        if money and not _is_math_pair(text, at, marks[nxt][0] if nxt is not None else None):
            chars[at] = " "
            k += 1
            continue
        k = (nxt + 1) if nxt is not None else k + 1
    return "".join(chars)


def _regions(nodes, text: str):
    """Math and environment nodes outside math, as ``(start, end)``; text-mode groups and
    command arguments are searched too (``\\textbf{$x$}``)."""
    for node in nodes or ():
        if node is None:
            continue
        if isinstance(node, (LatexMathNode, LatexEnvironmentNode)):
            yield node.pos, node.pos + node.len
        elif isinstance(node, LatexGroupNode):
            yield from _regions(node.nodelist, text)
        elif isinstance(node, LatexMacroNode) and node.nodeargd is not None:
            yield from _regions(node.nodeargd.argnlist, text)


def _text_mode_marks(nodes) -> set[str]:
    """Commands, specials and ``^``/``_`` used outside math (inside math regions not searched)."""
    marks: set[str] = set()
    for node in nodes or ():
        if node is None or isinstance(node, (LatexMathNode, LatexEnvironmentNode)):
            continue
        if isinstance(node, LatexMacroNode):
            marks.add("\\" + node.macroname)
            if node.nodeargd is not None:
                marks |= _text_mode_marks(node.nodeargd.argnlist)
        elif isinstance(node, LatexGroupNode):
            marks |= _text_mode_marks(node.nodelist)
        elif isinstance(node, LatexSpecialsNode):
            marks.add(node.specials_chars)
        elif isinstance(node, LatexCharsNode):
            marks |= set(node.chars) & {"^", "_"}
    return marks


def _parse(text: str, tolerant: bool):
    nodes, _, _ = LatexWalker(neutralise(text), tolerant_parsing=tolerant).get_latex_nodes()
    return nodes


@lru_cache(maxsize=64)  # one source is checked against every ratio's compression
def _source_view(source: str) -> tuple[str | None, frozenset[str]]:
    """The source's strict-parse error (``None``: balanced) and its text-mode marks."""
    try:
        return None, frozenset(_text_mode_marks(_parse(source, tolerant=False)))
    except LatexWalkerError as exc:
        error = str(exc).splitlines()[0]
    try:
        return error, frozenset(_text_mode_marks(_parse(source, tolerant=True)))
    except LatexWalkerError:  # tolerant mode should not raise; then nothing is allowed
        logger.warning("pylatexenc cannot parse the source even tolerantly: %.80r", source)
        return error, frozenset()


def math_problems(source: str, compressed: str) -> list[str]:
    """Why ``compressed`` holds a broken, invented or shredded math region (empty = intact)."""
    source_error, source_marks = _source_view(source)
    problems = []
    try:
        nodes = _parse(compressed, tolerant=False)
    except LatexWalkerError as exc:
        if source_error is None:
            problems.append(f"unbalanced: {str(exc).splitlines()[0]}")
        else:
            logger.debug("source is not balanced LaTeX (%s); checking verbatim regions only", source_error)
        try:
            nodes = _parse(compressed, tolerant=True)
        except LatexWalkerError as exc2:  # tolerant mode should not raise; report rather than pass
            return [*problems, f"unparsable: {str(exc2).splitlines()[0]}"]
    for start, end in _regions(nodes, compressed):
        region = compressed[start:end]
        if region not in source:
            problems.append(f"not_in_source: {region[:80]!r}")
    problems += [f"math_fragment: {m}" for m in sorted(_text_mode_marks(nodes) - source_marks)]
    return problems
