"""Seeded multi-step arithmetic word problems with varied, human-like reasoning traces.

Each problem is a GSM8K-shaped row ``{"question", "answer"}`` (one ``<<a*b=c>>`` annotated line per
equation and a final ``#### N``, so every GSM8K reader of the project reads it) plus a reasoning
trace for Stage 1: ``{"question", "response": "<think>\\n{cot}</think>\\n\\n{final}", "gold",
"grade"}`` (``extra-cot compress --input-format responses``).

``grade`` is the number of operations the question asks for (1 = one change of the running
total, ``max_steps`` = the hardest); accuracy and the smallest sufficient ratio γ* are reported by it.

The trace is not a template: every part is drawn from several phrasings filled with the
problem's own names, items and numbers, and its shape varies from trace to trace, independently
of the step count:

* a per-trace *verbosity* (terse / plain / chatty) sets how many asides surround each step;
* an opener, a restatement of the question, a plan, a recap and a double check are each optional;
* a step can carry a check (``c - b = a``) or a dead end that is caught and corrected
  (``a + b = c+10``? no: ``a + b = c``), as sampled reasoning does;
* sentences name the problem's people, items and numbers, so no sentence repeats across most traces
  (``trace_stats`` measures the share of traces that hold the most frequent sentence).

Pure Python, no host import.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

NAMES = ("Mia", "Liam", "Ava", "Noah", "Emma", "Omar", "Zoe", "Ravi", "Lena", "Kofi", "Sara", "Ben", "Yuki",
         "Diego", "Amara", "Tom", "Ines", "Hugo", "Nadia", "Felix")
SHE = {"Mia", "Ava", "Emma", "Zoe", "Lena", "Sara", "Yuki", "Amara", "Ines", "Nadia"}
ITEMS = (("marbles", "bags"), ("stickers", "packs"), ("apples", "baskets"), ("pencils", "boxes"),
         ("cookies", "trays"), ("cards", "decks"), ("shells", "jars"), ("books", "shelves"),
         ("stamps", "albums"), ("beads", "strings"), ("eggs", "cartons"), ("coins", "purses"))
FRIENDS = ("a friend", "a cousin", "a neighbour", "the teacher", "a classmate", "a little brother", "an aunt",
           "the coach")


@dataclass(frozen=True)
class Step:
    """One equation of the solution: its question clause (empty for a helper equation), the
    equation (GSM8K calculator syntax, e.g. ``3*5=15``), its result and what changed."""

    clause: str
    equation: str
    result: int
    what: str  # short description for narration, e.g. "the 3 bags of 5"


@dataclass(frozen=True)
class ProblemOptions:
    """Sizes: ``min_steps``..``max_steps`` operations (the grade) after a start value in
    ``5..max_start``; a purchase is ``2..max_factor-1`` boxes of ``2..max_factor`` items; finds and
    gifts move at most ``max_add`` items. Defaults: grades 1-4 with one-digit inputs, so a 135M
    model can solve the easy grades and fails more as the grade rises [R] (docs/study.md: with
    inputs up to 20 the first-pass SmolLM2 model solved 13 % of the policy split at 0.2-0.6)."""

    min_steps: int = 1
    max_steps: int = 4
    max_start: int = 9
    max_factor: int = 5
    max_add: int = 9

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps <= 6:
            raise ValueError(f"need 1 <= min_steps <= max_steps <= 6, got {self.min_steps}, {self.max_steps}")
        if self.max_start < 5:
            raise ValueError(f"max_start must be >= 5, got {self.max_start}")
        if self.max_factor < 3 or self.max_add < 2:
            raise ValueError(f"need max_factor >= 3 and max_add >= 2, got {self.max_factor}, {self.max_add}")


# --- question clauses and equations, several phrasings each -------------------------------------------------


def _buy(rng, total, p, o):
    k, m = rng.randint(2, max(2, o.max_factor - 1)), rng.randint(2, o.max_factor)
    got = k * m
    clause = rng.choice((f"{p['he']} buys {k} {p['box']} with {m} {p['item']} in each",
                         f"{p['he']} gets {k} {p['box']} that hold {m} {p['item']} each",
                         f"{p['he']} picks up {k} more {p['box']}, each with {m} {p['item']} inside"))
    return [Step(clause, f"{k}*{m}={got}", got, f"{k} {p['box']} of {m}"),
            Step("", f"{total}+{got}={total + got}", total + got, f"the {got} new {p['item']}")]


def _give(rng, total, p, o):
    g = rng.randint(2, max(2, min(total - 2, o.max_add)))
    clause = rng.choice((f"{p['he']} gives {g} {p['item']} to {rng.choice(FRIENDS)}",
                         f"{p['he']} hands {g} of them to {rng.choice(FRIENDS)}",
                         f"{g} {p['item']} get lost on the way home",
                         f"{p['he']} uses up {g} {p['item']}"))
    return [Step(clause, f"{total}-{g}={total - g}", total - g, f"the {g} that are gone")]


def _find(rng, total, p, o):
    f = rng.randint(2, o.max_add)
    clause = rng.choice((f"{p['he']} finds {f} more {p['item']}", f"{rng.choice(FRIENDS)} gives {p['him']} {f} {p['item']}",
                         f"{p['he']} wins {f} {p['item']} in a game", f"{p['he']} collects another {f} {p['item']}"))
    return [Step(clause, f"{total}+{f}={total + f}", total + f, f"the extra {f}")]


def _times(rng, total, p, o):
    t = rng.choice((2, 3))
    word = {2: rng.choice(("twice", "double")), 3: rng.choice(("three times", "triple"))}[t]
    clause = rng.choice((f"{p['he']} ends up with {word} as many {p['item']} as before",
                         f"the number of {p['item']} grows to {word} what it was"))
    return [Step(clause, f"{total}*{t}={total * t}", total * t, f"{word} as many")]


def _half(rng, total, p, o):
    clause = rng.choice((f"{p['he']} gives half of the {p['item']} away",
                         f"{p['he']} shares half of them with {rng.choice(FRIENDS)}",
                         f"half of the {p['item']} are put in storage"))
    return [Step(clause, f"{total}/2={total // 2}", total // 2, "half of them")]


#: Operation kinds by name (dict dispatch) and their sampling weights.
STEP_KINDS = {"buy": _buy, "give": _give, "find": _find, "times": _times, "half": _half}
_WEIGHTS = {"buy": 3, "give": 3, "find": 3, "times": 1, "half": 1}


def _kind(rng: random.Random, total: int) -> str:
    kind = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
    if (kind == "times" and total > 30) or (kind == "give" and total < 4) or (kind == "half" and total % 2):
        return "find"  # numbers stay small, positive and whole
    return kind


# --- the trace ----------------------------------------------------------------------------------------------

_OPENERS = (
    "Okay, let me work through what happens to {name}'s {item}.",
    "Let me read this carefully: it is about {name} and some {item}.",
    "Alright, I need to follow the number of {item} as it changes.",
    "Let's see, {name} starts with some {item} and then a few things happen.",
    "This is a counting problem about {item}, so I will go event by event.",
    "Hmm, {n} things happen to the {item}; I will take them one at a time.",
    "I want the final count of {item}, so let me track it.",
    "First I should figure out how many {item} {name} has at the start.",
)
_RESTATE = (
    "{name} begins with {start} {item}.",
    "So the starting amount is {start} {item}.",
    "At the start there are {start} {item}.",
    "The count starts at {start}.",
    "{name} has {start} {item} to begin with.",
)
_PLAN = (
    "The plan: apply each change in order and keep a running total of {item}.",
    "I will update the total of {item} after each of the {n} events.",
    "There are {n} changes to apply to the {start} {item}.",
)
_ASIDES = (
    "I should not mix up the {item} with the {box} here.",
    "Let me keep track of the {item} carefully.",
    "That part about the {item} seems clear enough.",
    "I need to be careful with this number, {value}.",
    "So far {name} has {value} {item}, which seems reasonable.",
    "Nothing tricky about the {item} yet.",
    "I will write {value} down so I do not lose it.",
    "Let me make sure I read the part about the {item} right.",
    "Good, {value} {item} at this point.",
    "It helps to picture {name} holding {value} {item}.",
    "I am fairly sure about {value} here.",
    "Okay, that takes care of this part of {name}'s story.",
    "This step only changes the number of {item}, nothing else.",
    "Let me not rush the step with {value}.",
)
_CHECK = (
    "Checking: {inverse}, so that is right.",
    "Quick check: {inverse}, good.",
    "To be safe, {inverse}, which matches.",
    "Going backwards, {inverse}, yes.",
)
_WRONG = (
    "Wait, I first wrote {bad}, but that is wrong; redoing it, {eq}.",
    "Hmm, {bad}? No, that is a slip, actually {eq}.",
    "At first I got {bad}, which does not look right; let me redo it: {eq}.",
)
_RECAP = (
    "To recap the {item}: {chain}.",
    "Putting it together: {chain}.",
    "So the chain of totals is {chain}.",
)
_DOUBLE = (
    "Let me go over the {n} steps with the {item} once more to be sure.",
    "I will double-check the arithmetic for {name} before answering.",
    "One more look at the numbers {value} and {start} to be safe.",
)
_CONCLUDE = (
    "So {name} has {value} {item} in the end.",
    "That means the final number of {item} is {value}.",
    "Therefore {name} ends up with {value} {item}.",
    "The total comes to {value} {item}.",
    "So the answer should be {value} {item}.",
)
_FINALS = (
    "{name} has {value} {item} now. The answer is \\boxed{{{value}}}.",
    "The final count is \\boxed{{{value}}}.",
    "{name} ends with {value} {item}, so the answer is \\boxed{{{value}}}.",
    "Answer: \\boxed{{{value}}}.",
)
_SAY = {"+": ("So {a} + {b} = {c}.", "Adding, {a} + {b} = {c} {item}.", "That gives {a} + {b} = {c}.",
              "Now the total is {a} + {b} = {c}."),
        "-": ("So {a} - {b} = {c}.", "Taking them away leaves {a} - {b} = {c}.", "That is {a} - {b} = {c} {item} left.",
              "Subtracting gives {a} - {b} = {c}."),
        "*": ("So {a} * {b} = {c}.", "Multiplying, {a} * {b} = {c}.", "That is {a} times {b}, so {a} * {b} = {c}.",
              "We get {a} * {b} = {c} {item}."),
        "/": ("So {a} / {b} = {c}.", "Half of {a} is {a} / {b} = {c}.", "Dividing, {a} / {b} = {c} {item}.")}
_INVERSE = {"+": "{c} - {b} = {a}", "-": "{c} + {b} = {a}", "*": "{c} / {b} = {a}", "/": "{c} * {b} = {a}"}
#: Mean asides per step at each verbosity (terse, plain, chatty) and the chance of each optional part.
VERBOSITY = {"terse": 0.1, "plain": 0.8, "chatty": 2.0}
_OPTIONAL = {"terse": 0.15, "plain": 0.5, "chatty": 0.85}


def _equation_parts(eq: str) -> tuple[str, str, str, str]:
    lhs, c = eq.split("=")
    op = next(ch for ch in "+-*/" if ch in lhs)
    a, b = lhs.split(op)
    return a, op, b, c


def _fill(rng: random.Random, pool: Sequence[str], **slots) -> str:
    return rng.choice(pool).format(**slots)


def _step_lines(rng: random.Random, step: Step, level: str, slots: dict) -> list[str]:
    a, op, b, c = _equation_parts(step.equation)
    say = dict(slots, a=a, b=b, c=c, value=c)
    lines = []
    if step.clause and rng.random() < _OPTIONAL[level]:
        clause = step.clause[0].lower() + step.clause[1:]
        lines.append(f"Next, {clause}." if rng.random() < 0.5 else f"Then {clause}, so I handle {step.what}.")
    if rng.random() < 0.08:  # a dead end, caught
        bad = f"{a} {op} {b} = {int(c) + rng.choice((1, 2, 10)) * (1 if int(c) < 3 else rng.choice((-1, 1)))}"
        lines.append(_fill(rng, _WRONG, bad=bad, eq=f"{a} {op} {b} = {c}"))
    else:
        lines.append(_fill(rng, _SAY[op], **say))
    if rng.random() < _OPTIONAL[level] * 0.4:
        lines.append(_fill(rng, _CHECK, inverse=_INVERSE[op].format(a=a, b=b, c=c)))
    for _ in range(_poisson(rng, VERBOSITY[level])):
        lines.append(_fill(rng, _ASIDES, **say))
    return lines


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, p = 0, pow(2.718281828, -mean), 1.0
    while True:
        p *= rng.random()
        if p < threshold:
            return count
        count += 1


def _trace(rng: random.Random, name: str, item: str, box: str, start: int, steps: list[Step], grade: int) -> str:
    level = rng.choice(tuple(VERBOSITY))
    slots = {"name": name, "item": item, "box": box, "start": start, "n": grade, "value": steps[-1].result}
    opt = _OPTIONAL[level]
    lines = []
    for pool, chance in ((_OPENERS, opt), (_RESTATE, opt), (_PLAN, opt * 0.5)):
        if rng.random() < chance:
            lines.append(_fill(rng, pool, **slots))
    for step in steps:
        lines.extend(_step_lines(rng, step, level, slots))
    if grade > 1 and rng.random() < opt * 0.6:
        lines.append(_fill(rng, _RECAP, chain=", then ".join(str(s.result) for s in steps), **slots))
    if rng.random() < opt * 0.5:
        lines.append(_fill(rng, _DOUBLE, **slots))
    lines.append(_fill(rng, _CONCLUDE, **slots))
    sep = rng.choice(("\n", "\n", " "))  # some traces are one paragraph
    return sep.join(lines)


def make_problem(rng: random.Random, options: ProblemOptions = ProblemOptions()) -> dict:
    """One problem: ``{"question", "answer", "cot", "final", "gold", "grade"}`` (see module doc)."""
    name, (item, box) = rng.choice(NAMES), rng.choice(ITEMS)
    he = "she" if name in SHE else "he"
    people = {"he": he.capitalize(), "him": "her" if he == "she" else "him", "item": item, "box": box}
    total = start = rng.randint(5, options.max_start)
    grade = rng.randint(options.min_steps, options.max_steps)
    opening = rng.choice((f"{name} has {start} {item}.", f"{name} starts the day with {start} {item}.",
                          f"There are {start} {item} in {name}'s collection."))
    clauses, steps = [opening], []
    for i in range(grade):
        new = STEP_KINDS[_kind(rng, total)](rng, total, people, options)
        lead = "First, " if i == 0 else rng.choice(("Then ", "After that, ", "Next, ", "Later, ", "Finally, "
                                                    if i == grade - 1 else "Soon, "))
        clause = new[0].clause
        clauses.append(lead + (clause[0].lower() + clause[1:] if lead != "" else clause) + ".")
        steps.extend(new)
        total = new[-1].result
    ask = rng.choice((f"How many {item} does {name} have now?", f"How many {item} are left at the end?",
                      f"What is the final number of {item}?"))
    question = " ".join(clauses) + " " + ask
    answer = "\n".join(_annotated(s) for s in steps) + f"\n#### {total}"
    cot = _trace(rng, name, item, box, start, steps, grade)
    final = _fill(rng, _FINALS, name=name, item=item, value=total)
    return {"question": question, "answer": answer, "cot": cot, "final": final, "gold": str(total), "grade": grade}


def _annotated(step: Step) -> str:
    a, op, b, c = _equation_parts(step.equation)
    return f"{a} {op} {b} = <<{step.equation}>>{c}"


def distinct_problems(make: Callable[[random.Random, Any], dict], n: int, seed: int, options: Any) -> list[dict]:
    """``n`` problems ``make(rng, options)`` with distinct questions, deterministic for a seed (every task's
    generator: this one's and :mod:`extra_cot.tasks.chains`)."""
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        row = make(rng, options)
        if row["question"] not in seen:
            seen.add(row["question"])
            rows.append(row)
    return rows


def generate(n: int, seed: int = 0, options: ProblemOptions = ProblemOptions()) -> list[dict]:
    """``n`` distinct problems (distinct questions), deterministic for a seed."""
    return distinct_problems(make_problem, n, seed, options)


def split(rows: list[dict], n_test: int) -> tuple[list[dict], list[dict]]:
    """(train, test): the last ``n_test`` rows are held out (rows are already shuffled by the seed)."""
    if not 0 < n_test < len(rows):
        raise ValueError(f"n_test must be in 1..{len(rows) - 1}, got {n_test}")
    return rows[:-n_test], rows[-n_test:]


def to_trace(row: dict) -> dict:
    """A generated problem -> an ``extra-cot compress --input-format responses`` row (+ ``grade``)."""
    return {"question": row["question"], "response": f"<think>\n{row['cot']}</think>\n\n{row['final']}",
            "gold": row["gold"], "grade": row["grade"]}


def to_gsm8k(row: dict) -> dict:
    """A generated problem -> a GSM8K-format row (what ``extra-cot eval`` and ``compress`` read) (+ ``grade``)."""
    return {"question": row["question"], "answer": row["answer"], "grade": row["grade"]}


# --- trace statistics (issue 17's realism targets) -----------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """A text's sentences: split after ``.``/``!``/``?`` followed by space, and at line breaks."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (the value at rank ceil(q*n))."""
    import math

    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def trace_stats(texts: Sequence[str], lengths: Sequence[int], grades: Sequence[int]) -> dict:
    """Spread and repetition of training traces.

    ``lengths``: think tokens per trace. Returns the 10th/90th length percentiles and the mean of
    the shortest/longest 10 % (``spread`` = longest-10 % mean / shortest-10 % mean), the most
    frequent sentence with the share of traces holding it, and the count per grade.
    """
    if not texts or len(texts) != len(lengths) or len(texts) != len(grades):
        raise ValueError(f"need equally many texts, lengths and grades (got {len(texts)}, {len(lengths)}, {len(grades)})")
    ordered = sorted(lengths)
    tenth = max(1, len(ordered) // 10)
    short, long_ = sum(ordered[:tenth]) / tenth, sum(ordered[-tenth:]) / tenth
    holding = Counter(s for text in texts for s in set(sentences(text)))
    top, count = holding.most_common(1)[0]
    return {"n": len(texts), "think_tokens_p10": _quantile(ordered, 0.1), "think_tokens_p90": _quantile(ordered, 0.9),
            "shortest_10pct_mean": round(short, 1), "longest_10pct_mean": round(long_, 1),
            "spread": round(long_ / short, 2) if short else float("inf"),
            "top_sentence": top, "top_sentence_share": round(count / len(texts), 4),
            "grades": {str(g): c for g, c in sorted(Counter(grades).items())}}
