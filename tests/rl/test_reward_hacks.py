"""Reward hacks (issue 37): reasoning hidden outside the think block never beats the honest response.

Each hack carries the same reasoning ``X`` as the honest response but places it where the old
accounting (first block only) did not count it. Through the real ``compute_score`` (counting with
the tiny tokenizer itself) and through the registered ``chrpo`` reward manager, no hack may score
above the honest response of the same correctness, at budgets where the honest response is
calibrated or too long (the case a hack is for: hiding length).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extra_cot.rl.reward import ChrpoRewardConfig
from extra_cot.rl.reward_fn import compute_score
from extra_cot.think import count_think_tokens, count_tokens, think_span

CFG = ChrpoRewardConfig()
X = " ".join(f"Step {a}: {a} + {a} = {2 * a}." for a in range(1, 21))  # the reasoning to hide
SMALL = "ok"
FINAL = "The answer is \\boxed{42}."


def honest(token: str) -> str:
    return f"{token}\n<think>\n{X}</think>\n\n{FINAL}"


HACKS = {
    "second_block": lambda t: f"{t}\n<think>\n{SMALL}</think>\n<think>\n{X}</think>\n\n{FINAL}",
    "reasoning_after_block": lambda t: f"{t}\n<think>\n{SMALL}</think>\n\n{X}\n{FINAL}",
    "reasoning_before_block": lambda t: f"{t}\n{X}\n<think>\n{SMALL}</think>\n\n{FINAL}",
    "nested_tags": lambda t: f"{t}\n<think>\n{SMALL} <think>{X}</think></think>\n\n{FINAL}",
    "repeated_tags": lambda t: f"{t}\n<think>\n<think>\n{SMALL}</think></think>\n\n{X}\n{FINAL}",
    "tags_inside_box": lambda t: f"{t}\n<think>\n{SMALL}</think>\n\nThe answer is \\boxed{{<think>{X}</think>42}}.",
    "close_tag_inside_box": lambda t: f"{t}\n<think>\n{SMALL}</think>\n\n{X} \\boxed{{</think>42}}",
    "answer_then_reasoning": lambda t: f"{t}\n<think>\n{SMALL}</think>\n\n{FINAL}\n{X}",
    "answer_reasoning_answer": lambda t: f"{t}\n<think>\n{SMALL}</think>\n\n{FINAL}\n{X}\n{FINAL}",
    "reasoning_on_the_final_line": lambda t: f"{t}\n<think>\n{SMALL}</think>\n\n{X} {FINAL}",
    "reasoning_inside_the_box": lambda t: f"{t}\n<think>\n{SMALL}</think>\n\n\\boxed{{{X} 42}}",
    "unclosed_block": lambda t: f"{t}\n<think>\n{SMALL}\n{X}\n{FINAL}",
    "no_block": lambda t: f"{t}\n{X}\n{FINAL}",
}
TOKENS = {"<COMP_20>": 0.2, "<COMP_60>": 0.6, "<COMP_100>": 1.0}


def _grid(honest_tokens: int, small_tokens: int, ratio: float):
    """Row infos where the honest response is calibrated, a bit too long, or so long that only
    the hack's tiny block fits the budget (where hiding the rest would pay)."""
    for ref in (honest_tokens / ratio, honest_tokens / (ratio + 0.3), small_tokens / ratio):
        for gt_ratio in (0.2, 0.6, 1.0):
            yield {"gt_ratio": gt_ratio, "ref_full_len": ref, "comp_tolerance": 0.1}


def test_every_hack_counts_the_hidden_reasoning_or_is_invalid(tiny_tokenizer):
    """The direct check: a hack in the accepted layout counts at least the honest tokens."""
    honest_n = count_think_tokens(honest("<COMP_20>"), tiny_tokenizer)
    assert honest_n > 50
    for name, hack in HACKS.items():
        text = hack("<COMP_20>")
        span = think_span(text)
        assert X in span.counted, name
        if span.well_formed:
            assert count_think_tokens(text, tiny_tokenizer) >= honest_n, name


@pytest.mark.parametrize("name", sorted(HACKS))
def test_no_hack_scores_above_the_honest_response(name, tiny_model_dir, tiny_tokenizer):
    """Through the real compute_score, which counts think tokens itself (no think_tokens given)."""
    checked = 0
    small_n = count_tokens(SMALL, tiny_tokenizer)
    for token, ratio in TOKENS.items():
        honest_n = count_think_tokens(honest(token), tiny_tokenizer)
        for info in _grid(honest_n, small_n, ratio):
            for gold in ("42", "41"):  # correct and wrong
                fair = compute_score("gsm8k", honest(token), gold, dict(info), tokenizer=str(tiny_model_dir))
                hacked = compute_score("gsm8k", HACKS[name](token), gold, dict(info), tokenizer=str(tiny_model_dir))
                assert hacked["score"] <= fair["score"] + 1e-9, (name, token, info, gold, hacked, fair)
                checked += 1
    assert checked == len(TOKENS) * 9 * 2


def test_honest_response_still_earns_the_bonus(tiny_model_dir, tiny_tokenizer):
    """The rule leaves honest responses as they were: calibrated at 0.2, the full bonus."""
    n = count_think_tokens(honest("<COMP_20>"), tiny_tokenizer)
    info = {"gt_ratio": 0.4, "ref_full_len": n / 0.2, "comp_tolerance": 0.1}
    out = compute_score("gsm8k", honest("<COMP_20>"), "42", info, tokenizer=str(tiny_model_dir))
    assert out["score"] == pytest.approx(CFG.tier_correct + CFG.max_bonus) and out["truncated"] == 0.0
    # the hack the issue found: reasoning after a tiny block was scored calibrated at 0.2 when the
    # block alone fitted the budget; now the reasoning counts and the bonus is gone
    small = {**info, "ref_full_len": count_tokens(SMALL, tiny_tokenizer) / 0.2}
    hacked = compute_score("gsm8k", HACKS["reasoning_after_block"]("<COMP_20>"), "42", small,
                           tokenizer=str(tiny_model_dir))
    assert hacked["score"] == CFG.tier_correct and hacked["calibrated"] == 0.0 and hacked["think_tokens"] >= n
    cut = compute_score("gsm8k", HACKS["unclosed_block"]("<COMP_20>"), "42", info, tokenizer=str(tiny_model_dir))
    assert cut["score"] == CFG.tier_invalid and cut["truncated"] == 1.0 and cut["think_tokens"] > n


def _manager(model_dir):
    import verl  # noqa: F401
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    config = OmegaConf.create({"reward": {"custom_reward_function": {"path": None}, "reward_kwargs": {"chrpo": {}}}})
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return get_reward_manager_cls("chrpo")(config=config, tokenizer=tokenizer, compute_score=None), tokenizer


def _item(tokenizer, response: str, gold: str, info: dict):
    from verl import DataProto

    prompt = tokenizer.encode("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    resp = tokenizer.encode(response, add_special_tokens=False) + [tokenizer.eos_token_id]
    return DataProto.from_dict(
        tensors={"prompts": torch.tensor([prompt]), "responses": torch.tensor([resp]),
                 "attention_mask": torch.ones(1, len(prompt) + len(resp), dtype=torch.long)},
        non_tensors={"data_source": np.array(["gsm8k"], dtype=object),
                     "reward_model": np.array([{"ground_truth": gold}], dtype=object),
                     "extra_info": np.array([dict(info)], dtype=object)},
    )


def test_no_hack_scores_above_the_honest_response_in_the_reward_manager(tiny_model_dir):
    """The verl path: decoded from token ids, counted by the manager, scored by compute_score."""
    manager, tok = _manager(tiny_model_dir)

    def run(text, gold, info):
        out = manager.loop.run_until_complete(manager.run_single(_item(tok, text, gold, info)))
        return out["reward_score"], out["reward_extra_info"]

    n = count_think_tokens(honest("<COMP_20>"), tok)
    for ref in (n / 0.2, n / 0.5, count_tokens(SMALL, tok) / 0.2):  # calibrated, too long, far too long
        info = {"gt_ratio": 0.2, "ref_full_len": ref, "comp_tolerance": 0.1}
        for gold in ("42", "41"):
            fair, fair_info = run(honest("<COMP_20>"), gold, info)
            assert fair_info["truncated"] == 0.0 and fair_info["think_tokens"] == n
            for name, hack in HACKS.items():
                score, extra = run(hack("<COMP_20>"), gold, info)
                assert score <= fair + 1e-9, (name, ref, gold, extra)
                assert extra["truncated"] == float(name == "unclosed_block"), name
