"""The truncated share per RL step (issue 38 item 4): call-log records, their summary, the estimator's line.

verl 0.9.1 has no hook for a reward key in its training step metrics (docs/hosts.md), so the
summary lives in our call log: the reward manager tags each record with verl's ``uid`` and step,
and the estimator (once per step) summarises the records of its batch's uids.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extra_cot.rl import calllog
from extra_cot.rl.calllog import (
    RESPONSES,
    THINK_TOKENS_MEAN,
    TRUNCATED_SHARE,
    RewardTail,
    read_calls,
    step_summary,
)


def _reward(uid, truncated, think, step=1):
    return {"kind": "reward", "uid": uid, "truncated": float(truncated), "think_tokens": think, "step": step}


def test_step_summary_is_the_truncated_share_and_mean_think_tokens():
    rows = [_reward("a", 1, 64), _reward("a", 0, 10), _reward("b", 0, 20), _reward("b", 0, 30)]
    out = step_summary(rows)
    assert out[TRUNCATED_SHARE] == pytest.approx(0.25)
    assert out[THINK_TOKENS_MEAN] == pytest.approx(31.0)
    assert out[RESPONSES] == 4 and out["step"] == 1
    assert step_summary([]) == {}
    # a custom reward function may report no think count: the share still counts every response
    assert THINK_TOKENS_MEAN not in step_summary([{"truncated": 1.0}])


def test_reward_tail_hands_out_each_steps_records_once(tmp_path, monkeypatch):
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv(calllog.ENV, str(path))
    for row in [_reward("a", 1, 5), _reward("a", 0, 5), _reward("v", 0, 1, step=0), _reward("b", 0, 5, step=2)]:
        calllog.record(**row)
    calllog.record("estimator", rows=0)  # other kinds are not rewards
    tail = RewardTail(path, keep=3)
    assert [r["uid"] for r in tail.take(np.array(["a", "a"], dtype=object))] == ["a", "a"]
    assert tail.take(["a"]) == []  # taken once
    with open(path, "a") as handle:  # a line still being written waits for the next read
        handle.write('{"kind": "reward", "uid": "c", "trunc')
    assert tail.take(["c"]) == []
    with open(path, "a") as handle:
        handle.write('ated": 1.0, "step": 2}\n')
    calllog.record(**_reward("d", 0, 5, step=3))
    assert [r["truncated"] for r in tail.take(["c"])] == [1.0]
    # keep=3: the oldest never-asked uid ("v", a validation rollout) was dropped, the newest kept
    assert tail.take(["v"]) == [] and [r["uid"] for r in tail.take(["d"])] == ["d"]


def test_estimator_records_and_logs_its_steps_truncated_share(tmp_path, monkeypatch, caplog):
    from extra_cot.rl import verl_plugin

    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv(calllog.ENV, str(path))
    for step, uids in ((1, ["a", "b"]), (2, ["c", "d"])):
        for i, uid in enumerate(uids):
            calllog.record("reward", uid=uid, step=step, truncated=float(step == 1 and i == 0), think_tokens=8.0)
            calllog.record("reward", uid=uid, step=step, truncated=0.0, think_tokens=4.0)
    mask = torch.ones(4, 3)
    scores = torch.zeros(4, 3)
    scores[:, -1] = torch.tensor([2.5, 1.0, 2.0, 0.0])
    calllog.step_logger.addHandler(caplog.handler)  # the step logger does not propagate to the root
    try:
        for uids in (["a", "a", "b", "b"], ["c", "c", "d", "d"]):
            verl_plugin.compute_chrpo_advantage(scores, mask, index=np.array(uids, dtype=object))
    finally:
        calllog.step_logger.removeHandler(caplog.handler)
    first, second = read_calls(path, "estimator")
    assert first[TRUNCATED_SHARE] == pytest.approx(0.25) and first["step"] == 1
    assert second[TRUNCATED_SHARE] == 0.0 and second["step"] == 2
    assert first[THINK_TOKENS_MEAN] == pytest.approx(6.0) and first[RESPONSES] == 4
    assert "chrpo step 1: truncated_share=0.2500 think_tokens_mean=6.0 over 4 responses" in caplog.text
    assert "chrpo step 2: truncated_share=0.0000" in caplog.text


def test_reward_manager_tags_records_with_uid_and_step(tiny_model_dir, tmp_path, monkeypatch):
    import verl  # noqa: F401
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    monkeypatch.setenv(calllog.ENV, str(tmp_path / "calls.jsonl"))
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    config = OmegaConf.create({"reward": {"custom_reward_function": {"path": None}, "reward_kwargs": {"chrpo": {}}}})
    manager = get_reward_manager_cls("chrpo")(config=config, tokenizer=tok, compute_score=None)
    prompt = tok.encode("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    response = tok.encode("<COMP_20>\n<think>\nstep step step", add_special_tokens=False)  # cut off in think
    item = DataProto.from_dict(
        tensors={"prompts": torch.tensor([prompt]), "responses": torch.tensor([response]),
                 "attention_mask": torch.ones(1, len(prompt) + len(response), dtype=torch.long)},
        non_tensors={"data_source": np.array(["gsm8k"], dtype=object),
                     "reward_model": np.array([{"ground_truth": "42"}], dtype=object),
                     "extra_info": np.array([{"gt_ratio": 0.4, "ref_full_len": 60}], dtype=object),
                     "uid": np.array(["u7"], dtype=object), "global_steps": np.array([3])},
    )
    out = manager.loop.run_until_complete(manager.run_single(item))
    (row,) = read_calls(tmp_path / "calls.jsonl", "reward")
    assert row["uid"] == "u7" and row["step"] == 3 and row["truncated"] == 1.0 and row["think_tokens"] > 0
    assert out["reward_extra_info"]["truncated"] == 1.0
    assert out["reward_extra_info"]["think_tokens"] == row["think_tokens"]
