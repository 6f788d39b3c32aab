"""The frontier measure of a ``<COMP_AUTO>`` policy (issue 36, item 3; pure functions).

The paper's claim is a frontier claim: the policy keeps the full budget's accuracy at fewer think
tokens than any fixed ratio that reaches it. Here:

* the **fixed-ratio frontier** is accuracy against mean think tokens of the five fixed-ratio runs,
  linearly interpolated between neighbouring points *sorted by tokens* (plain, not a hull:
  :func:`extra_cot.stats.interpolate`); outside their token range it is the nearest end's accuracy;
* the **frontier gap** is the policy's accuracy minus the frontier at the policy's own mean think
  tokens, with a paired bootstrap 95 % interval: each round resamples the questions once and
  recomputes every run's accuracy and tokens on that sample (:func:`frontier_gap`);
* the paper's form: the policy within 3 points of the 1.0 accuracy at <= 60 % of its think tokens;
* the **oracle by grade**: each grade's lowest fixed ratio within 3 points of the 1.0 accuracy on
  the validation split, applied to the test split by taking, per question, the run already made at
  its grade's ratio (:func:`oracle_choice`, :func:`oracle_records`). Its frontier gap is what a
  perfect grade-aware chooser gets; ``realized_share`` = the policy's gap over the oracle's.
* the **oracle by grade, max gap** (ours, 2026-12-07): the 3-point rule answers "how close to 1.0", not
  the frontier measure, and on 25 validation questions a grade one question short of 1.0 is already 4
  points under it (the chains record's rule chose 0.8 / 0.6 / 0.4 / 0.6 and sat below the frontier).
  :func:`oracle_gap_choice` instead takes, over every assignment of a fixed ratio to each grade, the one
  whose validation frontier gap is largest: the best grade-aware chooser by the measure the target uses,
  still chosen on validation and applied to test from the runs already made.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence

from extra_cot.evalsummary import Columns, per_question
from extra_cot.stats import interpolate, percentile_interval

#: Issue 36: "within 3 points of the 1.0 accuracy at <= 60 % of its think tokens".
POINTS, TOKEN_SHARE = 0.03, 0.6

def _point(cols: Columns, picks: Sequence[int]) -> tuple[float, float]:
    """(mean think tokens, accuracy) of one run over the question indices ``picks``."""
    return (sum(cols[1][i] for i in picks) / len(picks), sum(cols[0][i] for i in picks) / len(picks))


def gap_at(fixed: Mapping[str, Columns], run: Columns, picks: Sequence[int]) -> tuple[float, float, float]:
    """(accuracy of ``run`` minus the frontier at its mean tokens, its tokens, the frontier there)."""
    tokens, acc = _point(run, picks)
    front = interpolate([_point(cols, picks) for cols in fixed.values()], tokens)
    return acc - front, tokens, front


def frontier_gap(fixed: Mapping[str, Columns], run: Columns, n_boot: int = 2000, seed: int = 0) -> dict:
    """``run``'s accuracy above the fixed-ratio frontier at its own mean think tokens, with a paired
    bootstrap 95 % interval (questions resampled jointly across every run)."""
    n = len(run[0])
    if n == 0 or any(len(c[0]) != n or len(c[1]) != n for c in (*fixed.values(), run)):
        raise ValueError(f"frontier_gap needs every run over the same non-empty questions, got {n}")
    value, tokens, front = gap_at(fixed, run, range(n))
    rng = random.Random(seed)
    draws = [gap_at(fixed, run, [rng.randrange(n) for _ in range(n)])[0] for _ in range(n_boot)]
    lo, hi = percentile_interval(draws)
    return {"value": round(value, 4), "ci": [round(lo, 4), round(hi, 4)], "think_tokens": round(tokens, 2),
            "frontier_accuracy": round(front, 4)}


def gap_difference(fixed: Mapping[str, Columns], run: Columns, other: Columns, n_boot: int = 2000,
                   seed: int = 0) -> dict:
    """``run``'s frontier gap minus ``other``'s (two policies over the same questions, e.g. CHRPO's and the
    SFT model's), with a paired bootstrap 95 % interval: each round resamples the questions once for every
    run, the fixed ones included."""
    n = len(run[0])
    if n == 0 or any(len(c[0]) != n or len(c[1]) != n for c in (*fixed.values(), run, other)):
        raise ValueError(f"gap_difference needs every run over the same non-empty questions, got {n}")

    def diff(picks: Sequence[int]) -> float:
        return gap_at(fixed, run, picks)[0] - gap_at(fixed, other, picks)[0]

    rng = random.Random(seed)
    lo, hi = percentile_interval([diff([rng.randrange(n) for _ in range(n)]) for _ in range(n_boot)])
    return {"value": round(diff(range(n)), 4), "ci": [round(lo, 4), round(hi, 4)]}


def within_points(run: Mapping, full: Mapping, points: float = POINTS, share: float = TOKEN_SHARE) -> dict:
    """The paper's form: ``run`` within ``points`` of ``full``'s accuracy at <= ``share`` of its tokens."""
    gap = full["accuracy"] - run["accuracy"]
    used = run["think_tokens"] / full["think_tokens"] if full["think_tokens"] else float("inf")
    return {"value": {"accuracy_below_1.0": round(gap, 4), "think_token_share": round(used, 4)},
            "target": f"accuracy >= 1.0's - {points:g} at <= {share:.0%} of its think tokens",
            "met": bool(gap <= points + 1e-12 and used <= share)}


def oracle_choice(by_grade: Mapping[str, Mapping[str, float]], points: float = POINTS) -> dict[str, str]:
    """Per grade, the lowest fixed ratio whose accuracy is within ``points`` of the 1.0 accuracy:
    ``by_grade`` = ``{ratio: {grade: accuracy}}`` (the validation split's)."""
    ratios = sorted(by_grade, key=float)
    full = by_grade[ratios[-1]]
    return {g: next(r for r in ratios if by_grade[r].get(g, -1.0) >= full[g] - points - 1e-12)
            for g in sorted(full, key=int)}


def oracle_records(records: Mapping[str, Sequence[Mapping]], grades: Sequence[int],
                   chosen: Mapping[str, str]) -> list[dict]:
    """Per question, the records of the run at its grade's chosen ratio (runs already made)."""
    return [dict(rec) for ratio in sorted(set(chosen.values()), key=float) for rec in records[ratio]
            if chosen.get(str(grades[int(rec["index"])])) == ratio]


def oracle_gap_choice(records: Mapping[str, Sequence[Mapping]], grades: Sequence[int]) -> dict[str, str]:
    """The assignment of one fixed ratio per grade whose picked records (:func:`oracle_records`) lie
    furthest above the frontier of ``records`` (``{ratio: records}`` of one split, validation) at their
    own mean think tokens; ties go to fewer think tokens, then to the lower ratios. Exhaustive:
    ``len(records) ** grades`` assignments (625 for five ratios and four grades)."""
    n = len(grades)
    fixed = {r: per_question(recs, n) for r, recs in records.items()}
    names = sorted({str(g) for g in grades}, key=int)
    best: tuple | None = None
    for combo in itertools.product(sorted(records, key=float), repeat=len(names)):
        chosen = dict(zip(names, combo, strict=True))
        gap, tokens, _ = gap_at(fixed, per_question(oracle_records(records, grades, chosen), n), range(n))
        key = (-round(gap, 9), round(tokens, 9), [float(r) for r in combo])
        if best is None or key < best[0]:
            best = (key, chosen)
    if best is None:
        raise ValueError("oracle_gap_choice needs at least one fixed-ratio run and one grade")
    return best[1]


def realized_share(policy_gap: float, oracle_gap: float) -> float | None:
    """The share of the oracle's gain over the fixed-ratio frontier that the policy realizes (None
    when the oracle gains nothing)."""
    return round(policy_gap / oracle_gap, 4) if oracle_gap > 0 else None
