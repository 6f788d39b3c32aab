"""Decisive equations: the ones the answer depends on (the teacher rule "keep the decisive
intermediate steps; drop restatements, checks and dead ends", docs/method.md Stage 1) [R].

Walking the CoT backwards from the answer: an equation ``… = v`` is decisive when ``v`` is still
needed (the gold answer, or an operand of a later decisive equation); its operands become needed
and one need of ``v`` is satisfied. Needs are counted, not a set: ``6 + 6 = 12`` needs two
equations that give 6 when the trace has two (issue 36: a set marked one, and missed 8 of the
524 steps of 160 generated traces). A check (``11 + 9 = 20`` after ``20 - 9 = 11``), a restatement of an earlier
result and a dead end whose result is never used are therefore not decisive. Pure; no host import.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from extra_cot.compress.segment import Unit

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_ANNOTATION = re.compile(r"<<[^<>\n]*>>")
_SYMBOLS = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("÷", "/"), ("·", "*"), ("−", "-"),
            ("$", ""), (",", ""))
_TIMES_X = re.compile(r"(?<=[\d)])\s+x\s+(?=[\d(])")
_TOKEN = re.compile(r"\s*(\d*\.\d+|\d+(?:\.\d+)?|\*\*|[-+*/()^])")
_OPERATOR = re.compile(r"\d\s*(?:\*\*|[-+*/^])\s*[\d.(]")
_NOT_EQUALITY = re.compile(r"[<>≤≥≠≈]")
#: Largest power evaluated (``2^10``); a larger one is not judged.
_MAX_POWER = 12


def _tokens(expr: str) -> list[str] | None:
    out, pos = [], 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            return None
        out.append(m.group(1))
        pos = m.end()
    return out


def _parse(tokens: list[str]) -> Fraction | None:
    """Value of an arithmetic expression (numbers, ``+ - * / ^ **``, parentheses); ``None``
    when it is anything else or divides by zero."""
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> Fraction:
        tok = take() if peek() is not None else ""
        if tok in ("-", "+"):
            value = atom()
            return -value if tok == "-" else value
        if tok == "(":
            value = expr()
            if take() != ")":
                raise ValueError
            return value
        if not tok[:1].isdigit() and tok[:1] != ".":
            raise ValueError
        base = Fraction(tok)
        if peek() in ("^", "**"):
            take()
            power = atom()
            if power.denominator != 1 or abs(power) > _MAX_POWER:
                raise ValueError
            base = base ** int(power)
        return base

    def term() -> Fraction:
        value = atom()
        while peek() in ("*", "/"):
            op, right = take(), atom()
            value = value * right if op == "*" else value / right
        return value

    def expr() -> Fraction:
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take() == "+" else value - term()
        return value

    try:
        value = expr()
    except (ValueError, ZeroDivisionError, IndexError, OverflowError):
        return None
    return value if pos == len(tokens) else None


def _side(text: str) -> str:
    for a, b in _SYMBOLS:
        text = text.replace(a, b)
    return _TIMES_X.sub(" * ", text).strip().rstrip(".,;:!?").strip()


def _close(a: Fraction, b: Fraction, written: str) -> bool:
    """Equal, or within the rounding of a side written as a bare decimal (``10 / 3 = 3.33``)."""
    if a == b:
        return True
    m = re.fullmatch(r"-?\d+\.(\d+)", written)
    return m is not None and abs(a - b) <= Fraction(1, 2 * 10 ** len(m.group(1)))


def arithmetic_check(text: str) -> bool | None:
    """Whether the plain arithmetic of formula ``text`` holds: ``True``/``False``, or ``None`` when
    it is not a calculation of numbers alone (variables, percentages, inequalities, ``\\frac``, or
    no operator: ``5 = 9.00`` is a fragment, not a calculation). An equation with several ``=``
    is judged only when it holds (``a = b = c`` written as a running total, ``12 + 10 = 22 - 5 =
    17``, is common shorthand, not a dead end). A GSM8K calculator annotation ``<<18*.5=9>>`` is
    what is judged when the formula holds one: it is the calculation, the text around it may be
    cut by segmentation."""
    annotations = _ANNOTATION.findall(text)
    text = annotations[-1][2:-2] if annotations else text
    if "=" not in text or _NOT_EQUALITY.search(text):
        return None
    sides = [_side(part) for part in text.split("=")]
    if not any(_OPERATOR.search(side) for side in sides):
        return None
    tokens = [_tokens(side) for side in sides]
    if any(not t for t in tokens):
        return None
    values = [_parse(t) for t in tokens]
    if any(v is None for v in values):
        return None
    holds = all(_close(a, b, sides[k + 1]) or _close(b, a, sides[k]) for k, (a, b) in enumerate(itertools.pairwise(values)))
    return True if holds else (False if len(sides) == 2 else None)


def _lhs_key(text: str) -> str:
    return re.sub(r"\s+", "", _side(_ANNOTATION.sub("", text).split("=", 1)[0]))


def dead_ends(units: Sequence[Unit]) -> dict[int, int | None]:
    """Each formula unit whose arithmetic is wrong -> its correction: the first later formula with
    the same left-hand side whose arithmetic holds (``None``: never corrected)."""
    checks = [(i, arithmetic_check(u.text)) for i, u in enumerate(units) if u.formula and "=" in u.text]
    right: dict[str, list[int]] = {}
    for i, ok in checks:
        if ok:
            right.setdefault(_lhs_key(units[i].text), []).append(i)
    out = {}
    for i, ok in checks:
        if ok is False:
            later = right.get(_lhs_key(units[i].text), [])
            k = bisect_right(later, i)
            out[i] = later[k] if k < len(later) else None
    return out


def _norm(number: str) -> str:
    value = float(number.replace(",", ""))
    return str(int(value)) if value.is_integer() else repr(value)


def equation(text: str) -> tuple[list[str], str] | None:
    """(operands, result) of a formula ``lhs = rhs`` (the last ``=``; the first number after it)."""
    if "=" not in text:
        return None
    lhs, rhs = text.replace(",", "").rsplit("=", 1)
    result = _NUMBER.findall(rhs)
    if not result:
        return None
    return [_norm(n) for n in _NUMBER.findall(lhs)], _norm(result[0])


def decisive_units(units: Sequence[Unit], gold: str | None) -> set[int]:
    """Indices of the formula units the answer depends on (see module doc). Without a numeric
    gold, the last equation's result stands for the answer."""
    wrong = dead_ends(units)
    equations = [(i, eq) for i, u in enumerate(units)
                 if u.formula and i not in wrong and (eq := equation(u.text)) is not None]
    if not equations:
        return set()
    try:
        needed = Counter([_norm(gold)] if gold is not None else [])
    except ValueError:
        needed = Counter()
    if not needed:
        needed = Counter([equations[-1][1][1]])
    decisive = set()
    for i, (operands, result) in reversed(equations):
        if needed[result] > 0:
            decisive.add(i)
            needed[result] -= 1
            needed.update(operands)
    return decisive
