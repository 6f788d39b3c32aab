"""The budget-sensitive task ``chains``: a running total changed by small ± steps, one bare line per step.

Each problem is a GSM8K-shaped row like :mod:`extra_cot.demo.problems`' (``{"question", "answer",
"cot", "final", "gold", "grade"}``; ``grade`` = the number of steps, 1 / 2 / 3 / 4 by default), built
so that the budget a trace needs rises with the step count the question shows (issue 36):

* the question names the number of changes and lists them, one clause each;
* the trace is a number-free prose part of about the same length at every grade (an opener and a
  plan before the chain, a closing line after it), then one bare line per step (``23 + 7 = 30``):
  each step's result is stated once, as one formula, and there is no check, recap or wrong equation;
* numbers are two-digit totals moved by small steps (``min_move``..``max_move``), and every total of a
  problem (the start included) is distinct, so no equation's result repeats another's; with
  ``distinct_moves`` (the default) no two steps of a problem move by the same amount either, so each
  clause of the question is found by its own number (why: docs/study.md, "The positive control");
* the wording still varies: several phrasings of every question clause and prose sentence, filled with
  the problem's name and items.

The chain of a ``grade``-step trace is about ``10 * grade`` SmolLM2 tokens and the prose about 60
(docs/study.md: the Level-0 check ``stage1_chain_kept`` measures what Stage 1 keeps). Pure Python.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from extra_cot.demo.problems import FRIENDS, ITEMS, NAMES, SHE, distinct_problems

#: Count words of the question (the step count is shown, not hidden in the clauses).
_COUNT = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


@dataclass(frozen=True)
class ChainOptions:
    """Sizes: ``steps`` = the grades (step counts) drawn uniformly (1-4 by default: a 6-step hardest
    grade was beyond SmolLM2-135M at the positive control's training size; docs/study.md,
    "The positive control, second try"); the start total is in
    ``min_start``..``max_start``, each step moves it by ``min_move``..``max_move`` (a different amount
    per step with ``distinct_moves``), and every total stays in ``low``..``high`` (two digits by default)."""

    steps: tuple[int, ...] = (1, 2, 3, 4)
    min_start: int = 20
    max_start: int = 79
    min_move: int = 2
    max_move: int = 9
    low: int = 10
    high: int = 99
    distinct_moves: bool = True

    def __post_init__(self) -> None:
        if not self.steps or any(not 1 <= s <= max(_COUNT) for s in self.steps):
            raise ValueError(f"steps must be step counts in 1..{max(_COUNT)}, got {self.steps}")
        if not self.low <= self.min_start <= self.max_start <= self.high:
            raise ValueError(f"need low <= min_start <= max_start <= high, got {self.low}, {self.min_start}, "
                             f"{self.max_start}, {self.high}")
        if not 1 <= self.min_move <= self.max_move or self.high - self.low < 2 * self.max_move:
            raise ValueError(f"need 1 <= min_move <= max_move and room for the moves in low..high, got "
                             f"{self.min_move}, {self.max_move}, {self.low}..{self.high}")
        if self.distinct_moves and self.max_move - self.min_move + 1 < max(self.steps):
            raise ValueError(f"distinct_moves needs at least {max(self.steps)} move sizes, got "
                             f"{self.min_move}..{self.max_move}")


_PLUS = ("{he} finds {k} more", "{friend} gives {him} {k} more", "{he} buys {k} more", "{he} wins {k} in a game",
         "{he} picks up another {k}")
_MINUS = ("{he} gives {k} to {friend}", "{he} loses {k}", "{he} uses up {k}", "{he} sells {k}",
          "{k} of them get lost")
_OPENING = ("{name} has {start} {item}.", "{name} starts with {start} {item}.",
            "There are {start} {item} in {name}'s {box}.", "{name} counts {start} {item} in the morning.")
_COUNTED = ("Then {count} {things} happen, in this order:", "After that, the number of {item} changes {count} {times}:",
            "Here {are} the {count} {changes} that {follow}:", "Over the day there {are} {count} {changes}:")
_ASK = ("How many {item} does {name} have now?", "How many {item} are there at the end?",
        "What is the final number of {item}?", "How many {item} does {name} end up with?")
#: The prose (no digits, no number words, the same few sentences at every grade; about 60 tokens); every
#: sentence names the person or the items, so none repeats across many traces.
_OPENERS = (
    "Okay, this is about {name} and the {item}, so I will follow the count through every change in the order given.",
    "Let me read the story about {name}'s {item} and keep a running total as each change comes along.",
    "Alright, {name} has some {item} and the amount keeps changing, so I will track it change by change.",
    "This question follows {name}'s {item} through a list of changes, and I only need the count at the end.",
    "I need to follow how many {item} {name} has while the story adds some and takes some away.",
    "Let me think about {name} and the {item}: the total goes up or down with each event in the story.",
    "Hmm, {name}'s {item} change several times here, so I should apply the changes carefully and in order.",
    "So the story is about {name} counting {item}, with some gained and some lost along the way.",
)
_PLANS = (
    "I start from what {he_low} has at the beginning and write a line for each change to the {item}.",
    "Adding the {item} that come in and subtracting those that go out, I write each new total on its own line.",
    "Each line below takes the current number of {item} and applies the next change to it.",
    "I will add what {name} gains, subtract what {he_low} loses and note every new total.",
    "Starting with the first amount of {item}, I apply each change and carry the result to the next line.",
    "The running total of {item} gets updated once per change, with an equation per line.",
)
_CLOSINGS = (
    "That was the last change, so this is the final number of {item}.",
    "No more changes come after that, so that is how many {item} {name} has.",
    "Every change to {name}'s {item} is now applied, so the last total is the answer.",
    "That covers the whole story, and the last line gives the count of {item}.",
    "Nothing else happens to the {item}, so the final total is the answer.",
)
_FINALS = ("The answer is \\boxed{{{value}}}.", "{name} has {value} {item} now, so the answer is \\boxed{{{value}}}.",
           "Final count: \\boxed{{{value}}}.", "{name} ends up with \\boxed{{{value}}} {item}.")
_LEADS = ("Then ", "Next, ", "After that, ", "Later, ")


def _moves(rng: random.Random, start: int, steps: int, o: ChainOptions) -> list[tuple[str, int, int]]:
    """``steps`` moves ``(op, k, new total)`` from ``start``: totals stay in range and all distinct, and
    with ``o.distinct_moves`` every ``k`` differs. A draw that runs out of options starts over."""
    while True:
        seen, used, total, out = {start}, set(), start, []
        while len(out) < steps:
            options = [(op, k) for op in "+-" for k in range(o.min_move, o.max_move + 1)
                       if not (o.distinct_moves and k in used)
                       and o.low <= (new := total + k if op == "+" else total - k) <= o.high and new not in seen]
            if not options:  # only with distinct_moves: the unused sizes all leave the range or repeat a total
                break
            op, k = rng.choice(options)
            total = total + k if op == "+" else total - k
            seen.add(total)
            used.add(k)
            out.append((op, k, total))
        if len(out) == steps:
            return out


def make_problem(rng: random.Random, options: ChainOptions = ChainOptions()) -> dict:
    """One problem: ``{"question", "answer", "cot", "final", "gold", "grade"}`` (see module doc)."""
    name, (item, box) = rng.choice(NAMES), rng.choice(ITEMS)
    he = "she" if name in SHE else "he"
    grade = rng.choice(options.steps)
    start = rng.randint(options.min_start, options.max_start)
    moves = _moves(rng, start, grade, options)
    slots = {"name": name, "item": item, "box": box, "start": start, "he_low": he, "count": _COUNT[grade],
             "things": "thing" if grade == 1 else "things", "times": "time" if grade == 1 else "times",
             "changes": "change" if grade == 1 else "changes", "are": "is" if grade == 1 else "are",
             "follow": "follows" if grade == 1 else "follow"}
    clauses, equations, annotated, total = [], [], [], start
    for i, (op, k, new) in enumerate(moves):
        text = rng.choice(_PLUS if op == "+" else _MINUS).format(
            he=he.capitalize(), him="her" if he == "she" else "him", k=k, friend=rng.choice(FRIENDS))
        lead = "" if grade == 1 else "First, " if i == 0 else "Finally, " if i == grade - 1 else rng.choice(_LEADS)
        clauses.append(lead + (text[0].lower() + text[1:] if lead else text) + ".")
        equations.append(f"{total} {op} {k} = {new}")
        annotated.append(f"{total} {op} {k} = <<{total}{op}{k}={new}>>{new}")
        total = new
    question = " ".join([rng.choice(_OPENING).format(**slots), rng.choice(_COUNTED).format(**slots), *clauses,
                         rng.choice(_ASK).format(**slots)])
    prose = [rng.choice(_OPENERS).format(**slots), rng.choice(_PLANS).format(**slots)]
    cot = "\n".join([*prose, *equations, rng.choice(_CLOSINGS).format(**slots)])
    final = rng.choice(_FINALS).format(name=name, item=item, value=total)
    return {"question": question, "answer": "\n".join(annotated) + f"\n#### {total}", "cot": cot, "final": final,
            "gold": str(total), "grade": grade}


def generate(n: int, seed: int = 0, options: ChainOptions = ChainOptions()) -> list[dict]:
    """``n`` distinct problems (distinct questions), deterministic for a seed."""
    return distinct_problems(make_problem, n, seed, options)
