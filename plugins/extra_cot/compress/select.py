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

from extra_cot.compress.decisive import dead_ends
from extra_cot.compress.joined import JoinCount, Pools, join_units
from extra_cot.compress.segment import Unit, formula_spans, formulas

CountFn = Callable[[str], int]


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
    returns the closest selection seen and its realized ratio.

    Each step drops the lowest-scored kept unit that fits the excess (any, if none fits) or adds
    the highest-scored unit that fits the shortfall. The count of the join is kept up to date by
    :class:`~extra_cot.compress.joined.JoinCount` and re-counted whole before the loop stops, so a
    step costs a few short counts, not a re-count of the chain (issue 37)."""
    source, units, scores, counts, mandatory, banned, total, count, opts = ctx
    joined = JoinCount(source, units, kept, count)
    pools = Pools(counts, scores, joined.kept, mandatory, banned)
    moves: list[int] = []
    best = (float("inf"), 0, 0.0, True)  # (miss, moves made, realized, exact)
    while True:
        realized = joined.tokens / total
        gap_tokens, slack = (realized - ratio) * total, opts.aim * total
        move = None
        if abs(realized - ratio) > opts.aim and len(moves) < opts.max_steps:
            move = (pools.pick_drop(joined.kept, gap_tokens + slack) if gap_tokens > 0
                    else pools.pick_add(joined.kept, -gap_tokens + slack))
        if move is None and not joined.synced:
            joined.sync()  # the loop stops here: decide on the exact count
            continue
        if abs(realized - ratio) < best[0]:
            best = (abs(realized - ratio), len(moves), realized, joined.synced)
        if move is None:
            break
        joined.toggle(move)
        pools.push(move, move in joined.kept)
        moves.append(move)
    kept = set(joined.kept)
    for i in reversed(moves[best[1]:]):  # undo the moves made after the best selection
        kept ^= {i}
    return kept, best[2] if best[3] else count(join_units(source, units, kept)[0]) / total


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


def _lone_dead_ends(dead: dict[int, int | None], placed) -> set[int]:
    """Emitted wrong equations whose correction is not emitted (issue 36: ``7 * 3 = 20`` kept
    without ``7 * 3 = 21``)."""
    emitted = {i for i, _, _ in placed}
    return {i for i, fix in dead.items() if i in emitted and fix not in emitted}


def compress_to_ratio(source, units, scores, counts, gold, ratio, count: CountFn, options: SelectOptions) -> Selection:
    """Compress ``source`` (already segmented and scored) to ``ratio`` of its target tokens.

    Joining non-adjacent units can create a formula that is not in the source ("14" + "*200"):
    such units are banned and the selection redone (``repair_rounds``), then dropped outright.
    A dead end (a wrong equation, :func:`~extra_cot.compress.decisive.dead_ends`) is kept only
    with its correction: kept alone, it is banned the same way; a mandatory one brings its
    correction; one never corrected in the source is never mandatory.
    """
    total = max(1, count(source))
    dead = dead_ends(units)
    mandatory = {i for i in mandatory_units(units, gold, options) if i not in dead or dead[i] is not None}
    mandatory |= {dead[i] for i in mandatory if i in dead}
    fits = sum(counts[i] for i in mandatory) <= (ratio + options.tolerance) * total
    if ratio >= 1.0:
        return Selection(source, 1.0, tuple(range(len(units))), True)
    allowed = set(formulas(source))
    banned: set[int] = set()
    for _ in range(options.repair_rounds):
        ctx = (source, units, scores, counts, mandatory, banned, total, count, options)
        kept, reachable = _select(ctx, ratio)
        out, placed = join_units(source, units, kept)
        bad = _violating_units(units, out, placed, allowed, mandatory) | _lone_dead_ends(dead, placed)
        if not bad:
            break
        banned |= bad
    while bad:  # last resort: drop the offending units without refilling
        kept -= bad
        out, placed = join_units(source, units, kept)
        bad = _violating_units(units, out, placed, allowed, mandatory) | _lone_dead_ends(dead, placed)
    return Selection(out, count(out) / total, tuple(sorted(i for i, _, _ in placed)), fits and reachable)


def nearest_bucket(realized: float, buckets: Sequence[float]) -> float:
    """The calibration bucket: nearest of ``buckets`` (docs/method.md)."""
    return min(buckets, key=lambda b: (abs(realized - b), b))
