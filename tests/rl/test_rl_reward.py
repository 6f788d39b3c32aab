"""The CHRPO reward: pure scoring and the registered verl reward manager on a tiny tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from extra_cot.rl.reward import MISSING, ChrpoRewardConfig, score_outcome, score_response

REPO = Path(__file__).resolve().parents[2]
CFG = ChrpoRewardConfig()
INFO = {"gt_ratio": 0.4, "ref_full_len": 100, "comp_tolerance": 0.1}


def _outcome(**kw):
    base = {
        "valid": True,
        "correct": True,
        "ratio": 0.2,
        "realized_ratio": 0.2,
        "gt_ratio": 0.4,
        "tolerance": 0.1,
        "config": CFG,
    }
    return score_outcome(**{**base, **kw})


def test_rl_tiers_and_bonus():
    assert _outcome(valid=False).score == CFG.tier_invalid
    assert _outcome(ratio=None).tier == CFG.tier_invalid
    assert _outcome(correct=False, ratio=0.2).score == CFG.tier_wrong  # below gt_ratio: no fraction
    assert _outcome(correct=False, ratio=0.6).score == CFG.tier_wrong + CFG.safe_wrong_fraction
    best = _outcome(ratio=0.2, realized_ratio=0.25)
    assert best.score == pytest.approx(CFG.tier_correct + CFG.max_bonus) and best.calibrated
    bonuses = [_outcome(ratio=r, realized_ratio=r).bonus for r in (0.2, 0.4, 0.6, 0.8, 1.0)]
    assert bonuses == sorted(bonuses, reverse=True) and bonuses[-1] == 0.0
    out_of_band = _outcome(ratio=0.2, realized_ratio=0.5)
    assert out_of_band.tier == CFG.tier_correct and out_of_band.bonus == 0.0 and not out_of_band.calibrated
    no_constraint = ChrpoRewardConfig(constraint=False)
    assert _outcome(correct=False, ratio=0.6, config=no_constraint).score == CFG.tier_wrong


def test_rl_wrong_at_exactly_gt_ratio_is_not_too_small():
    """γ_c = γ*(x) is the budget the reference passed with: the safe fraction, not the penalty."""
    for ratio in (0.2, 0.4, 0.6, 0.8, 1.0):
        at = _outcome(correct=False, ratio=ratio, gt_ratio=ratio)
        assert at.score == pytest.approx(CFG.tier_wrong + CFG.safe_wrong_fraction), ratio
    below = _outcome(correct=False, ratio=0.4, gt_ratio=0.6)
    assert below.score == CFG.tier_wrong
    # as read from a row: the parquet's γ* and the token's ratio are the same float
    same = score_response(_response("<COMP_40>", 20, "\\boxed{41}"), "42", think_tokens=40, extra_info=INFO)
    assert same.ratio == INFO["gt_ratio"] and same.score == pytest.approx(CFG.tier_wrong + CFG.safe_wrong_fraction)


def test_rl_row_comp_tolerance_decides_calibration():
    """A row's comp_tolerance replaces the config's tolerance (unless use_row_tolerance is off)."""
    response = _response("<COMP_20>", 20)
    # r̂ = 35 / 100 = 0.35: outside τ = 0.1 around 0.2, inside τ = 0.2
    wide = score_response(response, "42", think_tokens=35, extra_info={**INFO, "comp_tolerance": 0.2})
    assert wide.calibrated and wide.score == pytest.approx(CFG.tier_correct + CFG.max_bonus)
    default = score_response(response, "42", think_tokens=35, extra_info={**INFO, "comp_tolerance": None})
    assert not default.calibrated and default.score == CFG.tier_correct
    # r̂ = 0.25: inside the default τ = 0.1, outside a row's τ = 0.01
    tight = score_response(response, "42", think_tokens=25, extra_info={**INFO, "comp_tolerance": 0.01})
    assert not tight.calibrated and tight.score == CFG.tier_correct
    ignore_rows = ChrpoRewardConfig(use_row_tolerance=False)
    fixed = score_response(response, "42", think_tokens=25, extra_info={**INFO, "comp_tolerance": 0.01},
                           config=ignore_rows)
    assert fixed.calibrated


def test_rl_reward_options_validated():
    with pytest.raises(ValueError, match="max_bonus"):
        ChrpoRewardConfig(max_bonus=1.0)
    with pytest.raises(ValueError, match="valid"):
        ChrpoRewardConfig.from_mapping({"tolerence": 0.2})
    with pytest.raises(ValueError, match="tier"):
        ChrpoRewardConfig(tier_wrong=5)


def _response(token, think_words, answer="The answer is \\boxed{42}.", close=True):
    think = " ".join(["step"] * think_words)
    body = f"<think>\n{think}</think>\n\n{answer}" if close else f"<think>\n{think}"
    return f"{token}\n{body}" if token else body


def test_rl_score_response_crafted_strings():
    ok = score_response(_response("<COMP_20>", 20), "42", think_tokens=20, extra_info=INFO)
    assert ok.correct and ok.calibrated and ok.ratio == 0.2 and ok.realized_ratio == pytest.approx(0.2)
    assert ok.score == pytest.approx(CFG.tier_correct + CFG.max_bonus)
    missing = score_response(_response(None, 20), "42", think_tokens=20, extra_info=INFO)
    assert missing.tier == CFG.tier_invalid and missing.ratio == MISSING
    policy = score_response(_response("<COMP_AUTO>", 20), "42", think_tokens=20, extra_info=INFO)
    assert policy.tier == CFG.tier_invalid  # the policy token is not a budget choice
    unclosed = score_response(_response("<COMP_40>", 20, close=False), "42", think_tokens=0, extra_info=INFO)
    assert unclosed.tier == CFG.tier_invalid
    wrong = score_response(_response("<COMP_20>", 20, "\\boxed{41}"), "42", think_tokens=20, extra_info=INFO)
    assert wrong.tier == CFG.tier_wrong and wrong.score == CFG.tier_wrong  # 0.2 < gt_ratio 0.4
    boxed_only_in_think = score_response(
        "<COMP_60>\n<think>\n\\boxed{42}</think>\n\nno idea", "42", think_tokens=60, extra_info=INFO
    )
    assert not boxed_only_in_think.correct


def _manager(model_dir, reward_kwargs=None):
    import verl  # noqa: F401
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {"path": None, "name": "compute_score"},
                "reward_kwargs": {"chrpo": reward_kwargs or {}},
            }
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return get_reward_manager_cls("chrpo")(config=config, tokenizer=tokenizer, compute_score=None), tokenizer


def _item(tokenizer, response: str, gold: str, info: dict, pad: int = 3):
    from verl import DataProto

    prompt = tokenizer.encode(
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False
    )
    resp = tokenizer.encode(response, add_special_tokens=False) + [tokenizer.eos_token_id]
    resp_t = torch.tensor([resp + [tokenizer.pad_token_id or 0] * pad])
    attn = torch.tensor([[1] * len(prompt) + [1] * len(resp) + [0] * pad])
    return DataProto.from_dict(
        tensors={"prompts": torch.tensor([prompt]), "responses": resp_t, "attention_mask": attn},
        non_tensors={
            "data_source": np.array(["gsm8k"], dtype=object),
            "reward_model": np.array([{"ground_truth": gold}], dtype=object),
            "extra_info": np.array([dict(info)], dtype=object),
        },
    )


def test_rl_reward_manager_scores_crafted_responses(tiny_model_dir):
    from extra_cot.think import count_think_tokens

    manager, tok = _manager(tiny_model_dir)
    good = _response("<COMP_20>", 12)
    n_think = count_think_tokens(good, tok)
    info = {"gt_ratio": 0.4, "ref_full_len": n_think / 0.2, "comp_tolerance": 0.1}

    def run(text, gold="42", extra=info):
        out = manager.loop.run_until_complete(manager.run_single(_item(tok, text, gold, extra)))
        return out["reward_score"], out["reward_extra_info"]

    score, extra = run(good)
    assert extra["think_tokens"] == n_think and extra["ratio"] == 0.2 and extra["calibrated"] == 1.0
    assert score == pytest.approx(CFG.tier_correct + CFG.max_bonus)
    assert run(_response(None, 12))[0] == CFG.tier_invalid  # missing ratio token
    assert run(_response("<COMP_20>", 12, close=False))[0] == CFG.tier_invalid  # unclosed think
    assert run(good, gold="41")[0] == CFG.tier_wrong  # wrong, and below gt_ratio
    out_score, out_extra = run(_response("<COMP_20>", 40))  # correct but far out of band
    assert out_score == CFG.tier_correct and out_extra["calibrated"] == 0.0
    in_band_full = run(
        _response("<COMP_100>", 60),
        extra={**info, "ref_full_len": count_think_tokens(_response("<COMP_100>", 60), tok)},
    )
    assert in_band_full[0] == CFG.tier_correct and in_band_full[1]["calibrated"] == 1.0


def test_rl_reward_manager_reads_options(tiny_model_dir):
    manager, tok = _manager(tiny_model_dir, {"max_bonus": 0.5, "require_calibration": False})
    out = manager.loop.run_until_complete(
        manager.run_single(_item(tok, _response("<COMP_20>", 40), "42", {"ref_full_len": 10}))
    )
    assert out["reward_score"] == pytest.approx(CFG.tier_correct + 0.5)
    with pytest.raises(ValueError, match="valid"):
        _manager(tiny_model_dir, {"bogus": 1})


def test_rl_pkg_reward_fn_matches_manager_path():
    from verl.utils.import_utils import load_extern_object

    fn = load_extern_object("pkg://extra_cot.rl.reward_fn", "compute_score")
    out = fn("gsm8k", _response("<COMP_40>", 5), "42", {**INFO, "think_tokens": 40}, max_bonus=0.6)
    assert out["score"] == pytest.approx(CFG.tier_correct + 0.6 * 0.75)
    file_fn = load_extern_object(str(REPO / "reward_fns" / "chrpo_reward.py"), "compute_score")
    assert file_fn("gsm8k", _response("<COMP_40>", 5), "42", {**INFO, "think_tokens": 40})[
        "score"
    ] == pytest.approx(CFG.tier_correct + CFG.max_bonus * 0.75)
    with pytest.raises(ValueError, match="reward_manager.name=chrpo"):
        fn("gsm8k", _response("<COMP_40>", 5), "42", dict(INFO))


def test_rl_reward_manager_refuses_a_tokenizer_without_control_tokens(tiny_base_model_dir):
    """A base model's tokenizer cannot show the ratio choice: the manager raises at start-up."""
    from extra_cot.rl.reward_manager import MissingControlTokensError

    with pytest.raises(MissingControlTokensError) as info:
        _manager(tiny_base_model_dir)
    for needle in ("<COMP_20>", "<COMP_AUTO>", "extra-cot prepare-model", "actor_rollout_ref.model.path"):
        assert needle in str(info.value)
