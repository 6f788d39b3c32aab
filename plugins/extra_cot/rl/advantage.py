"""CHRPO's hierarchical group advantage: a pure tensor function (no verl import).

The reward/estimator contract (verl hands an estimator nothing but one scalar per response):

    score = tier + fraction,   tier = floor(score) (an integer), fraction in [0, 1)

``extra_cot.rl.reward`` writes scores this way (tiers invalid < wrong < correct; within a
tier the fraction is the efficiency bonus or the constraint term); this module reads them back
with :func:`split_score`. Per prompt group (``index``):

1. tier level: ``z_t = (tier - mean_g) / (std_g + eps)`` (GRPO-style; no division by std
   when ``norm_by_std`` is false);
2. fraction level, normalized *within the same tier of the same group*:
   ``z_f = (frac - mean_{g,tier}) / (std_{g,tier} + eps)``, so a small efficiency signal is not
   washed out by the correctness variance;
3. lexicographic combination: ``A = z_t + bonus_weight * h_g * tanh(z_f)`` with
   ``h_g = 0.5 / (std_g + eps)`` (half the smallest possible normalized gap between two integer
   tiers; ``0.5`` without std normalization) or ``h_g = 1`` when the group holds one tier only.
   Because ``bonus_weight < 1`` and ``|tanh| <= 1``, every response of a higher tier gets a
   strictly larger advantage than every response of a lower tier, whatever the fractions.

Groups of one response, all-equal groups and empty masks give zero advantage.

Control-token weighting (DeGRPO, Thinkless: arXiv:2505.13379): the first response token is
the ratio choice. With ``control_token_weight = alpha`` its per-token advantage is multiplied
by ``alpha * N / B`` (N = valid response tokens in the batch, B = non-empty responses). Under
verl's default ``loss_agg_mode=token-mean`` (loss = sum / N) that gives the control token the
loss weight ``alpha / B`` (DeGRPO's control term, normalized over sequences) while reasoning
tokens keep ``1 / N``. A positive factor on the advantage commutes with PPO's clip/min, so the
fold is exact for the vanilla (and dual-clip) policy loss; it is folded here rather than in a
registered policy loss because ``actor.policy_loss`` is a strict dataclass that rejects extra
keys, whereas the estimator receives the ``algorithm`` config where ``alpha`` lives. N/B is
taken over the whole batch, not each PPO mini-batch (close when mini-batches are shuffled).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

__all__ = ["ChrpoAdvantageConfig", "chrpo_advantage", "group_ids", "split_score"]


@dataclass(frozen=True)
class ChrpoAdvantageConfig:
    """Options of the ``chrpo`` estimator, read from ``algorithm.chrpo`` (see the preset)."""

    #: weight of the within-tier term, in [0, 1): < 1 keeps the lexicographic order strict.
    bonus_weight: float = 0.5
    #: divide by the group std at each level (GRPO); false = Dr.GRPO-style centring only.
    norm_by_std: bool = True
    #: std floor; verl's GRPO uses 1e-6 (core_algos.compute_grpo_outcome_advantage).
    epsilon: float = 1e-6
    #: DeGRPO alpha for the ratio token; Thinkless uses 1e-3. ``None`` = no separate weight.
    control_token_weight: float | None = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.bonus_weight < 1.0:
            raise ValueError(
                f"algorithm.chrpo.bonus_weight={self.bonus_weight}: must be in [0, 1) so a higher "
                "tier always wins; use e.g. 0.5"
            )
        if not self.epsilon > 0:
            raise ValueError(f"algorithm.chrpo.epsilon={self.epsilon}: must be > 0, e.g. 1e-6")
        if self.control_token_weight is not None and not self.control_token_weight > 0:
            raise ValueError(
                f"algorithm.chrpo.control_token_weight={self.control_token_weight}: must be > 0 "
                "(e.g. 1e-3) or null to disable the separate ratio-token weight"
            )

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None, **defaults: Any) -> ChrpoAdvantageConfig:
        """Build from a (Dict)config mapping; unknown keys raise and list the valid ones."""
        merged = {**defaults, **dict(options or {})}
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - valid)
        if unknown:
            raise ValueError(f"unknown algorithm.chrpo option(s) {unknown}; valid: {sorted(valid)}")
        return cls(**merged)


def split_score(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the contract back: ``(tier, fraction)`` with ``score = tier + fraction``."""
    tier = torch.floor(scores)
    return tier, scores - tier


def group_ids(index: Any, size: int) -> torch.Tensor:
    """Dense int64 group ids from verl's ``uid`` array (any hashable values); None = one group."""
    if index is None:
        return torch.zeros(size, dtype=torch.long)
    _, inverse = np.unique(np.asarray(index, dtype=object).astype(str), return_inverse=True)
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.long)


def _group_z(values: torch.Tensor, gid: torch.Tensor, norm_by_std: bool, eps: float):
    """Per-group z-scores (0 in groups of one), plus each element's group std."""
    n = gid.numel()  # ids are dense (np.unique / torch.unique inverses), so at most n groups
    count = torch.bincount(gid, minlength=n)
    mean = torch.zeros(n, dtype=values.dtype).index_add_(0, gid, values) / count.clamp(min=1)
    dev = values - mean[gid]  # exactly 0 in a group of one, so its z is 0 too
    # Unbiased std, as torch.std in verl's GRPO.
    var = torch.zeros(n, dtype=values.dtype).index_add_(0, gid, dev * dev) / (count - 1).clamp(min=1)
    std = var.sqrt()[gid]
    z = dev / (std + eps) if norm_by_std else dev
    return z, std


def _sequence_advantage(scores: torch.Tensor, gid: torch.Tensor, options: ChrpoAdvantageConfig):
    """One scalar advantage per response (the three steps of the module docstring)."""
    scores = scores.to(torch.float64)  # float32 std of large groups drifts; cost is negligible
    tier, frac = split_score(scores)
    z_tier, std_tier = _group_z(tier, gid, options.norm_by_std, options.epsilon)
    # Sub-groups: same prompt group and same tier (rows of (group, tier) pairs; tiers are whole numbers).
    _, sub = torch.unique(torch.stack([gid, tier], dim=1), dim=0, return_inverse=True)
    z_frac, _ = _group_z(frac, sub, options.norm_by_std, options.epsilon)
    one_tier = std_tier == 0
    half_gap = 0.5 / (std_tier + options.epsilon) if options.norm_by_std else torch.full_like(std_tier, 0.5)
    half_gap = torch.where(one_tier, torch.ones_like(half_gap), half_gap)
    return z_tier + options.bonus_weight * half_gap * torch.tanh(z_frac)


def chrpo_advantage(
    scores: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any = None,
    options: ChrpoAdvantageConfig | None = None,
) -> torch.Tensor:
    """Token-level CHRPO advantages shaped like ``response_mask`` (``scores``: one per row)."""
    options = options or ChrpoAdvantageConfig()
    mask = response_mask.to(torch.float32)
    if scores.numel() == 0:
        return torch.zeros_like(mask)
    gid = group_ids(index, scores.shape[0])
    per_seq = _sequence_advantage(scores.detach().cpu(), gid, options).to(mask.device, torch.float32)
    adv = per_seq.unsqueeze(-1) * mask
    alpha = options.control_token_weight
    row_len = mask.sum(dim=-1)
    has_tokens = row_len > 0
    if alpha is not None and bool(has_tokens.any()):
        factor = alpha * float(row_len.sum()) / float(has_tokens.sum())
        # The first valid token is the ratio choice; verl left-aligns responses, so it is
        # column 0 except in rare left-masked rows (argmax only over those: a full pass costs).
        rows = torch.nonzero(has_tokens).squeeze(-1)
        first = torch.zeros_like(rows)
        shifted = mask[rows, 0] == 0
        if bool(shifted.any()):
            first[shifted] = mask[rows[shifted]].argmax(dim=-1)
        adv[rows, first] = adv[rows, first] * factor
    return adv


def control_token_factor(response_mask: torch.Tensor, alpha: float) -> float:
    """The factor the ratio token's advantage gets (exposed for tests and logging)."""
    mask = response_mask.to(torch.float32)
    n_seqs = float((mask.sum(dim=-1) > 0).sum())
    return math.nan if n_seqs == 0 else alpha * float(mask.sum()) / n_seqs
