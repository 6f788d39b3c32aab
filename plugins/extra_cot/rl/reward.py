"""CHRPO's hierarchical, length-and-correctness reward: pure functions (no verl, no torch).

docs/method.md Stage 3 ([R], our reconstruction). The score follows the contract read by
``extra_cot.rl.advantage``: ``score = tier + fraction`` with an integer tier and a fraction in
[0, 1):

* invalid (no leading fixed-ratio token, or a think layout other than one ``<think>`` then one
  ``</think>``: unclosed, missing, a second block, nested or stray tags) -> ``tier_invalid``;
* wrong answer -> ``tier_wrong``; with the accuracy constraint, the fraction is
  ``safe_wrong_fraction`` when the chosen ratio γ_c >= γ*(x) (the reference pass map says that
  budget suffices) and 0 when γ_c < γ*(x): failing under a too-small budget costs more;
* correct answer -> ``tier_correct`` plus a bonus that rises as γ_c falls,
  ``max_bonus * (1 - γ_c) / (1 - min_ratio)``, paid only when calibrated:
  ``|r̂ - γ_c| <= τ`` with ``r̂ = think tokens / ref_full_len``, think tokens counted by
  ``extra_cot.think.think_span`` (reasoning outside the block counts; docs/method.md,
  "Think accounting").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from extra_cot.think import think_span
from extra_cot.tokens import FIXED_RATIOS, parse_leading_control

__all__ = ["ChrpoRewardConfig", "RewardResult", "compose_score", "score_outcome", "score_response"]

#: Stand-in for "no value" in logged components (verl logs numbers; None breaks its means).
MISSING = -1.0


@dataclass(frozen=True)
class ChrpoRewardConfig:
    """Options of the CHRPO reward, read from ``reward.reward_kwargs.chrpo`` (see the preset)."""

    #: τ, the calibration band; docs/method.md Stage 3 ``comp_tolerance = 0.1``.
    tolerance: float = 0.1
    #: a row's ``extra_info.comp_tolerance`` (written by ``extra-cot build-rl``) wins over ``tolerance``.
    use_row_tolerance: bool = True
    #: bonus of a calibrated correct answer at the lowest ratio; < 1 by the score contract.
    max_bonus: float = 0.9
    #: the ratio that earns ``max_bonus`` (the lowest fixed ratio, docs/method.md, "Control tokens").
    min_ratio: float = FIXED_RATIOS[0]
    #: pay the bonus only when calibrated (docs/method.md: out-of-band answers lose the bonus).
    require_calibration: bool = True
    #: the accuracy constraint against ``extra_info.gt_ratio`` ("constrained" in CHRPO).
    constraint: bool = True
    #: fraction of a wrong answer at γ_c >= γ*(x) (a wrong answer at γ_c < γ*(x) gets 0).
    safe_wrong_fraction: float = 0.5
    #: integer tiers, strictly increasing: invalid < wrong < correct.
    tier_invalid: int = 0
    tier_wrong: int = 1
    tier_correct: int = 2

    def __post_init__(self) -> None:
        if not self.tier_invalid < self.tier_wrong < self.tier_correct:
            raise ValueError(
                "reward.reward_kwargs.chrpo tiers must satisfy tier_invalid < tier_wrong < tier_correct"
            )
        if any(int(t) != t for t in (self.tier_invalid, self.tier_wrong, self.tier_correct)):
            raise ValueError("reward.reward_kwargs.chrpo tiers must be integers (score = tier + fraction)")
        # Fractions must stay clearly below 1: a float32 score of 2.9999999 would round to tier 3.
        for name in ("max_bonus", "safe_wrong_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.99:
                raise ValueError(f"reward.reward_kwargs.chrpo.{name}={value}: must be in [0, 0.99]")
        if not 0.0 <= self.min_ratio < 1.0:
            raise ValueError(
                f"reward.reward_kwargs.chrpo.min_ratio={self.min_ratio}: must be in [0, 1), e.g. 0.2"
            )
        if not self.tolerance >= 0:
            raise ValueError(f"reward.reward_kwargs.chrpo.tolerance={self.tolerance}: must be >= 0, e.g. 0.1")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> ChrpoRewardConfig:
        """Build from a (Dict)config mapping; unknown keys raise and list the valid ones."""
        options = dict(options or {})
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ValueError(
                f"unknown reward.reward_kwargs.chrpo option(s) {unknown}; valid: {sorted(valid)}"
            )
        return cls(**options)


@dataclass(frozen=True)
class RewardResult:
    """The score and its components (logged by verl as ``reward_extra_info``)."""

    score: float
    tier: int
    valid: bool
    correct: bool
    ratio: float  # γ_c, MISSING when no ratio token
    realized_ratio: float  # r̂, MISSING when unknown
    calibrated: bool
    bonus: float
    think_tokens: int
    #: cut off inside the think block (its tokens are counted; the response is invalid)
    truncated: bool = False

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def compose_score(tier: int, fraction: float) -> float:
    """The contract's writer side: ``tier + fraction`` with ``0 <= fraction < 1``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction {fraction} outside [0, 1): the tier would be misread")
    return float(tier) + float(fraction)


def _correct_bonus(ratio: float, calibrated: bool, cfg: ChrpoRewardConfig) -> float:
    if cfg.require_calibration and not calibrated:
        return 0.0
    share = (1.0 - ratio) / (1.0 - cfg.min_ratio)
    return cfg.max_bonus * min(max(share, 0.0), 1.0)


def score_outcome(
    *,
    valid: bool,
    correct: bool,
    ratio: float | None,
    realized_ratio: float | None,
    gt_ratio: float | None,
    tolerance: float,
    config: ChrpoRewardConfig,
    think_tokens: int = 0,
    truncated: bool = False,
) -> RewardResult:
    """The hierarchical reward from an already-parsed outcome (numbers in, numbers out)."""
    calibrated = bool(
        valid
        and ratio is not None
        and realized_ratio is not None
        and abs(realized_ratio - ratio) <= tolerance + 1e-9
    )
    if not valid or ratio is None:
        tier, fraction, correct = config.tier_invalid, 0.0, False
    elif correct:
        tier, fraction = config.tier_correct, _correct_bonus(ratio, calibrated, config)
    else:
        tier = config.tier_wrong
        below = config.constraint and gt_ratio is not None and ratio < gt_ratio - 1e-9
        fraction = 0.0 if below or not config.constraint else config.safe_wrong_fraction
    return RewardResult(
        score=compose_score(tier, fraction),
        tier=tier,
        valid=bool(valid and ratio is not None),
        correct=bool(correct),
        ratio=MISSING if ratio is None else float(ratio),
        realized_ratio=MISSING if realized_ratio is None else float(realized_ratio),
        calibrated=calibrated,
        bonus=fraction if tier == config.tier_correct else 0.0,
        think_tokens=int(think_tokens),
        truncated=bool(truncated),
    )


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def score_response(
    response: str,
    ground_truth: str,
    *,
    think_tokens: int,
    extra_info: Mapping[str, Any] | None = None,
    config: ChrpoRewardConfig | None = None,
) -> RewardResult:
    """Score one decoded response (control tokens kept) against its gold answer.

    ``think_tokens`` is counted by the caller with the policy's tokenizer
    (``extra_cot.think.count_think_tokens``), the same count ``ref_full_len`` was built with.
    Only the layout ``<think>…</think>`` once is valid (``ThinkSpan.well_formed``); the answer
    graded is the text after its ``</think>``.
    ``extra_info`` carries ``gt_ratio``, ``ref_full_len`` and ``comp_tolerance`` (RL parquet).
    """
    from extra_cot.grading import grade  # lazy: math-verify is only needed when scoring

    config = config or ChrpoRewardConfig()
    info = dict(extra_info or {})
    choice = parse_leading_control(response)
    ratio = None if choice is None else choice.ratio  # the policy token is not a ratio choice
    span = think_span(response)
    valid = ratio is not None and span.well_formed
    correct = bool(valid and grade(span.answer, str(ground_truth)))
    ref_len = _positive_float(info.get("ref_full_len"))
    realized = think_tokens / ref_len if ref_len else None
    tolerance = config.tolerance
    if config.use_row_tolerance and info.get("comp_tolerance") is not None:
        tolerance = float(info["comp_tolerance"])
    gt_ratio = _positive_float(info.get("gt_ratio"))
    return score_outcome(
        valid=valid,
        correct=correct,
        ratio=ratio,
        realized_ratio=realized,
        gt_ratio=gt_ratio,
        tolerance=tolerance,
        config=config,
        think_tokens=think_tokens,
        truncated=span.truncated,
    )
