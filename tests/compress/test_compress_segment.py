"""Segmentation: formulas are atomic units; every formula of every output is from the source."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extra_cot.compress.integrity import math_problems
from extra_cot.compress.pipeline import CompressOptions, read_gsm8k, score_units
from extra_cot.compress.scorers import HeuristicScorer
from extra_cot.compress.segment import UNSPACED, formulas, segment
from extra_cot.compress.select import SelectOptions, compress_to_ratio, unit_token_counts

from .conftest import GSM8K_ROWS, LATEX_COT

RATIOS = (0.2, 0.4, 0.6, 0.8)


@pytest.mark.parametrize(("text", "expected"), [
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.", ["48/2 = <<48/2=24>>24"]),
    ("she earned 0.2 x 50 = $<<0.2*50=10>>10.", ["0.2 x 50 = $<<0.2*50=10>>10"]),
    ("so 3 × 4 = 12 and x = 5, but a - b is prose", ["3 × 4 = 12", "x = 5"]),
    ("costs $12 an hour and $15 a day", []),
    ("then $x^2 + 1$ and \\(a+b\\) and \\[c\\] and $$d = 1$$", ["$x^2 + 1$", "\\(a+b\\)", "\\[c\\]", "$$d = 1$$"]),
    ("thus \\boxed{\\frac{1}{2}}.", ["\\boxed{\\frac{1}{2}}."]),
    ("1,000 + 2.5% of 36,000", ["1,000 + 2.5%"]),
    ("14 *\n200 is not one formula", []),
    ("so it had 2 * 2S = <<2*2=4>>4S people", ["2 * 2S = <<2*2=4>>4S"]),
])
def test_formula_units(text, expected):
    assert formulas(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("from $20,000 and $30,000 on", []),  # Pandoc's own example: a closer before a digit
    ("costs 5$ each and x$ more", []),  # an opener needs a non-space after it
    ("so $x $ and", []),  # a closer needs a non-space before it
    ("so $a\n\nb$ and", []),  # a blank line ends the search
    ("so $x$5 and", []),
    ("it cost $5 in all=$<<5*1=5>>5 total", ["$<<5*1=5>>5"]),  # a closer before a GSM8K annotation
    ("$2 +\n3 = 5$ and", ["$2 +\n3 = 5$"]),  # one line break is fine
    ("so $3 apples + 5 apples = 8 apples$ here", ["$3 apples + 5 apples = 8 apples$"]),
    ("so $12 \\times 3 = 36 $ here", ["$12 \\times 3 = 36 $"]),  # fallback: a command inside
    ("so $12 \\times\n3 = 36 $ here", ["3 = 36"]),  # the fallback is one line only
    ("so $12 \\times 3 and \\(y\\) $ here", ["\\(y\\)"]),  # ... without other math inside
])
def test_pandoc_dollar_rule(text, expected):
    assert formulas(text) == expected


_ENV_TAG = re.compile(r"\\(begin|end)\{([^{}]*)\}")


def _mismatched_env(formula: str) -> str | None:
    """The first ``\\end{Y}`` closing a ``\\begin{X}`` with Y != X inside one atom (a plain
    stack over the tags, independent of the segmenter); ``None`` when every pair matches."""
    stack: list[str] = []
    for kind, name in _ENV_TAG.findall(formula):
        if kind == "begin":
            stack.append(name)
        elif stack and stack.pop() != name:
            return name
    return None


@pytest.mark.parametrize(("text", "matched"), [
    ("so \\begin{align} x = 1 \\end{equation} done", None),
    ("so \\begin{align} x = 1 \\end{align*} done", None),
    ("so \\begin{align} \\begin{cases} x \\end{matrix} \\end{align} done", None),
    ("so $\\begin{cases} x \\end{matrix}$ done", None),
    ("so \\(\\begin{cases} x \\end{matrix}\\) done", None),
    ("so \\boxed{\\begin{cases} x \\end{matrix}} done", None),
    # controls: the same text with the names matching is one atom
    ("so \\begin{align} x = 1 \\end{align} done", "\\begin{align} x = 1 \\end{align}"),
    ("so \\begin{align} \\begin{cases} x \\end{cases} \\end{align} done",
     "\\begin{align} \\begin{cases} x \\end{cases} \\end{align}"),
    ("so $\\begin{cases} x \\end{cases}$ done", "$\\begin{cases} x \\end{cases}$"),
])
def test_mismatched_environments_are_never_one_atom(text, matched):
    """``\\begin{X}..\\end{Y}`` is not an environment: no atom spans it (it is cut like text);
    with the names matching, the whole environment is one atom."""
    found = formulas(text)
    assert [f for f in found if _mismatched_env(f)] == []
    if matched is None:
        assert not any("\\begin" in f and "\\end" in f for f in found), found
    else:
        assert matched in found


def test_units_cover_text_exactly():
    for text in [LATEX_COT] + [r["answer"] for r in GSM8K_ROWS]:
        units = segment(text)
        assert all(text[u.start:u.end] == u.text for u in units)
        assert "".join("".join(u.text.split()) for u in units) == "".join(text.split())
        assert all(a.end <= b.start for a, b in itertools.pairwise(units))


def _compress_all(question, cot, gold, tokenizer, count):
    from extra_cot.compress.pipeline import Source

    src = Source(question, cot, "", gold)
    units, scores = score_units(src, HeuristicScorer(), CompressOptions())
    counts = unit_token_counts(cot, units, tokenizer)
    return [compress_to_ratio(cot, units, scores, counts, gold, r, count, SelectOptions()) for r in RATIOS]


def test_latex_heavy_text_keeps_formulas_verbatim(tiny_tokenizer, tiny_count):
    sels = _compress_all("Convert (0,3) to polar coordinates.", LATEX_COT, None, tiny_tokenizer, tiny_count)
    for sel in sels:
        assert math_problems(LATEX_COT, sel.text) == []
        assert "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}" in sel.text  # mandatory
    assert len(sels[0].text) < len(sels[-1].text) < len(LATEX_COT)


def test_gsm8k_train_formula_integrity(gsm8k_train_rows, tiny_tokenizer, tiny_count):
    checked = 0
    for n, row in enumerate(gsm8k_train_rows):
        src, _ = read_gsm8k(row, f"gsm8k_train:{n + 1}")
        for sel in _compress_all(src.question, src.cot, src.gold, tiny_tokenizer, tiny_count):
            assert math_problems(src.cot, sel.text) == [], (src.cot, sel.text)
            checked += 1
    assert checked == 4 * len(gsm8k_train_rows)


_WORDS = st.sampled_from(["the", "total", "is", "so", "we", "get", "apples", "ünï", "日本", "≤", "—", ".", ",",
                          "+", "-", "*", "=", "x", "7", "12", "$3", "(", ")", "\n", "wait,", "hence"])
_FORMULAS = st.sampled_from(["48/2 = <<48/2=24>>24", "3 × 4 = 12", "$x^2 + 1$", "\\(a+b\\)", "$$y = 2$$",
                             "\\[ z \\ne 0 \\]", "0.2 x 50 = $<<0.2*50=10>>10", "\\boxed{\\frac{1}{2}}", "7 + 5 = 12"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(_WORDS, _FORMULAS), min_size=1, max_size=60), st.sampled_from(RATIOS))
def test_property_every_output_formula_is_from_source(tiny_tokenizer, tiny_count, pieces, ratio):
    cot = " ".join(pieces)
    units = segment(cot)
    assert all(cot[u.start:u.end] == u.text for u in units)
    sel = _compress_all("How many apples are left?", cot, None, tiny_tokenizer, tiny_count)[RATIOS.index(ratio)]
    assert math_problems(cot, sel.text) == []
    # kept text is made of source units only: multi-byte characters are never cut (CJK characters
    # are units of their own and join without a space, so the words are split there too)
    assert all(w in cot for w in re.findall(f"[{UNSPACED}]|[^\\s{UNSPACED}]+", sel.text))


# --- _command_end pinned exactly (the mutation run judges it; docs/mutation.md) ---

@pytest.mark.parametrize("text,i,end", [
    (r"\(x\) y", 0, 5),
    (r"\(\)y\)", 0, 4),  # the body starts right after the opener
    (r"\[a\]", 0, 5),
    (r"\textbf{abc} rest", 0, 12),  # a command with a group, not an environment
    (r"\frac{{a}b}{c} x", 0, 14),  # a group whose body starts with a brace
    (r"\section[short]{Long} x", 0, 21),  # optional argument, then the group
    (r"\section[a]{B} see [1]", 0, 14),  # the first ']' closes the option, not the last
    (r"x] \section[a]{B}", 3, 17),  # a ']' before the command is not its option's end
    ("\\foo[a\nb]{c}", 0, None),  # an option never spans lines
    (r"\foo[a]", 0, None),  # options only: no group, part of a word
    (r"\foo{a}[b", 0, 7),  # an unclosed option after a group keeps the group
    (r"\foo{a}{b", 0, 7),  # an unclosed second group keeps the first
    (r"\foo{a}[b]{c} z", 0, 13),
    ("{a} \\foo[x{y}", 4, None),  # an unclosed option ends the command
    (r"\begin x", 0, None),  # \begin without {name} is not an environment
    (r"\begin{align}a\end{align} b", 0, 25),
    (r"\begin{a}x\end{b}", 0, None),
    (r"\alpha beta", 0, None),
    (r"\, x", 0, None),
    (r"\foo*X} y", 0, None),  # only '[' and '{' open arguments
])
def test_command_end_exact(text, i, end):
    from extra_cot.compress.segment import _command_end

    assert _command_end(text, i) == end


@pytest.mark.parametrize("text,pos,expected", [("ab\ncd\n  x", 8, True), ("a\nb c", 4, False), ("ab", 1, False),
                                               ("a\n x", 3, True), ("x", 0, True), ("  x", 2, True),
                                               ("a\n\n", 3, True), (" \tq", 2, True),
                                               ("a b\nc", 2, False)])  # a newline after pos does not count
def test_line_start(text, pos, expected):
    from extra_cot.compress.segment import _line_start

    assert _line_start(text, pos) is expected


@pytest.mark.parametrize("text,units", [
    ("- a b\n1. c\n  2) d", [("- a", False), ("b", False), ("1. c", False), ("2) d", False)]),
    ("x - a", [("x", False), ("-", False), ("a", False)]),  # not at a line start
    ("-\na", [("-", False), ("a", False)]),  # the marker's line ends before the next unit
    ("+ $x$ y", [("+ $x$", True), ("y", False)]),  # the joined unit is a formula if its tail is
    ("1000. a", [("1000.", False), ("a", False)]),  # up to three digits
    ("* b", [("* b", False)]),
    ("no. 1. x", [("no.", False), ("1.", False), ("x", False)]),
    ("12) z\n- - w", [("12) z", False), ("- -", False), ("w", False)]),
])
def test_list_markers_join_the_next_unit(text, units):
    got = segment(text)
    assert [(u.text, u.formula) for u in got] == units
    assert all(text[u.start:u.end] == u.text for u in got)


# --- the scanner's edge cases, pinned exactly (docs/mutation.md lists what each one guards) ---

@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("so $a\\,$ b", ["$a\\,$"], id="control-symbol-inside-math-is-two-chars"),
    pytest.param("so $\\begin x$ b", ["$\\begin x$"], id="begin-without-name-is-a-plain-command"),
    pytest.param("so $a}b$ c", [], id="unbalanced-brace-in-math-is-no-region"),
    pytest.param("so $x^{{2}} = 4$ b", ["$x^{{2}} = 4$"], id="nested-braces-count-their-depth"),
    pytest.param("so $$\\{x\\}$$ ok", ["$$\\{x\\}$$"], id="display-body-starts-after-both-dollars"),
    pytest.param("it is 5$", [], id="dollar-as-last-char-is-literal"),
    pytest.param("pay $\\$ now", [], id="escaped-dollar-is-no-closer"),
    pytest.param("so $x$ and\n\nmore", ["$x$"], id="blank-line-after-closer-does-not-count"),
    pytest.param("$\\alpha $ is", ["$\\alpha $"], id="fallback-pair-at-text-start"),
    pytest.param("so $\\alpha $ here", ["$\\alpha $"], id="fallback-command-right-after-opener"),
    pytest.param("so $\\alpha $\nnext", ["$\\alpha $"], id="fallback-pair-before-line-break"),
    pytest.param("so $\\alpha\n$ here", [], id="fallback-needs-one-line"),
    pytest.param("so $$a$ b", [], id="unclosed-display-is-skipped-whole"),
    pytest.param("so \\,$x$ y", ["\\,$x$"], id="control-symbol-before-math-glues"),
    pytest.param("\\$x$ y", [], id="escaped-dollar-opens-nothing"),
])
def test_math_region_edges(text, expected):
    """A math region is read by Pandoc's dollar rule with LaTeX control symbols (``\\,``,
    ``\\$``, ``\\{``) skipped as two characters; what is not a region is plain text."""
    assert formulas(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("so {a} b", ["{a}"], id="bare-group-is-an-atom"),
    pytest.param("so {} b", ["{}"], id="empty-group-is-an-atom"),
    pytest.param("so x} y", [], id="stray-closing-brace-is-text"),
])
def test_brace_groups(text, expected):
    """A balanced ``{..}`` group outside math is one atom; a lone ``}`` opens nothing."""
    assert formulas(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("run `$x$` now", [], id="math-inside-inline-code-is-not-read"),
    pytest.param("run `x` now", [], id="code-span-is-no-formula"),
    pytest.param("`x` $y$", ["$y$"], id="math-after-code-is-read"),
    pytest.param("so $a `b$ c` d", [], id="region-ending-inside-code-is-no-region"),
])
def test_code_is_not_read_as_latex(text, expected):
    """Code (inline or fenced) is an atom of its own; no math is read inside it."""
    assert formulas(text) == expected


def test_latex_spans_skip_ends_inside_a_double_dollar():
    """A skip span ends the scan's view of the text it covers, not one step more: the ``$`` right
    after it opens a region even when the skipped character was a ``$`` too."""
    from extra_cot.compress.segment import latex_spans

    assert latex_spans("$$x$", [(0, 1)]) == [(1, 4)]
    assert latex_spans("$$x$") == []


def test_two_bare_commands_terminate():
    """A text that starts with a bare control word and holds another one is scanned forward
    (a bound of 5 s: the scan is microseconds, a backward step loops forever)."""
    import signal

    def _timeout(*_):
        raise TimeoutError("latex scan did not terminate")

    old = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        assert formulas("\\alpha and \\beta") == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("($x$)", ["($x$)"], id="glue-both-sides-at-text-start"),
    pytest.param("a ($x$)", ["($x$)"], id="glue-stops-at-space-on-the-left"),
    pytest.param("$x$, y", ["$x$,"], id="glue-stops-at-space-on-the-right"),
    pytest.param("$a$-$b$", ["$a$-$b$"], id="touching-atoms-merge"),
])
def test_glue(text, expected):
    """A LaTeX atom absorbs the non-space characters next to it; atoms glued together are one."""
    assert formulas(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("so x = y here", [], id="equation-without-a-digit-is-prose"),
    pytest.param("add 2 + 3 more", ["2 + 3"], id="two-numbers-make-a-calculation"),
    pytest.param("2 + 3 = 5 and $x$", ["2 + 3 = 5", "$x$"], id="plain-before-latex-kept"),
    pytest.param("so 2 + $1$ x", ["$1$"], id="plain-stops-at-latex"),
])
def test_plain_formula_edges(text, expected):
    """A plain formula needs a digit, and an ``=`` (or a relation) or two numbers; it is read
    only between LaTeX atoms."""
    assert formulas(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("**Answer:**2 + 3 = 5", ["2 + 3 = 5"], id="touching-bold-stays-apart"),
    pytest.param("**so $x$** now", ["**so $x$**"], id="bold-overlapping-math-is-one-formula"),
    pytest.param("**bold** text", [], id="bold-alone-is-no-formula"),
])
def test_bold_atoms(text, expected):
    """Bold is one atom; it is a formula only when it overlaps one (overlaps merge, touching
    atoms do not)."""
    assert formulas(text) == expected


@pytest.mark.parametrize(("text", "units"), [
    pytest.param("**two words** x", ["**two words**", "x"], id="bold-is-one-unit"),
    pytest.param("**a b**", ["**a b**"], id="bold-alone"),
    pytest.param("`x`**y z**", ["`x`", "**y z**"], id="bold-right-after-code"),
    pytest.param("run `a b` now", ["run", "`a b`", "now"], id="code-is-one-unit"),
])
def test_bold_and_code_units(text, units):
    assert [u.text for u in segment(text)] == units
