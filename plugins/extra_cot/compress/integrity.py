"""Math integrity of a compression, checked by a reader other than the segmenter's.

``segment.py`` decides what the compressor may keep or drop; this module does not trust it. It
reads source and compression with pylatexenc's ``LatexWalker`` (which pairs dollars the way TeX
does: each ``$`` toggles math) and then applies Pandoc's boundary test to every ``$..$`` node the
walker built: a node whose opener has a space right after it, whose closer has a space right
before it (unless it is one line whose body holds a LaTeX command and no other math), which spans a blank line, or whose closer is
followed by a digit or a ``<<`` annotation is not math; its opening ``$`` becomes a literal and the
text is walked again. The segmenter scans left to right with its own rules instead; where the two
disagree the gate rejects (the row is skipped with the reason, never written cut).

The regions of a text are its top-level math nodes, environments and GSM8K ``<<..>>``
annotations. The compression is aligned to the source in order: each output region must be the
next whole source region with the same text, and each other piece (a run of non-space
characters, or one character of an unspaced script) must lie in the source outside every region.
Problems, by name:

* ``not_in_source``: an output region that is no whole source region (two formulas fused, words
  dropped inside a display), or a piece found nowhere after the previous one;
* ``cut_region``: a piece found only inside a source region (``+ b = 5$``, a shredded ``align*``,
  ``<<3*4`` of an annotation): the rest of that region was dropped;
* ``unbalanced``: the compression does not parse strictly while its source does (a ``\\begin``
  without ``\\end``, an unclosed ``\\(`` or brace);
* ``math_fragment``: a command or special character outside regions (``\\cdot``, ``&``, ``^``) that
  the source uses only inside them;
* ``stray_dollar``: a literal ``$`` that lost the character after it (``$12`` cut to ``$``);
* ``markdown_unbalanced``: an odd number of code fences, or a line with an odd number of ``**``,
  where the source has none.

Before walking, unescaped ``%`` are blanked (``%`` starts a LaTeX comment, GSM8K writes
``3.5%``). Pure function of two strings.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
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

from extra_cot.compress.segment import UNSPACED  # a character class, not a math rule

logger = logging.getLogger(__name__)

_PERCENT = re.compile(r"(?<!\\)(?:\\\\)*(%)")
_ANNOTATION = re.compile(r"<<[^<>\n]*>>")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_AFTER_CLOSER = re.compile(r"\d|<<")
_PIECE = re.compile(rf"[{UNSPACED}]|[^\s{UNSPACED}]+")
_FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~)", re.MULTILINE)


@dataclass(frozen=True)
class Reading:
    """A text as the gate reads it: regions ``(start, end)`` in order, the marks used outside
    them, and the strict parse error (``None``: balanced)."""

    text: str
    regions: tuple[tuple[int, int], ...]
    marks: frozenset[str]
    error: str | None
    #: The regions' starts, for bisection (the alignment stays linear in the regions).
    starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(s for s, _ in self.regions))


def _walk(text: str, tolerant: bool):
    return LatexWalker(text, tolerant_parsing=tolerant).get_latex_nodes()[0]


def _text_mode_children(node):
    if isinstance(node, LatexGroupNode):
        return node.nodelist or ()
    if isinstance(node, LatexMacroNode) and node.nodeargd is not None:
        return node.nodeargd.argnlist or ()
    return ()


def _outside_math(nodes):
    """Every node outside math, in document order, text-mode groups and arguments included."""
    for node in nodes or ():
        if node is None:
            continue
        yield node
        if not isinstance(node, (LatexMathNode, LatexEnvironmentNode)):
            yield from _outside_math(_text_mode_children(node))


def _has_command(nodes) -> bool:
    for node in nodes or ():
        if isinstance(node, LatexMacroNode) and node.macroname.isalpha():
            return True
        if isinstance(node, (LatexGroupNode, LatexEnvironmentNode)) and _has_command(node.nodelist):
            return True
    return False


def _fallback(text: str, start: int, end: int, body) -> bool:
    """TeX's reading of a one-line ``$..$`` whose closer has a space before it: math when the
    body holds a command and no other math region (``$12 \\times 3 = 36 $``)."""
    nested = any(isinstance(n, (LatexMathNode, LatexEnvironmentNode)) for n in body or ())
    return "\n" not in text[start:end] and not nested and _has_command(body)


def _is_math(text: str, node: LatexMathNode) -> bool:
    """Pandoc's boundary test on a dollar node the walker built (module docstring)."""
    start, end = node.pos, node.pos + node.len
    delim = node.delimiters[0]
    if not text.endswith(delim, start + len(delim), end) or end - start <= 2 * len(delim):
        return False  # never closed (tolerant walk) or empty
    if delim == "$$":
        return True
    if text[start + 1].isspace() or _BLANK_LINE.search(text, start, end) or _AFTER_CLOSER.match(text, end):
        return False
    return not text[end - 2].isspace() or _fallback(text, start, end, node.nodelist)


def _first_literal_dollar(text: str, nodes) -> LatexMathNode | None:
    for node in _outside_math(nodes):
        if isinstance(node, LatexMathNode) and node.delimiters[0] in ("$", "$$") and not _is_math(text, node):
            return node
    return None


def _math_nodes(text: str):
    """Walk ``text`` until every dollar node passes the boundary test; returns the prepared text
    (literal dollars and ``%`` blanked, same length) and its nodes.

    Top-level nodes are read one at a time: a literal dollar blanked inside a node is re-read
    from that node's start, never the text before it (a re-walk of the whole text per literal
    dollar took 176 s on 57 KB of GSM8K solutions with 429 dollars; issue 37)."""
    chars = list(text)
    for m in _PERCENT.finditer(text):
        chars[m.start(1)] = " "
    prepared = "".join(chars)
    nodes, pos = [], 0
    walker = LatexWalker(prepared, tolerant_parsing=True)
    while pos < len(prepared):
        got, start, length = walker.get_latex_nodes(pos=pos, read_max_nodes=1)
        if not got or length <= 0:
            break
        bad = _first_literal_dollar(prepared, got)
        if bad is None:
            nodes.extend(got)
            pos = start + length
            continue
        width = len(bad.delimiters[0])
        prepared = prepared[:bad.pos] + " " * width + prepared[bad.pos + width:]
        walker = LatexWalker(prepared, tolerant_parsing=True)
    return prepared, nodes


def _marks(nodes) -> set[str]:
    """Commands, specials and ``^``/``_`` used outside math."""
    marks: set[str] = set()
    for node in _outside_math(nodes):
        if isinstance(node, LatexMacroNode):
            marks.add("\\" + node.macroname)
        elif isinstance(node, LatexSpecialsNode):
            marks.add(node.specials_chars)
        elif isinstance(node, LatexCharsNode):
            marks |= set(node.chars) & {"^", "_"}
    return marks


def read(text: str) -> Reading:
    """The gate's reading of ``text``."""
    prepared, nodes = _math_nodes(text)
    try:
        _walk(prepared, tolerant=False)
        error = None
    except LatexWalkerError as exc:
        error = str(exc).splitlines()[0]
    math = [(n.pos, n.pos + n.len) for n in _outside_math(nodes)
            if isinstance(n, (LatexMathNode, LatexEnvironmentNode))]
    annotations = [m.span() for m in _ANNOTATION.finditer(text)
                   if not any(s < m.end() and m.start() < e for s, e in math)]
    return Reading(text, tuple(sorted(math + annotations)), frozenset(_marks(nodes)), error)


@lru_cache(maxsize=64)  # one source is checked against every ratio's compression
def _source_reading(source: str) -> Reading:
    return read(source)


def _pieces(reading: Reading):
    """``(start, end, is_region)`` of the regions and the other pieces, in order."""
    pos, text = 0, reading.text
    for s, e in [*reading.regions, (len(text), len(text))]:
        yield from ((m.start(), m.end(), False) for m in _PIECE.finditer(text, pos, s))
        if s < e:
            yield s, e, True
        pos = e


def _placements(src: Reading, frag: str, pos: int):
    """Positions ``>= pos`` where ``frag`` lies in the source outside every region, in order."""
    starts = src.starts
    p = src.text.find(frag, pos)
    while p >= 0:
        k = bisect_right(starts, p + len(frag) - 1) - 1
        if k >= 0 and src.regions[k][1] > p:
            p = src.text.find(frag, max(p + 1, src.regions[k][1]))
            continue
        yield p
        p = src.text.find(frag, p + 1)


def _outside_regions(src: Reading, frag: str, pos: int, after: str | None) -> int | None:
    """The first position ``>= pos`` where ``frag`` lies in the source outside every region
    (placing each piece as early as possible finds an order alignment whenever one exists). A
    ``frag`` ending in a literal ``$`` must also be followed there by ``after`` (or both by a
    space or the end; ``None``: not checked): ``$12`` cut to ``$`` opens math for a TeX reader."""
    dollar = after is not None and frag.endswith("$") and not frag.endswith("\\$")

    def ok(p: int) -> bool:
        nxt = src.text[p + len(frag):p + len(frag) + 1]
        return not dollar or nxt == after or (nxt.strip() == "" and after.strip() == "")

    return next((p for p in _placements(src, frag, pos) if ok(p)), None)


def _next_region(src: Reading, frag: str, pos: int) -> int | None:
    """End of the first whole source region ``>= pos`` whose text is ``frag``."""
    for s, e in src.regions[bisect_left(src.starts, pos):]:
        if src.text[s:e] == frag:
            return e
    return None


def _miss_kind(src: Reading, frag: str, pos: int, is_region: bool) -> str:
    if is_region or frag not in src.text[pos:]:
        return "not_in_source"
    return "cut_region" if _outside_regions(src, frag, pos, None) is None else "stray_dollar"


def _align(src: Reading, out: Reading) -> list[str]:
    """Order alignment of the compression's pieces onto the source (module docstring)."""
    problems, pos = [], 0
    for s, e, is_region in _pieces(out):
        frag = out.text[s:e]
        if is_region:
            end = _next_region(src, frag, pos)
        else:
            p = _outside_regions(src, frag, pos, out.text[e:e + 1])
            end = None if p is None else p + len(frag)
        if end is None:
            problems.append(f"{_miss_kind(src, frag, pos, is_region)}: {frag[:80]!r}")
            continue
        pos = end
    return problems


def _markdown_problems(source: str, compressed: str) -> list[str]:
    problems = []
    if len(_FENCE_LINE.findall(compressed)) % 2 and not len(_FENCE_LINE.findall(source)) % 2:
        problems.append("markdown_unbalanced: code fence")
    odd = [line for line in compressed.splitlines() if line.count("**") % 2]
    if odd and not any(line.count("**") % 2 for line in source.splitlines()):
        problems.append(f"markdown_unbalanced: {odd[0][:80]!r}")
    return problems


def math_problems(source: str, compressed: str) -> list[str]:
    """Why ``compressed`` holds a cut, invented or shredded region of ``source`` (empty = intact)."""
    src = _source_reading(source)
    try:
        out = read(compressed)
    except LatexWalkerError as exc:  # tolerant mode should not raise; report rather than pass
        logger.warning("pylatexenc cannot read a compression even tolerantly: %.80r", compressed)
        return [f"unparsable: {str(exc).splitlines()[0]}"]
    problems = [f"unbalanced: {out.error}"] if out.error and src.error is None else []
    problems += _align(src, out)
    problems += [f"math_fragment: {m}" for m in sorted(out.marks - src.marks)]
    return problems + _markdown_problems(source, compressed)


def problem_kind(problem: str) -> str:
    """``cut_region`` of ``"cut_region: '+'"``: the name the skip log counts."""
    return problem.split(":", 1)[0]
