"""The demo's Stage 3 summary: per-step reward shares from the call record, before/after policy ratios."""

from __future__ import annotations

import json

from extra_cot.demo.rl_train import reward_steps, rl_train_section


def _reward(tier: int, valid: bool, correct: bool, calibrated: bool, ratio: float, split: str = "train") -> dict:
    return {"kind": "reward", "split": split, "tier": tier, "valid": float(valid), "correct": float(correct),
            "calibrated": float(calibrated), "ratio": ratio, "score": tier + (0.5 if calibrated else 0.0)}


def test_demo_reward_steps_split_on_estimator_calls_and_skip_validation():
    calls = [
        _reward(2, True, True, True, 0.2), _reward(0, False, False, False, -1.0),
        _reward(1, True, False, False, 0.4, split="val"),  # validation: not a training rollout
        {"kind": "estimator", "nonzero_rows": 2},
        _reward(1, True, False, False, 0.4), {"kind": "estimator", "nonzero_rows": 0},
    ]
    steps = reward_steps(calls)
    assert [s["rollouts"] for s in steps] == [2, 1]
    assert steps[0]["valid"] == 0.5 and steps[0]["correct"] == 0.5 and steps[0]["calibrated"] == 0.5
    assert steps[0]["mean_score"] == (2.5 + 0.0) / 2 and steps[0]["tiers"] == {2: 1, 0: 1}
    assert steps[0]["chosen"] == {"0.2": 1, "none": 1} and steps[1]["nonzero_adv_rows"] == 0


def test_demo_rl_train_section_reads_the_run(tmp_path):
    (tmp_path / "rl_train").mkdir()
    calls = [_reward(2, True, True, True, 0.2), {"kind": "estimator", "nonzero_rows": 1}]
    (tmp_path / "rl_train/calls.jsonl").write_text("\n".join(json.dumps(c) for c in calls) + "\n")
    (tmp_path / "rl_train/metrics.jsonl").write_text(
        json.dumps({"step": 1, "data": {"actor/kl_loss": 0.001, "timing_s/step": 42.0}}) + "\n")
    for model, dist in (("eval", {"0.4": 1.0}), ("eval_rl", {"0.2": 0.5, "0.4": 0.5})):
        d = tmp_path / model / "arith" / "policy"
        d.mkdir(parents=True)
        d.joinpath("metrics.json").write_text(json.dumps(
            {"tokens": 10.0, "acc_all": 0.5, "realized_ratio": None, "closed_think_share": 1.0,
             "control_distribution": dist}))
    md, data = rl_train_section(tmp_path, "arith", ("0.2", "policy"))
    assert "| 1 | 1 | 100% | 100% | 100% | 2.500 |" in md and "| 42 |" in md
    assert "before (SFT) 0.4 100%" in md and "(RL) 0.2 50%, 0.4 50%" in md
    assert "| policy | sft |" in md and "| policy | rl |" in md
    assert data["policy_after"] == {"0.2": 0.5, "0.4": 0.5} and data["rl_steps"] == 1
    assert rl_train_section(tmp_path / "nothing", "arith", ())[1] == {}
