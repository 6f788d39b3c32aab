"""Budgeted selection of units: hit a target ratio measured with the TARGET tokenizer.

``ratio = T(compressed think) / T(original think)`` where ``T`` counts the target model's
non-special tokens (docs/method.md, "Stage 1": the authors used tiktoken cl100k as a proxy; the
target's own tokenizer is what the trained model will actually emit). One score vector per CoT
serves every ratio: only this cheap selection runs per ratio.

Pure functions over units, scores and a ``count_tokens(text) -> int`` callable.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from extra_cot.compress.segment import UNSPACED, Unit, formula_spans, formulas

CountFn = Callable[[str], int]
_PUNCT_ONLY = re.compile(r"[.,;:!?]+")
_UNSPACED_RE = re.compile(f"[{UNSPACED}]")


@dataclass(frozen=True)
class SelectOptions:
    """Options of the budgeted selection.

    ``tolerance``: calibration band, docs/method.md (|r̂ − γ| ≤ 0.05). ``aim``: the selection aims
    closer than the band so the exact re-count rarely leaves it ([R], 0.02 measured enough on
    GSM8K with SmolLM2's tokenizer). ``max_steps`` bounds the exact-count correction loop.
    """

    tolerance: float = 0.05
    aim: float = 0.02
    max_steps: int = 400
    keep_boxed: bool = True
    keep_final_statement: bool = True
    repair_rounds: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.aim <= self.tolerance < 0.5:
            raise ValueError(f"need 0 < aim ({self.aim}) <= tolerance ({self.tolerance}) < 0.5; e.g. aim=0.02, tolerance=0.05")
        if self.max_steps < 0 or self.repair_rounds < 1:
            raise ValueError("max_steps must be >= 0 and repair_rounds >= 1")


@dataclass(frozen=True)
class Selection:
    """One compression: the text, its realized ratio, and whether the target fits: the mandatory
    parts fit and whole atoms can reach the calibration band (a 150-token solution made of a
    70-token display and two formulas has no 0.8 compression)."""

    text: str
    realized: float
    kept: tuple[int, ...]
    fits: bool


def unit_token_counts(text: str, units: Sequence[Unit], tokenizer) -> list[int]:
    """Tokens of ``text`` attributed to each unit (by the token's last character), additive."""
    if not units:
        return []
    starts = [u.start for u in units]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    counts = [0] * len(units)
    for s, e in enc["offset_mapping"]:
        if e > s:
            counts[max(0, bisect_right(starts, e - 1) - 1)] += 1
    return counts


def _gold_pattern(gold: str | None) -> re.Pattern | None:
    if not gold:
        return None
    g = gold.strip().strip("$").replace(",", "")
    if not g:
        return None
    return re.compile(rf"(?<![\d.]){re.escape(g)}(?![\d])") if re.fullmatch(r"-?[\d.]+", g) else re.compile(re.escape(g))


def _holds_boxed(unit: Unit) -> bool:
    return unit.formula and "\\boxed" in unit.text


def mandatory_units(units: Sequence[Unit], gold: str | None, options: SelectOptions) -> set[int]:
    """The answer formula (every formula unit holding a ``\\boxed{}``, also inside ``$..$`` or
    a display) and the final-answer statement (the last other unit naming the gold)."""
    keep = set()
    if options.keep_boxed:
        keep |= {i for i, u in enumerate(units) if _holds_boxed(u)}
    pattern = _gold_pattern(gold) if options.keep_final_statement else None
    if pattern is not None:
        for i in range(len(units) - 1, -1, -1):
            if not _holds_boxed(units[i]) and pattern.search(units[i].text.replace(",", "")):
                keep.add(i)
                break
    return keep


def _gap(between: str, adjacent: bool, left: str, right: str) -> str:
    """What separates two kept units whose source gap is ``between``."""
    if adjacent:
        return between if between.strip() == "" else " "
    if "\n" in between:
        return "\n"
    return "" if _UNSPACED_RE.match(left) and _UNSPACED_RE.match(right) else " "


def join_units(source: str, units: Sequence[Unit], kept: set[int]) -> tuple[str, list[tuple[int, int, int]]]:
    """Join kept units; returns the text and ``(unit, out_start, out_end)`` per emitted unit.

    Adjacent source units keep their original gap; across a dropped stretch the gap is a
    newline if the stretch held one, else nothing between two characters of an unspaced script
    (CJK) and a space otherwise. Runs of bare ``.``/``,`` collapse (docs/method.md).
    """
    pieces: list[str] = []
    placed: list[tuple[int, int, int]] = []
    length, prev = 0, None
    for i in sorted(kept):
        u = units[i]
        if _PUNCT_ONLY.fullmatch(u.text) and (not pieces or pieces[-1][-1:] in ".,;:!?"):
            continue
        if prev is None:
            gap = ""
        else:
            gap = _gap(source[units[prev].end:u.start], prev == i - 1, units[prev].text[-1], u.text[0])
        pieces.append(gap + u.text)
        placed.append((i, length + len(gap), length + len(gap) + len(u.text)))
        length += len(gap) + len(u.text)
        prev = i
    return "".join(pieces), placed


def _greedy(counts, scores, mandatory, banned, budget) -> set[int]:
    kept = set(mandatory)
    used = sum(counts[i] for i in kept)
    for i in sorted(range(len(counts)), key=lambda k: (-scores[k], k)):
        if i not in kept and i not in banned and used + counts[i] <= budget:
            kept.add(i)
            used += counts[i]
    return kept


def _adjust(ctx, kept: set[int], ratio: float) -> tuple[set[int], float]:
    """Exact-count correction: drop/add units until within ``aim`` of ``ratio`` (bounded);
    returns the closest selection seen and its realized ratio."""
    source, units, scores, counts, mandatory, banned, total, count, opts = ctx
    best = (float("inf"), kept, 0.0)
    for _ in range(opts.max_steps + 1):
        realized = count(join_units(source, units, kept)[0]) / total
        if abs(realized - ratio) < best[0]:
            best = (abs(realized - ratio), kept, realized)
        gap_tokens = (realized - ratio) * total
        slack = opts.aim * total
        if abs(realized - ratio) <= opts.aim:
            break
        if gap_tokens > 0:
            pool = [i for i in kept if i not in mandatory and counts[i] <= gap_tokens + slack]
            pool = pool or [i for i in kept if i not in mandatory]
            if not pool:
                break
            kept = kept - {min(pool, key=lambda k: (scores[k], -k))}
        else:
            pool = [i for i in range(len(units)) if i not in kept and i not in banned
                    and 0 < counts[i] <= -gap_tokens + slack]
            if not pool:
                break
            kept = kept | {max(pool, key=lambda k: (scores[k], -k))}
    return best[1], best[2]


def _plan_big_units(ctx, ratio: float, band: float) -> set[int] | None:
    """Units too big for the fine-tuning step (more tokens than the aim's slack: long displays,
    environments, the equations of a short CoT) chosen by a 0/1 knapsack: among the subsets whose
    size lets the small units close the rest of the gap (a miss within ``band``, a fraction of the
    source), the one of highest total score, so that a decisive equation is not traded for a
    check of another size. Returns the chosen big units, or ``None`` when no subset comes within
    ``band`` of the target: the target is unreachable at formula granularity."""
    _, units, scores, counts, mandatory, banned, total, _, opts = ctx
    free = [i for i in range(len(units)) if i not in mandatory and i not in banned and counts[i] > 0]
    big = sorted((i for i in free if counts[i] > opts.aim * total), key=lambda k: (-scores[k], k))
    small_sum = sum(counts[i] for i in free if counts[i] <= opts.aim * total)
    need = ratio * total - sum(counts[i] for i in mandatory)
    cap = need + band * total  # a larger sum misses by more than the band

    def miss(s: int) -> float:
        return max(0.0, s - need) + max(0.0, need - s - small_sum)

    best: dict[int, float] = {0: 0.0}  # reachable size -> highest score of a subset of that size
    took: list[dict[int, int]] = []  # per big unit: size -> size before it, where taking it is best
    for i in big:
        layer: dict[int, int] = {}
        for s, score in list(best.items()):
            t = s + counts[i]
            if t <= cap and (t not in best or score + scores[i] > best[t]):
                best[t], layer[t] = score + scores[i], s
        took.append(layer)
    s = min(best, key=lambda k: (miss(k), -best[k], -k))
    if miss(s) > band * total:
        return None
    chosen = set()
    for i, layer in zip(reversed(big), reversed(took)):
        if s in layer:
            chosen.add(i)
            s = layer[s]
    return chosen


def _select(ctx, ratio: float) -> tuple[set[int], bool]:
    """Score-led greedy fill plus exact correction; when big atoms make that miss the aim, a
    subset-sum plan of the big atoms first. Returns the kept units and whether the calibration
    band is reachable at all."""
    source, units, scores, counts, mandatory, banned, total, count, opts = ctx
    kept, realized = _adjust(ctx, _greedy(counts, scores, mandatory, banned, ratio * total), ratio)
    if abs(realized - ratio) <= opts.aim:
        return kept, True
    plan = _plan_big_units(ctx, ratio, opts.aim)
    plan = _plan_big_units(ctx, ratio, opts.tolerance) if plan is None else plan
    if plan is None:
        return kept, abs(realized - ratio) <= opts.tolerance
    unchosen = {i for i in range(len(units)) if counts[i] > opts.aim * total} - plan - mandatory
    planned = (source, units, scores, counts, mandatory | plan, banned | unchosen, total, count, opts)
    kept2, realized2 = _adjust(planned, _greedy(counts, scores, mandatory | plan, banned | unchosen, ratio * total), ratio)
    return (kept2, True) if abs(realized2 - ratio) < abs(realized - ratio) else (kept, True)


def _violating_units(units: Sequence[Unit], out: str, placed, allowed: set[str], protected: set[int]) -> set[int]:
    """Kept units that take part in a formula of ``out`` that is not verbatim from the source:
    its words, or else its unprotected formulas (dropping them breaks the spurious formula). Two
    literal dollars brought together that now pair as math are such a formula."""
    bad: set[int] = set()
    for s, e in formula_spans(out):
        if out[s:e] in allowed:
            continue
        inside = [i for i, a, b in placed if a < e and b > s and i not in protected]
        words = [i for i in inside if not units[i].formula]
        bad |= set(words or inside[:1])
    return bad


def compress_to_ratio(source, units, scores, counts, gold, ratio, count: CountFn, options: SelectOptions) -> Selection:
    """Compress ``source`` (already segmented and scored) to ``ratio`` of its target tokens.

    Joining non-adjacent units can create a formula that is not in the source ("14" + "*200"):
    such units are banned and the selection redone (``repair_rounds``), then dropped outright.
    """
    total = max(1, count(source))
    mandatory = mandatory_units(units, gold, options)
    fits = sum(counts[i] for i in mandatory) <= (ratio + options.tolerance) * total
    if ratio >= 1.0:
        return Selection(source, 1.0, tuple(range(len(units))), True)
    allowed = set(formulas(source))
    banned: set[int] = set()
    for _ in range(options.repair_rounds):
        ctx = (source, units, scores, counts, mandatory, banned, total, count, options)
        kept, reachable = _select(ctx, ratio)
        out, placed = join_units(source, units, kept)
        bad = _violating_units(units, out, placed, allowed, mandatory)
        if not bad:
            break
        banned |= bad
    while bad:  # last resort: drop the offending units without refilling
        kept -= bad
        out, placed = join_units(source, units, kept)
        bad = _violating_units(units, out, placed, allowed, mandatory)
    return Selection(out, count(out) / total, tuple(sorted(i for i, _, _ in placed)), fits and reachable)


def nearest_bucket(realized: float, buckets: Sequence[float]) -> float:
    """The calibration bucket: nearest of ``buckets`` (docs/method.md)."""
    return min(buckets, key=lambda b: (abs(realized - b), b))
