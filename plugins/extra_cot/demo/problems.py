"""Seeded multi-step arithmetic word problems with worked solutions (the demo's own data).

Each problem is a GSM8K-shaped row ``{"question", "answer"}`` whose ``answer`` holds one line per
step with a ``<<a*b=c>>`` calculator annotation and a final ``#### N`` (so every GSM8K reader in
the project reads it), plus a verbose reasoning trace for Stage 1:
``{"question", "response": "<think>\\n{cot}</think>\\n\\n{final}", "gold"}`` (``extra-cot compress
--input-format responses``) where ``cot`` is a talkative think text (narration, restatements and
checks around the equations: what a compressor should drop first) and ``final`` the answer part
with ``\\boxed{N}``. The trace's lines follow from the question (one filler after every equation,
not a coin flip), so a model can learn the full length at ``<COMP_100>``: with random fillers the
2026-11-30 demo model dropped them and wrote 0.90 of the reference at 1.0 [R].

Pure Python, no host import.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ("Mia", "Liam", "Ava", "Noah", "Emma", "Omar", "Zoe", "Ravi", "Lena", "Kofi", "Sara", "Ben")
PRONOUN = {"Mia": "she", "Ava": "she", "Emma": "she", "Zoe": "she", "Lena": "she", "Sara": "she"}
ITEMS = (("marbles", "bags"), ("stickers", "packs"), ("apples", "baskets"), ("pencils", "boxes"),
         ("cookies", "trays"), ("cards", "decks"), ("shells", "jars"), ("books", "shelves"))
FRIENDS = ("a friend", "a cousin", "a neighbour", "the teacher", "a classmate", "a little brother")
#: Sentence openers of the steps after the first.
CONNECTORS = ("Then", "After that", "Next", "Later")
#: Filler sentences of a talkative reasoner (the tokens a compressor should drop first).
OPENERS = ("Okay, let me work through this step by step.", "Let me read the problem carefully first.",
           "Alright, I need to track the number as it changes.", "Let's think about what happens in order.")
FILLERS = ("That seems right so far.", "Let me keep track of that.", "Hmm, I should be careful here.",
           "Good, that part is clear.", "Let me make sure I did not skip anything.", "So far so good.")
CHECKS = ("Let me double-check the arithmetic once more.", "Let me verify by going over the steps again.",
          "I will quickly re-check each step.")


@dataclass(frozen=True)
class Step:
    """One change of the running total: the question sentence, the equation and its narration."""

    sentence: str
    equation: str  # e.g. "3*5=15" (GSM8K calculator annotation)
    result: int
    narration: str


def _pronoun(name: str) -> str:
    return PRONOUN.get(name, "he")


def _step_buy(rng: random.Random, total: int, name: str, item: str, box: str, opt: ProblemOptions) -> list[Step]:
    k, m = rng.randint(2, max(2, opt.max_factor - 1)), rng.randint(2, opt.max_factor)
    gained, new = k * m, total + k * m
    sent = f"{_pronoun(name)} buys {k} {box} with {m} {item} each."
    return [
        Step(sent, f"{k}*{m}={gained}", gained,
             f"{name} buys {k} {box} and each has {m} {item}, so that is {k} * {m} = {gained} {item}."),
        Step("", f"{total}+{gained}={new}", new,
             f"Adding these to the {total} {item} gives {total} + {gained} = {new} {item}."),
    ]


def _step_give(rng: random.Random, total: int, name: str, item: str, box: str, opt: ProblemOptions) -> list[Step]:
    g = rng.randint(1, max(1, min(total - 1, opt.max_add)))
    new = total - g
    sent = f"{_pronoun(name)} gives {g} {item} to {rng.choice(FRIENDS)}."
    return [Step(sent, f"{total}-{g}={new}", new,
                 f"Giving away {g} {item} leaves {total} - {g} = {new} {item}.")]


def _step_find(rng: random.Random, total: int, name: str, item: str, box: str, opt: ProblemOptions) -> list[Step]:
    f = rng.randint(2, opt.max_add)
    new = total + f
    sent = f"{_pronoun(name)} finds {f} more {item}."
    return [Step(sent, f"{total}+{f}={new}", new, f"Finding {f} more makes it {total} + {f} = {new} {item}.")]


def _step_double(rng: random.Random, total: int, name: str, item: str, box: str, opt: ProblemOptions) -> list[Step]:
    times = rng.choice((2, 3))
    new = total * times
    word = {2: "twice", 3: "three times"}[times]
    sent = f"{_pronoun(name)} ends up with {word} as many {item} as before."
    return [Step(sent, f"{total}*{times}={new}", new,
                 f"Having {word} as many means {total} * {times} = {new} {item}.")]


#: Step kinds by name (dict dispatch); "double" is kept rare so numbers stay small.
STEP_KINDS = {"buy": _step_buy, "give": _step_give, "find": _step_find, "double": _step_double}
_WEIGHTS = {"buy": 3, "give": 3, "find": 2, "double": 1}


@dataclass(frozen=True)
class ProblemOptions:
    """Size of the problems: ``min_steps``..``max_steps`` changes after a start value in
    ``5..max_start``; a purchase is ``2..max_factor-1`` boxes of ``2..max_factor`` items; finds and
    gifts move at most ``max_add`` items.

    The defaults are the demo's (issue 10): one or two changes with small numbers, so a 135M
    model after a few minutes of CPU training can solve a clear share. Measured with
    ``benchmarks/demo_arith_probe.py`` (untuned SmolLM2 completing each equation of the trace,
    32 held-out problems; README "Demo problem family"): 77 % of equations and 56 % of problems fully
    right, against 56 % and 16 % for the issue-6 family. The issue-6 family (2-3 changes,
    start up to 30, purchases up to 6 x 9, finds up to 15) is
    ``ProblemOptions(min_steps=2, max_steps=3, max_start=30, max_factor=9, max_add=15)``.
    """

    min_steps: int = 1
    max_steps: int = 2
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


def make_problem(rng: random.Random, options: ProblemOptions = ProblemOptions()) -> dict:
    """One problem: ``{"question", "answer", "cot", "final", "gold"}`` (see module doc)."""
    name, (item, box) = rng.choice(NAMES), rng.choice(ITEMS)
    total = rng.randint(5, options.max_start)
    sentences, steps = [f"{name} has {total} {item}."], []
    kinds = list(_WEIGHTS)
    for _ in range(rng.randint(options.min_steps, options.max_steps)):
        kind = rng.choices(kinds, weights=[_WEIGHTS[k] for k in kinds])[0]
        if (kind == "double" and total > 40) or (kind == "give" and total < 3):
            kind = "find"  # keep numbers small and never below 1
        new_steps = STEP_KINDS[kind](rng, total, name, item, box, options)
        opener = "First" if not steps else rng.choice(CONNECTORS)
        sentences.append(f"{opener}, {new_steps[0].sentence}")
        steps.extend(new_steps)
        total = new_steps[-1].result
    question = " ".join(sentences) + f" How many {item} does {name} have now?"
    answer = "\n".join(f"{_annotated(s)}" for s in steps) + f"\n#### {total}"
    return {"question": question, "answer": answer, "cot": _verbose_cot(rng, name, item, steps, total),
            "final": f"{name} has {total} {item} now. The answer is \\boxed{{{total}}}.", "gold": str(total)}


def _annotated(step: Step) -> str:
    lhs, rhs = step.equation.split("=")
    pretty = lhs.replace("*", " * ").replace("+", " + ").replace("-", " - ")
    return f"{pretty} = <<{step.equation}>>{rhs}"


def _verbose_cot(rng: random.Random, name: str, item: str, steps: list[Step], total: int) -> str:
    lines = [rng.choice(OPENERS), f"The question asks how many {item} {name} has at the end."]
    for step in steps:
        lines.append(step.narration)
        lines.append(rng.choice(FILLERS))  # after every equation: the trace's length follows from the question
    lines.append(rng.choice(CHECKS))
    lines.append(" then ".join(s.equation for s in steps) + ", which matches.")
    lines.append(f"So {name} has {total} {item} in the end.")
    return "\n".join(lines)


def generate(n: int, seed: int = 0, options: ProblemOptions = ProblemOptions()) -> list[dict]:
    """``n`` distinct problems (distinct questions), deterministic for a seed."""
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        row = make_problem(rng, options)
        if row["question"] not in seen:
            seen.add(row["question"])
            rows.append(row)
    return rows


def split(rows: list[dict], n_test: int) -> tuple[list[dict], list[dict]]:
    """(train, test): the last ``n_test`` rows are held out (rows are already shuffled by the seed)."""
    if not 0 < n_test < len(rows):
        raise ValueError(f"n_test must be in 1..{len(rows) - 1}, got {n_test}")
    return rows[:-n_test], rows[-n_test:]


def to_trace(row: dict) -> dict:
    """A generated problem -> an ``extra-cot compress --input-format responses`` row."""
    return {"question": row["question"], "response": f"<think>\n{row['cot']}</think>\n\n{row['final']}",
            "gold": row["gold"]}


def to_gsm8k(row: dict) -> dict:
    """A generated problem -> a GSM8K-format row (what ``extra-cot eval`` and ``compress`` read)."""
    return {"question": row["question"], "answer": row["answer"]}
