"""The problem generators, by task name (``python -m extra_cot.study --task``): one registry.

* ``varied`` (:mod:`extra_cot.demo.problems`): multi-step word problems in four grades with varied,
  human-like traces (asides, checks, dead ends, recaps); length control on varied text.
* ``chains`` (:mod:`extra_cot.tasks.chains`): a running total moved by 1 / 2 / 3 / 4 small ± steps, a
  fixed number-free prose part and one bare equation per step, so the budget a trace needs rises with
  the step count the question shows (issue 36).

Every generator returns rows ``{"question", "answer" (GSM8K-format), "cot", "final", "gold", "grade"}``;
:func:`trace_row` turns one into an ``extra-cot compress --input-format responses`` row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from extra_cot.demo import problems
from extra_cot.tasks import chains


@dataclass(frozen=True)
class Task:
    """A generator ``(n, seed) -> rows``, the generated fields its trace rows carry beyond
    :func:`extra_cot.demo.problems.to_trace`'s (``varied`` adds none: its data stay as they were), and
    the ``extra-cot compress --scorer`` the demo and the study (``--scorer auto``) use on its traces."""

    generate: Callable[..., list[dict]]
    trace_extra: tuple[str, ...] = ()
    scorer: str = "lm"


TASKS: dict[str, Task] = {
    # varied: the lm scorer (SmolLM2 surprisal), which its records used
    "varied": Task(problems.generate),
    # chains: the fast heuristic, whose Level-0 check equals the lm scorer's (3 s instead of 12 min for
    # 960 traces: docs/study.md, "Stage 1 on chains")
    "chains": Task(chains.generate, trace_extra=("answer",), scorer="heuristic"),
}


def get_task(name: str) -> Task:
    """The registered task ``name``; an unknown name lists the valid ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid: {sorted(TASKS)}")
    return TASKS[name]


def generate(task: str, n: int, seed: int = 0, options: Any = None) -> list[dict]:
    """``n`` distinct problems of ``task``, deterministic for a seed; ``options`` = the generator's own
    options object (:class:`~extra_cot.demo.problems.ProblemOptions`, :class:`~extra_cot.tasks.chains.ChainOptions`),
    ``None`` = its defaults (the study's sizes)."""
    generate_rows = get_task(task).generate
    return generate_rows(n, seed=seed) if options is None else generate_rows(n, seed=seed, options=options)


def trace_row(task: str, row: dict) -> dict:
    """A generated problem -> a compress ``responses`` row (+ ``grade``, + the task's extra fields)."""
    return {**problems.to_trace(row), **{k: row[k] for k in get_task(task).trace_extra}}
