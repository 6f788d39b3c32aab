"""The chrpo estimator: brute-force equality, lexicographic order, edge cases, verl call site."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extra_cot.rl.advantage import ChrpoAdvantageConfig, chrpo_advantage, control_token_factor, split_score
from extra_cot.rl.reward import ChrpoRewardConfig, compose_score


def _brute_force(scores, index, opts):
    """Per-sample loop straight from the module docstring (python floats, no vectorization)."""

    def z(value, peers):
        if len(peers) < 2:
            return 0.0
        mean = statistics.fmean(peers)
        if not opts.norm_by_std:
            return value - mean
        return (value - mean) / (statistics.stdev(peers) + opts.epsilon)

    out = []
    for i, s in enumerate(scores):
        tier, frac = math.floor(s), s - math.floor(s)
        group = [j for j in range(len(scores)) if index[j] == index[i]]
        tiers = [math.floor(scores[j]) for j in group]
        same = [scores[j] - math.floor(scores[j]) for j in group if math.floor(scores[j]) == tier]
        std = statistics.stdev(tiers) if len(tiers) > 1 else 0.0
        if std == 0:
            half = 1.0
        else:
            half = 0.5 / (std + opts.epsilon) if opts.norm_by_std else 0.5
        out.append(z(tier, tiers) + opts.bonus_weight * half * math.tanh(z(frac, same)))
    return out


def _random_batch(rng, n_groups, group_size):
    tiers = rng.integers(0, 3, size=n_groups * group_size)
    fracs = rng.choice([0.0, 0.5, rng.random()], size=tiers.shape) * (rng.random(tiers.shape) < 0.7)
    fracs = np.where(rng.random(tiers.shape) < 0.5, rng.random(tiers.shape) * 0.9, fracs)
    scores = tiers + fracs
    index = np.repeat([f"uid-{k}" for k in range(n_groups)], group_size)
    perm = rng.permutation(len(scores))  # groups need not be contiguous
    return torch.tensor(scores[perm], dtype=torch.float32), index[perm].astype(object)


@pytest.mark.parametrize("seed", range(12))
def test_rl_estimator_equals_brute_force_loop(seed):
    rng = np.random.default_rng(seed)
    opts = ChrpoAdvantageConfig(
        bonus_weight=float(rng.uniform(0, 0.99)),
        norm_by_std=bool(seed % 3),
        control_token_weight=None,
    )
    scores, index = _random_batch(rng, n_groups=int(rng.integers(1, 6)), group_size=int(rng.integers(1, 9)))
    mask = torch.ones(len(scores), 5)
    adv = chrpo_advantage(scores, mask, index, opts)
    expected = torch.tensor(_brute_force(scores.double().tolist(), list(index), opts), dtype=torch.float32)
    assert torch.allclose(adv[:, 0], expected, atol=1e-5)
    assert torch.allclose(adv, adv[:, :1].expand_as(adv))


@pytest.mark.parametrize("seed", range(20))
def test_rl_lexicographic_higher_tier_always_wins(seed):
    rng = np.random.default_rng(100 + seed)
    opts = ChrpoAdvantageConfig(bonus_weight=float(rng.uniform(0.0, 0.999)), norm_by_std=bool(seed % 2))
    scores, index = _random_batch(rng, n_groups=4, group_size=8)
    adv = chrpo_advantage(
        scores,
        torch.ones(len(scores), 3),
        index,
        ChrpoAdvantageConfig(
            bonus_weight=opts.bonus_weight, norm_by_std=opts.norm_by_std, control_token_weight=None
        ),
    )[:, 0]
    tier, frac = split_score(scores.double())
    for g in set(index):
        rows = [i for i in range(len(index)) if index[i] == g]
        for i in rows:
            for j in rows:
                if tier[i] > tier[j]:
                    assert adv[i] > adv[j], (scores[i], scores[j], adv[i], adv[j])
                elif tier[i] == tier[j] and frac[i] > frac[j] + 1e-6 and opts.bonus_weight > 0:
                    assert adv[i] > adv[j]  # the bonus still orders responses inside a tier


def test_rl_all_equal_groups_single_and_empty_give_zero():
    scores = torch.tensor([2.4, 2.4, 2.4, 1.0, 1.0, 0.0, 2.9])
    index = np.array(["a", "a", "a", "b", "b", "c", "d"], dtype=object)
    mask = torch.ones(7, 4)
    mask[6] = 0  # an empty response
    adv = chrpo_advantage(scores, mask, index, ChrpoAdvantageConfig())
    assert torch.count_nonzero(adv) == 0
    assert chrpo_advantage(torch.zeros(0), torch.zeros(0, 3), np.array([], dtype=object)).shape == (0, 3)


def test_rl_bonus_alone_is_not_washed_out():
    # All correct: only the efficiency bonus differs, and it still gets an O(1) advantage.
    scores = torch.tensor([2.0, 2.0, 2.9, 2.9])
    adv = chrpo_advantage(
        scores,
        torch.ones(4, 2),
        np.array(["g"] * 4, dtype=object),
        ChrpoAdvantageConfig(control_token_weight=None),
    )[:, 0]
    assert adv[2] > 0.3 and adv[0] < -0.3


def test_rl_control_token_weight_folds_into_first_token():
    scores = torch.tensor([2.5, 1.0, 2.0, 0.0])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.float32)
    index = np.array(["g"] * 4, dtype=object)
    plain = chrpo_advantage(scores, mask, index, ChrpoAdvantageConfig(control_token_weight=None))
    folded = chrpo_advantage(scores, mask, index, ChrpoAdvantageConfig(control_token_weight=1e-3))
    factor = control_token_factor(mask, 1e-3)
    assert factor == pytest.approx(1e-3 * 12 / 4)
    first = [0, 0, 1, 0]
    for row, col in enumerate(first):
        assert folded[row, col] == pytest.approx(plain[row, col] * factor)
        other = [c for c in range(4) if c != col]
        assert torch.equal(folded[row, other], plain[row, other])
    assert torch.equal(folded * (1 - mask), torch.zeros_like(folded))


def test_rl_control_token_factor_counts_only_non_empty_rows():
    """B in α·N/B is the number of non-empty responses: an empty row (all masked) is not a sequence."""
    scores = torch.tensor([2.5, 1.0, 2.0, 0.0])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.float32)
    index = np.array(["g"] * 4, dtype=object)
    plain = chrpo_advantage(scores, mask, index, ChrpoAdvantageConfig(control_token_weight=None))
    folded = chrpo_advantage(scores, mask, index, ChrpoAdvantageConfig(control_token_weight=1e-3))
    expected = 1e-3 * 9 / 3  # N = 9 valid tokens over B = 3 non-empty rows (not 4)
    for row in (0, 1, 3):
        assert folded[row, 0] == pytest.approx(plain[row, 0] * expected)
        assert plain[row, 0] != 0
    assert torch.equal(folded[2], torch.zeros(4))
    assert control_token_factor(mask, 1e-3) == pytest.approx(expected)


def test_rl_score_contract_round_trip():
    cfg = ChrpoRewardConfig()
    for tier in (cfg.tier_invalid, cfg.tier_wrong, cfg.tier_correct):
        for frac in (0.0, 0.25, 0.5, cfg.max_bonus):
            t, f = split_score(torch.tensor([compose_score(tier, frac)], dtype=torch.float32))
            assert int(t) == tier and float(f) == pytest.approx(frac, abs=1e-6)
    with pytest.raises(ValueError):
        compose_score(2, 1.0)


def test_rl_options_are_validated():
    with pytest.raises(ValueError, match="bonus_weight"):
        ChrpoAdvantageConfig(bonus_weight=1.0)
    with pytest.raises(ValueError, match="valid"):
        ChrpoAdvantageConfig.from_mapping({"bonus_wieght": 0.3})


def test_rl_verl_compute_advantage_runs_chrpo():
    import verl  # noqa: F401  (loads our plugin through the entry point)
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from extra_cot.rl.verl_plugin import estimator_options

    rng = np.random.default_rng(0)
    scores, index = _random_batch(rng, n_groups=3, group_size=4)
    mask = torch.ones(len(scores), 6)
    mask[:, 4:] = 0
    rewards = torch.zeros(len(scores), 6)
    rewards[:, 3] = scores  # verl puts the score on the last valid token
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors={"uid": index}
    )
    algo = OmegaConf.create(
        {
            "adv_estimator": "chrpo",
            "norm_adv_by_std_in_grpo": True,
            "chrpo": {"bonus_weight": 0.4, "control_token_weight": 2e-3},
        }
    )
    out = compute_advantage(data, adv_estimator="chrpo", config=algo)
    expected = chrpo_advantage(scores, mask, index, estimator_options(algo))
    assert torch.allclose(out.batch["advantages"], expected)
    assert estimator_options(algo).bonus_weight == 0.4
    # The v1 trainer's call site (compute_advantage_for_multi_trajectories) delegates to the same path.
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    data2 = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors={"uid": index}
    )
    keys = [f"{u}_0_{i}" for i, u in enumerate(index)]
    out2 = compute_advantage_for_multi_trajectories(data2, keys, adv_estimator="chrpo", config=algo)
    assert torch.allclose(out2.batch["advantages"], expected)
    with pytest.raises(ValueError, match="use_kl_in_reward"):
        estimator_options(OmegaConf.create({"use_kl_in_reward": True}))


@settings(max_examples=200, deadline=None)
@given(
    group=st.lists(
        st.tuples(st.integers(-1, 3), st.floats(0.0, 0.99, allow_nan=False)), min_size=1, max_size=16
    ),
    bonus_weight=st.floats(0.0, 0.999),
    norm_by_std=st.booleans(),
)
def test_rl_lexicographic_property_hypothesis(group, bonus_weight, norm_by_std):
    scores = torch.tensor([t + f for t, f in group], dtype=torch.float32)
    opts = ChrpoAdvantageConfig(bonus_weight=bonus_weight, norm_by_std=norm_by_std, control_token_weight=None)
    adv = chrpo_advantage(
        scores, torch.ones(len(group), 1), np.array(["g"] * len(group), dtype=object), opts
    )[:, 0]
    tiers, _ = split_score(scores.double())
    for i in range(len(group)):
        for j in range(len(group)):
            if tiers[i] > tiers[j]:
                assert adv[i] > adv[j]
    if len(set(scores.tolist())) == 1:
        assert torch.count_nonzero(adv) == 0


# --- pinned exactly for the mutation run (docs/mutation.md) ---

def test_rl_group_ids_dense_by_str_and_flat():
    from extra_cot.rl.advantage import group_ids

    none = group_ids(None, 3)
    assert none.dtype == torch.long and none.tolist() == [0, 0, 0]
    ids = group_ids(np.array(["b", "a", "b", "c"], dtype=object), 4)
    assert ids.dtype == torch.long and ids.tolist() == [1, 0, 1, 2]
    # grouped by str(value): 1, 1.0 and True are three uids (a numeric array would merge them)
    assert group_ids([1, 1.0, True], 3).tolist() == [0, 1, 2]
    column = group_ids(np.array([["x"], ["y"], ["x"]], dtype=object), 3)  # a (B, 1) uid column
    assert column.shape == (3,) and column.tolist() == [0, 1, 0]


@pytest.mark.parametrize("seed", range(6))
def test_rl_estimator_equals_brute_force_with_negative_tiers_and_large_epsilon(seed):
    """Tiers below zero and across many groups, and an epsilon large enough that every use of it shows."""
    rng = np.random.default_rng(500 + seed)
    opts = ChrpoAdvantageConfig(bonus_weight=float(rng.uniform(0.1, 0.9)), norm_by_std=bool(seed % 2),
                                epsilon=0.3, control_token_weight=None)
    n_groups, size = 6, int(rng.integers(2, 7))
    scores = rng.integers(-3, 3, size=n_groups * size) + rng.random(n_groups * size) * 0.9
    index = np.repeat([f"g{k}" for k in range(n_groups)], size)[rng.permutation(n_groups * size)].astype(object)
    adv = chrpo_advantage(torch.tensor(scores), torch.ones(len(scores), 2), index, opts)
    expected = torch.tensor(_brute_force(scores.tolist(), list(index), opts), dtype=torch.float32)
    assert torch.allclose(adv[:, 0], expected, atol=1e-6, rtol=0)


def test_rl_index_none_is_one_group():
    scores = torch.tensor([2.0, 1.0, 2.5, 0.0])
    opts = ChrpoAdvantageConfig(control_token_weight=None)
    one = chrpo_advantage(scores, torch.ones(4, 2), None, opts)
    same = chrpo_advantage(scores, torch.ones(4, 2), np.array(["u"] * 4, dtype=object), opts)
    assert torch.equal(one, same) and torch.count_nonzero(one) == 8


def test_rl_sequence_advantage_in_float64_and_empty():
    from extra_cot.rl.advantage import _group_z, _sequence_advantage

    opts = ChrpoAdvantageConfig()
    out = _sequence_advantage(torch.tensor([2.5, 1.0], dtype=torch.float32), torch.tensor([0, 0]), opts)
    assert out.dtype == torch.float64
    empty = _sequence_advantage(torch.zeros(0), torch.zeros(0, dtype=torch.long), opts)
    assert empty.shape == (0,)
    z, std = _group_z(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long), True, 1e-6)
    assert z.shape == std.shape == (0,)
    # a group of one: z 0, std 0; a group of two: exact unbiased std
    z, std = _group_z(torch.tensor([5.0, 1.0, 3.0], dtype=torch.float64), torch.tensor([1, 0, 0]), True, 0.5)
    assert std.tolist() == [0.0, math.sqrt(2.0), math.sqrt(2.0)]
    assert z.tolist() == [0.0, -1.0 / (math.sqrt(2.0) + 0.5), 1.0 / (math.sqrt(2.0) + 0.5)]
    z, _ = _group_z(torch.tensor([5.0, 1.0, 3.0], dtype=torch.float64), torch.tensor([1, 0, 0]), False, 0.5)
    assert z.tolist() == [0.0, -1.0, 1.0]


def test_rl_bool_mask_one_token_rows_and_several_left_masked_rows():
    scores = torch.tensor([2.5, 1.0, 2.0, 0.0, 1.5])
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=torch.bool)
    index = np.array(["g"] * 5, dtype=object)
    plain = chrpo_advantage(scores, mask, index, ChrpoAdvantageConfig(control_token_weight=None))
    folded = chrpo_advantage(scores, mask, index, ChrpoAdvantageConfig(control_token_weight=1e-3))
    assert plain.dtype == folded.dtype == torch.float32
    factor = 1e-3 * 10 / 5  # N = 10 tokens, B = 5 rows (a one-token row is a sequence)
    assert control_token_factor(mask, 1e-3) == pytest.approx(factor, rel=1e-12)
    for row, col in enumerate([1, 2, 0, 0, 3]):
        assert plain[row, col] != 0
        assert folded[row, col] == pytest.approx(float(plain[row, col]) * factor, rel=1e-6)
        other = [c for c in range(4) if c != col]
        assert torch.equal(folded[row, other], plain[row, other])
    assert chrpo_advantage(torch.zeros(0), torch.zeros(0, 3, dtype=torch.bool)).dtype == torch.float32


def test_rl_control_token_factor_edges():
    assert math.isnan(control_token_factor(torch.zeros(3, 4), 1e-3))
    assert math.isnan(control_token_factor(torch.zeros(0, 4), 1e-3))
    assert control_token_factor(torch.tensor([[1.0, 1.0, 0.0]]), 0.5) == 1.0  # one sequence, N = 2
    assert control_token_factor(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), 0.25) == 0.25


def test_rl_options_validation_messages():
    ChrpoAdvantageConfig(bonus_weight=0.0, epsilon=1e-12, control_token_weight=1e-9)  # boundaries that are valid
    ChrpoAdvantageConfig(control_token_weight=None)
    with pytest.raises(ValueError) as err:
        ChrpoAdvantageConfig(bonus_weight=-0.1)
    assert str(err.value) == ("algorithm.chrpo.bonus_weight=-0.1: must be in [0, 1) so a higher tier always wins; "
                              "use e.g. 0.5")
    with pytest.raises(ValueError) as err:
        ChrpoAdvantageConfig(epsilon=0.0)
    assert str(err.value) == "algorithm.chrpo.epsilon=0.0: must be > 0, e.g. 1e-6"
    with pytest.raises(ValueError) as err:
        ChrpoAdvantageConfig(control_token_weight=0.0)
    assert str(err.value) == ("algorithm.chrpo.control_token_weight=0.0: must be > 0 (e.g. 1e-3) or null to "
                              "disable the separate ratio-token weight")
    with pytest.raises(ValueError, match=r"^algorithm.chrpo.epsilon=nan"):
        ChrpoAdvantageConfig(epsilon=float("nan"))
