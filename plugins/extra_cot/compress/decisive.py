"""Decisive equations: the ones the answer depends on (the teacher rule "keep the decisive
intermediate steps; drop restatements, checks and dead ends", docs/method.md Stage 1) [R].

Walking the CoT backwards from the answer: an equation ``… = v`` is decisive when ``v`` is still
needed (the gold answer, or an operand of a later decisive equation); its operands become needed
and ``v`` is satisfied. A check (``11 + 9 = 20`` after ``20 - 9 = 11``), a restatement of an earlier
result and a dead end whose result is never used are therefore not decisive. Pure; no host import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from extra_cot.compress.segment import Unit

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


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
    equations = [(i, eq) for i, u in enumerate(units) if u.formula and (eq := equation(u.text)) is not None]
    if not equations:
        return set()
    try:
        needed = {_norm(gold)} if gold is not None else set()
    except ValueError:
        needed = set()
    if not needed:
        needed = {equations[-1][1][1]}
    decisive = set()
    for i, (operands, result) in reversed(equations):
        if result in needed:
            decisive.add(i)
            needed.discard(result)
            needed.update(operands)
    return decisive
