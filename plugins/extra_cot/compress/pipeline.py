"""One CoT in, every target ratio out: segment → score once → select per ratio → calibrate
into buckets → filter. Also the input readers (model responses, GSM8K worked solutions).

Pure apart from the scorer and the token counter it is given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from extra_cot.compress.decisive import decisive_units
from extra_cot.compress.filters import FilterOptions, degeneracy_reason, fidelity_reason
from extra_cot.compress.integrity import math_problems, problem_kind
from extra_cot.compress.scorers import Scorer
from extra_cot.compress.segment import segment
from extra_cot.compress.select import SelectOptions, compress_to_ratio, nearest_bucket, unit_token_counts
from extra_cot.gsm8k import split_solution
from extra_cot.tokens import FIXED_RATIOS

logger = logging.getLogger(__name__)

_GSM8K_ANNOT = re.compile(r"<<[^<>\n]*>>")


@dataclass(frozen=True)
class CompressOptions:
    """Options of one compression run (CLI flags map 1:1).

    ``formula_bonus``: added to a formula unit's standardised score so equations outrank prose
    of equal score (the teacher rule "keep the decisive intermediate steps", docs/method.md) [R].
    ``decisive_bonus``: added on top for the equations the answer depends on
    (:mod:`extra_cot.compress.decisive`), so checks, restatements and dead ends go first [R].
    ``max_cot_tokens``: CoTs longer than this (target tokens) are skipped as ``too_long``;
    ``None``: the tokenizer's context (``model_max_length``), at most :data:`MAX_COT_TOKENS`.
    """

    ratios: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    formula_bonus: float = 1.0
    decisive_bonus: float = 0.0
    max_cot_tokens: int | None = None
    select: SelectOptions = field(default_factory=SelectOptions)
    filters: FilterOptions = field(default_factory=FilterOptions)

    def __post_init__(self) -> None:
        bad = [r for r in self.ratios if not any(abs(r - b) < 1e-9 for b in FIXED_RATIOS)]
        if bad or not self.ratios:
            raise ValueError(f"ratios {list(self.ratios)} must be a non-empty subset of {list(FIXED_RATIOS)}, e.g. 0.2,0.4,0.6,0.8")
        if self.max_cot_tokens is not None and self.max_cot_tokens < 1:
            raise ValueError(f"max_cot_tokens must be >= 1 (or None: the tokenizer's context), got {self.max_cot_tokens}")


@dataclass(frozen=True)
class Source:
    """A solved problem: the think text to compress and the untouched answer part."""

    question: str
    cot: str
    answer: str
    gold: str | None


#: The default length cap when the tokenizer names a longer context or none (transformers' 1e30
#: sentinel): a 32k-token CoT compresses in seconds (``benchmarks/compress_bench.py --long``),
#: and no model this project trains reads longer traces.
MAX_COT_TOKENS = 32768


def cot_token_cap(options: CompressOptions, tokenizer) -> int:
    """The ``too_long`` limit: ``options.max_cot_tokens``, else the tokenizer's context capped."""
    if options.max_cot_tokens is not None:
        return options.max_cot_tokens
    context = getattr(tokenizer, "model_max_length", None)
    return min(int(context), MAX_COT_TOKENS) if isinstance(context, (int, float)) and context >= 1 else MAX_COT_TOKENS


def longest_token_chars(tokenizer) -> int:
    """Characters in the vocabulary's longest token: a text of more than ``cap`` times this many
    characters has more than ``cap`` tokens, without tokenizing it (a 10 MB line)."""
    return max(1, max(map(len, tokenizer.get_vocab()), default=1))


def too_long(cot: str, count: Callable[[str], int], cap: int, token_chars: int) -> dict | None:
    """``{"tokens", "max_cot_tokens"}`` when ``cot`` has more than ``cap`` tokens (``tokens``:
    ``None`` when the length alone proves it), else ``None``."""
    if len(cot) > cap * token_chars:
        return {"tokens": None, "chars": len(cot), "max_cot_tokens": cap}
    tokens = count(cot)
    return {"tokens": tokens, "max_cot_tokens": cap} if tokens > cap else None


def _standardize(values: Sequence[float]) -> list[float]:
    if not values:
        return []
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return [(v - mean) / (std + 1e-9) for v in values]


def score_units(src: Source, scorer: Scorer, options: CompressOptions, scored: tuple | None = None):
    """Units of the CoT and their selection scores (standardised + formula and decisive bonus):
    the one scoring pass that every ratio reuses. ``scored``: ``(units, raw scores)`` already
    computed for this CoT (:meth:`extra_cot.compress.rows.RowCompressor.batch` scores many at once)."""
    units, raw = scored if scored is not None else (None, None)
    if units is None:
        units = segment(src.cot)
        raw = scorer.score(src.question, src.cot, units)
    scores = _standardize(raw)
    decisive = decisive_units(units, src.gold) if options.decisive_bonus else set()
    return units, [s + (options.formula_bonus if u.formula else 0.0) + (options.decisive_bonus if i in decisive else 0.0)
                   for i, (s, u) in enumerate(zip(scores, units))]


def compress_source(src: Source, scorer: Scorer, tokenizer, count: Callable[[str], int], options: CompressOptions,
                    scored: tuple | None = None) -> dict:
    """Compress one source at every ratio; returns the output row (see ``extra-cot compress``).
    ``scored``: this CoT's ``(units, raw scores)`` when already computed (see :func:`score_units`)."""
    units, scores = score_units(src, scorer, options, scored)
    counts = unit_token_counts(src.cot, units, tokenizer)
    tol = options.select.tolerance
    best: dict[str, tuple[float, str, float]] = {}
    dropped, fits = {}, {}
    for ratio in options.ratios:
        sel = compress_to_ratio(src.cot, units, scores, counts, src.gold, ratio, count, options.select)
        key = f"{ratio:g}"
        fits[key] = sel.fits
        bucket = nearest_bucket(sel.realized, FIXED_RATIOS)
        reason = None
        problems = math_problems(src.cot, sel.text)  # never write a broken formula (issue 9)
        if problems:  # counted per gate reason: dropped@r:math_integrity:<kind>
            reason = f"math_integrity:{problem_kind(problems[0])}({problems[0]})"
        elif abs(sel.realized - bucket) > tol:
            reason = f"off_bucket(realized={sel.realized:.3f})"
        else:  # a wrong equation without its correction (the source itself is exempt): selection prevents it
            reason = (fidelity_reason(sel.text) if sel.text != src.cot else None) or degeneracy_reason(
                sel.text, bucket, options.filters)
        if reason is not None:
            dropped[key] = reason
            continue
        bkey = f"{bucket:g}"
        if bkey != key:
            dropped[key] = f"landed_in_bucket_{bkey}"
        if bkey not in best or abs(sel.realized - bucket) < abs(best[bkey][0] - bucket):
            best[bkey] = (sel.realized, sel.text, ratio)
    return {
        "question": src.question,
        "cot": src.cot,
        "answer": src.answer,
        "gold": src.gold,
        "compressed": {k: v[1] for k, v in sorted(best.items())},
        "realized": {k: round(v[0], 4) for k, v in sorted(best.items())},
        "fits": fits,
        "dropped": dropped,
    }


# ---- input readers ---------------------------------------------------------------------------

def _need(row: dict, name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: field {name!r} is missing or not a non-empty string")
    return value


def read_gsm8k(row: dict, where: str, strip_annotations: bool = False) -> tuple[Source | None, str | None]:
    """GSM8K ``{"question", "answer": "...#### 72"}``: the worked solution is the CoT and the
    answer part is built as ``The final answer is \\boxed{72}.`` (datasets' solutions are correct)."""
    question, answer = _need(row, "question", where), _need(row, "answer", where)
    cot, gold = split_solution(answer, where)
    cot = _GSM8K_ANNOT.sub("", cot).strip() if strip_annotations else cot
    if not cot:
        return None, "empty_cot"
    return Source(question.strip(), cot, f"The final answer is $\\boxed{{{gold}}}$.", gold), None


def read_response(row: dict, where: str, strip_annotations: bool = False) -> tuple[Source | None, str | None]:
    """A model output ``{"question", "response", "gold"}``; wrong or unclosed traces are skipped."""
    from extra_cot.fileio import require_gold
    from extra_cot.grading import grade
    from extra_cot.think import split_think

    question, response = _need(row, "question", where), _need(row, "response", where)
    gold = require_gold(row, "gold", where)  # needed to drop wrong source traces; a list or bool is refused
    think, answer = split_think(response)
    if think is None or not think.strip():
        return None, "no_closed_think"
    if not grade(answer, gold):
        return None, "wrong_answer"
    return Source(question.strip(), think, answer, gold), None


#: --input-format name -> reader(row, where, strip_annotations) -> (Source | None, skip reason)
READERS = {"gsm8k": read_gsm8k, "responses": read_response}
