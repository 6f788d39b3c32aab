"""RL data selection (docs/method.md Stage 3, "RL data"): pure functions over evaluation records.

For each question, from the SFT model's sweep at every fixed ratio (pass@n over ``sample``s):

* pass map: ratio -> any sample correct;
* γ*(x): the lowest ratio that passes with every higher ratio passing too (else drop x;
  the rule: :func:`extra_cot.gamma.gt_ratio`);
* ``ref_full_len``: mean think tokens of the correct samples at ``<COMP_100>``;
* window: ρ = (mean think tokens of the correct samples at γ*) / ref_full_len must lie in
  [γ* − τ, γ* + τ) with τ = 0.1 (``comp_tolerance``);
* per-ratio quotas over γ* (docs/method.md Stage 2 policy quotas 18/24/26/22/10 %).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from extra_cot.gamma import gt_ratio
from extra_cot.quotas import allocate
from extra_cot.tokens import FIXED_RATIOS

#: docs/method.md Stage 3: comp_tolerance τ.
DEFAULT_TOLERANCE = 0.1
#: Ways a question can be dropped before quotas (the table's columns).
DROP_REASONS = ("incomplete", "no_pass", "no_ref_len", "window")


@dataclass
class QuestionStats:
    """One question's sweep results, aggregated over samples."""

    dataset: str
    index: int
    question: str
    gold: str
    passed: dict[float, bool] = field(default_factory=dict)
    think: dict[float, float | None] = field(default_factory=dict)  # mean over correct samples
    over_budget: int = 0  # ratios whose every correct sample overran the budget (aggregate's budget_tolerance)


@dataclass(frozen=True)
class Decision:
    """What happens to one question: ``status`` is ``"kept"`` or one of ``DROP_REASONS``."""

    status: str
    gt_ratio: float | None = None
    ref_full_len: float | None = None
    rho: float | None = None


def aggregate(dataset: str, records_by_ratio: Mapping[float, Iterable[Mapping]],
              budget_tolerance: float | None = None) -> dict[int, QuestionStats]:
    """Group prediction records (eval contract, fields checked by ``build_rl.check_record``) by
    ``index``: pass@n and mean correct think tokens.

    ``budget_tolerance`` τ (ours, not the paper's; None = plain pass@n, the paper's rule and
    ``build-rl``'s, whose window check drops such questions instead): a correct sample passes a ratio
    r below the largest only if it stayed within r's budget, think tokens <= (r + τ) x the question's
    ``ref_full_len`` (mean think tokens of the correct samples at the largest ratio). A sample that
    ignored its control token and wrote the whole chain is no evidence that r suffices; counted as a
    pass it would label a hard question γ* = 0.2 (docs/study.md, "γ* from passes within budget").
    The discounted passes are counted per question in ``over_budget``."""
    records_by_ratio = {r: list(recs) for r, recs in records_by_ratio.items()}
    stats: dict[int, QuestionStats] = {}
    correct_think: dict[tuple[int, float], list[int]] = {}
    for ratio, records in records_by_ratio.items():
        for rec in records:
            idx = int(rec["index"])
            item = stats.setdefault(idx, QuestionStats(dataset, idx, rec["question"], rec["gold"]))
            if (item.question, item.gold) != (rec["question"], rec["gold"]):
                raise ValueError(f"{dataset} index {idx}: records at ratio {ratio:g} disagree on the question or "
                                 f"gold ({rec['gold']!r} vs {item.gold!r}): the sweep mixes two question sets")
            ok = rec["correct"] is True  # checked to be a bool by build_rl.check_record: never bool("false")
            item.passed[ratio] = item.passed.get(ratio, False) or ok
            if ok and int(rec.get("think_tokens") or 0) > 0:
                correct_think.setdefault((idx, ratio), []).append(int(rec["think_tokens"]))
    for item in stats.values():
        for ratio in item.passed:
            lengths = correct_think.get((item.index, ratio))
            item.think[ratio] = sum(lengths) / len(lengths) if lengths else None
    if budget_tolerance is not None:
        _within_budget(stats, records_by_ratio, budget_tolerance)
    return stats


def _within_budget(stats: Mapping[int, QuestionStats], records_by_ratio: Mapping[float, Sequence[Mapping]],
                   tolerance: float) -> None:
    """:func:`aggregate`'s ``budget_tolerance``: recompute ``passed`` below the largest ratio from the
    correct samples within budget (a question without a correct sample at the largest ratio has no
    ``ref_full_len`` and keeps plain pass@n: it has no γ* either way)."""
    if tolerance < 0:
        raise ValueError(f"budget tolerance must be >= 0, got {tolerance}")
    top = max(records_by_ratio)
    within: dict[tuple[int, float], bool] = {}
    for ratio, records in records_by_ratio.items():
        for rec in records:
            idx = int(rec["index"])
            ref = stats[idx].think.get(top)
            fits = ratio == top or not ref or int(rec.get("think_tokens") or 0) <= (ratio + tolerance) * ref
            within[idx, ratio] = within.get((idx, ratio), False) or (rec["correct"] is True and fits)
    for item in stats.values():
        for ratio in item.passed:
            if item.passed[ratio] and not within[item.index, ratio]:
                item.passed[ratio] = False
                item.over_budget += 1


def in_window(rho: float, target: float, tolerance: float) -> bool:
    """docs/method.md Stage 3: ρ ∈ [γ* − τ, γ* + τ) (half-open, as stated)."""
    return target - tolerance - 1e-9 <= rho < target + tolerance - 1e-9


def decide(item: QuestionStats, tolerance: float, ratios: Iterable[float] = FIXED_RATIOS) -> Decision:
    """Keep or drop one question (before quotas)."""
    ratios = tuple(ratios)
    if any(r not in item.passed for r in ratios):
        return Decision("incomplete")
    target = gt_ratio(item.passed, ratios)
    if target is None:
        return Decision("no_pass")
    ref = item.think.get(max(ratios))
    if not ref:
        return Decision("no_ref_len", gt_ratio=target)
    think_at_target = item.think.get(target)
    rho = (think_at_target or 0.0) / ref
    if not in_window(rho, target, tolerance):
        return Decision("window", gt_ratio=target, ref_full_len=ref, rho=rho)
    return Decision("kept", gt_ratio=target, ref_full_len=ref, rho=rho)


def select_quota(
    candidates: Mapping[float, list], quotas: Mapping[float, float] | None, num_rows: int | None, seed: int
) -> dict[float, list]:
    """Seeded sample of each bucket down to its :func:`extra_cot.quotas.allocate` target."""
    targets = allocate({r: len(rows) for r, rows in candidates.items()}, quotas, num_rows)
    rng = random.Random(seed)
    out = {}
    for ratio in sorted(candidates):
        rows = list(candidates[ratio])
        rng.shuffle(rows)
        out[ratio] = sorted(rows[: targets[ratio]], key=lambda q: (q.dataset, q.index))
    return out
