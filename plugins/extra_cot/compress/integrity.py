"""Math integrity of a compression, checked by a parser other than the segmenter's.

``segment.py`` decides what the compressor may keep or drop; this module does not trust it. It
parses the compressed text with pylatexenc's ``LatexWalker`` in strict mode and reports:

* ``unbalanced: ...``: a ``$``/``$$``/``\\(``/``\\[`` without its closer, a ``\\begin{X}`` without
  its ``\\end{X}`` (or a mismatched one), or an unbalanced brace;
* ``not_in_source: ...``: a math region or environment that is not a verbatim substring of the
  source CoT (words dropped inside a display, two formulas fused into one).

Before parsing, currency dollars and ``%`` are neutralised (``%`` starts a LaTeX comment, but
GSM8K writes ``3.5%``). The currency convention is the GSM8K one (Pandoc's ``tex_math_dollars``
rule plus "math has no prose words"), written here again on purpose rather than imported.
A source that is itself not balanced LaTeX is compared in pylatexenc's tolerant mode (math
regions must still be verbatim). Pure function of two strings.
"""

from __future__ import annotations

import logging
import re

from pylatexenc.latexwalker import (
    LatexEnvironmentNode,
    LatexGroupNode,
    LatexMacroNode,
    LatexMathNode,
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


def _parse(text: str, tolerant: bool):
    nodes, _, _ = LatexWalker(neutralise(text), tolerant_parsing=tolerant).get_latex_nodes()
    return nodes


def _strict_error(text: str) -> str | None:
    try:
        _parse(text, tolerant=False)
    except LatexWalkerError as exc:
        return str(exc).splitlines()[0]
    return None


def math_problems(source: str, compressed: str) -> list[str]:
    """Why ``compressed`` holds a broken or invented math region (empty list = intact)."""
    problems = []
    error = _strict_error(compressed)
    tolerant = error is not None
    if error is not None:
        source_error = _strict_error(source)
        if source_error is None:
            problems.append(f"unbalanced: {error}")
        else:
            logger.debug("source is not balanced LaTeX (%s); checking verbatim regions only", source_error)
    try:
        nodes = _parse(compressed, tolerant=tolerant)
    except LatexWalkerError as exc:  # tolerant mode should not raise; report rather than pass
        return [*problems, f"unparsable: {str(exc).splitlines()[0]}"]
    for start, end in _regions(nodes, compressed):
        region = compressed[start:end]
        if region not in source:
            problems.append(f"not_in_source: {region[:80]!r}")
    return problems
